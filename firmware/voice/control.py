"""Who is in control of calls: the one owner.

Two states: PEER (a peer call server is in control: the analog ports register
to it and place their calls through it; the local call server stays out of
the call path) and LOCAL (the appliance's own call server is in control).
The configuration sets the start (a configured `peer-call-server` means
PEER with the primary); the survivability monitor (firmware/proxy/survival.py)
drives it from then on with select().  Services read it and subscribe to
its changes; nothing else decides.

    ctl = Control(app)                 # app.identity gives the local server's address
    ctl.configure(peer, reason)        # peer: the settings dict of the peer, or None
    ctl.select(peer, cause)            # the monitor: the best live peer, or None (LOCAL)
    ctl.state in (PEER, LOCAL); ctl.local; ctl.since (ms); ctl.cause
    ctl.call_server() -> CallServerRef # the one in control, read at every use
    ctl.subscribe(fn)                  # fn(ctl, old_state) after every change
    ctl.history                        # the last MAX_CONTROL_HISTORY changes
"""
from firmware.compat import const

PEER = "peer"
LOCAL = "local"

MAX_CONTROL_SUBSCRIBERS = const(8)    # the gateway, the call server, the LEDs, ...
MAX_CONTROL_HISTORY = const(16)       # (time, state, cause), oldest dropped


class CallServerRef:
    """The address of a call server: a peer's, or this appliance's own."""

    def __init__(self, name, host, port, transport="UDP", registrar=None):
        self.name = name
        self.host = host
        self.port = port
        self.transport = transport
        self.registrar = registrar or host

    def dest(self):
        return (self.host, self.port)

    def registrar_dest(self):
        return (self.registrar, self.port)

    def hostport(self):
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

    def domain(self):
        return self.hostport()

    def describe(self):
        if self.name == "local":
            return "local call server (%s)" % self.hostport()
        return "peer %s (%s, %s)" % (self.name, self.hostport(), self.transport.lower())

    def __repr__(self):
        return "<CallServerRef %s>" % self.describe()


class Control:
    def __init__(self, app):
        self.app = app
        self.state = LOCAL
        self.peer = None
        self.since = app.clock.now()
        self.cause = "boot: no peer call server configured"
        self.history = []
        self._subscribers = []

    @property
    def local(self):
        return self.state == LOCAL

    def subscribe(self, fn):
        if fn in self._subscribers:
            return
        if len(self._subscribers) >= MAX_CONTROL_SUBSCRIBERS:
            raise ValueError("more than %d control subscribers" % MAX_CONTROL_SUBSCRIBERS)
        self._subscribers.append(fn)

    def configure(self, peer, reason="configuration"):
        """The committed peer (settings dict or None) decides, for now."""
        if peer is None:
            self._set(LOCAL, None, "%s: no peer call server" % reason)
        else:
            self._set(PEER, peer, "%s: peer call server %s" % (reason, peer["name"]))

    def select(self, peer, cause):
        """The survivability monitor's decision: peer (settings dict) in
        control, or None: the local call server."""
        self._set(PEER if peer is not None else LOCAL, peer, cause)

    def _set(self, state, peer, cause):
        old_state, old_peer = self.state, self.peer
        self.peer = peer
        if state == old_state and _same_peer(peer, old_peer):
            return
        self.state = state
        self.since = self.app.clock.now()
        self.cause = cause
        self.history.append((self.since, state, cause))
        if len(self.history) > MAX_CONTROL_HISTORY:
            self.history.pop(0)
        log = getattr(self.app, "log", None)
        if log is not None:
            log.info("control: %s in control (%s)" % (self.who(), cause))
        for fn in self._subscribers:
            fn(self, old_state)

    def call_server(self):
        p = self.peer
        if self.state == PEER and p is not None:
            return CallServerRef(p["name"], p["address"], p["port"], p["transport"].upper(),
                                 p["registrar"])
        ident = getattr(self.app, "identity", None)
        if ident is None:
            return CallServerRef("local", "127.0.0.1", 5060)
        return CallServerRef("local", ident.host, ident.port)

    def who(self):
        if self.state == LOCAL:
            return "the local call server"
        return "peer call server %s" % self.peer["name"]


def _same_peer(a, b):
    if a is None or b is None:
        return a is b
    for k in ("name", "address", "port", "transport", "registrar"):
        if a.get(k) != b.get(k):
            return False
    return True
