"""Configuration and console entry points of message waiting (MWI), busy
lamps (BLF) and presence.  Loaded at boot (schema, commands); the code that
does the work (firmware/voice/mwi.py, firmware/callserver/events.py) is
imported only when it is needed: an MWI or voicemail statement, the first
SUBSCRIBE, or a console command that touches the state.

    services convergence-services {
        station bob {
            mwi-notify subscribe;         # subscribe (default: the phone SUBSCRIBEs to
                                          # message-summary) | unsolicited (NOTIFY to
                                          # every registered contact on each change)
            mailbox 2001;                 # voicemail box (default: the extension)
        }
        voicemail {                       # a central voicemail server
            server 192.0.2.20; port 5060; # one message-summary subscription per mailbox
            subscribe-expires 3600;       # renewed before it runs out; retried 60 s
        }                                 # after a failure
    }

Console (operational mode):
    request voice mwi station NAME new N old M [urgent U]
    show voice mwi
    show sip subscriptions              watcher, resource, event, expiry

The router module "events" (priority EVENTS, 42) takes new out-of-dialog
SUBSCRIBEs for the local call server; it loads firmware/callserver/events.py
on the first one.
"""
from firmware.config import schema as S
from firmware.voice.config import BASE
from firmware.sipstack.router import EVENTS

_BOX_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+"

S.register(BASE + " station", S.Leaf(
    "mwi-notify", S.Enum(("subscribe", "unsolicited")), default="subscribe",
    help="Message waiting for this station's SIP phones: subscribe (the phone subscribes "
         "to message-summary) or unsolicited (a NOTIFY to each registered contact on change)"))
S.register(BASE + " station", S.Leaf(
    "mailbox", S.String(1, 32, charset=_BOX_CHARS),
    help="Voicemail box of the station (default: its extension)"))

S.register(BASE, S.Container(
    "voicemail", "A central voicemail server: its message summaries light the lamps",
    children=(
        S.Leaf("server", S.IPv4Address(), help="Address of the voicemail server"),
        S.Leaf("port", S.Port(), default=5060, help="SIP port of the voicemail server"),
        S.Leaf("subscribe-expires", S.Integer(60, 86400, "seconds"), default=3600,
               help="Lifetime asked for each mailbox subscription; renewed before it ends"),
    )))


class MwiSettings:
    def __init__(self, cfg):
        self.boxes = {}           # station name -> mailbox
        self.unsolicited = []     # station names wanting unsolicited NOTIFYs
        for n in cfg.entries(BASE + " station"):
            c = cfg.section("%s station %s" % (BASE, n))
            self.boxes[n] = c.get("mailbox") or c.get("extension")
            if c.get("mwi-notify") == "unsolicited":
                self.unsolicited.append(n)
        v = BASE + " voicemail "
        self.server = cfg.get(v + "server")
        self.port = cfg.get(v + "port")
        self.expires = cfg.get(v + "subscribe-expires")

    def wanted(self):
        return bool(self.unsolicited or self.server)


def _mwi(app):
    """The MWI service, built on first use (console or configuration)."""
    m = getattr(app, "mwi", None)
    if m is None:
        from firmware.voice.mwi import MwiService
        m = app.mwi = MwiService(app)
        cs = getattr(app, "callserver", None)
        if cs is not None:
            cs.registrar.listen(m.registered)
        if getattr(app, "mwi_started", False):
            m.start()
    return m


def _cmd(name):
    def run(app, args, name=name):
        from firmware.voice import mwi
        return getattr(mwi, name)(app, _mwi(app), args)
    return run


def _show_subscriptions(app, args):
    ev = _events(app)
    m = getattr(app, "mwi", None)
    from firmware.voice.mwi import show_subscriptions
    return show_subscriptions(app, ev, m)


class EventsModule:
    """The router's entry for new SUBSCRIBEs: the real server is built on the
    first one (firmware/callserver/events.py)."""
    name = "events"
    priority = EVENTS
    methods = ("SUBSCRIBE",)

    def __init__(self, app):
        self.app = app
        self.impl = None

    def server(self):
        if self.impl is None:
            from firmware.callserver.events import EventServer
            self.impl = EventServer(self.app)
        return self.impl

    def take(self, sreq):
        return self.server().take(sreq)

    def rows(self):
        if self.impl is None:
            return [("loaded", "no (no SUBSCRIBE yet)")]
        return self.impl.rows()


def _events(app):
    sip = getattr(app, "sip", None)
    m = sip.router.get("events") if sip is not None else None
    return m.impl if m is not None else None


def install(app):
    """Put the events module into the router once the call server runs, and
    build the MWI service when the configuration asks for it (idempotent)."""
    sip = getattr(app, "sip", None)
    if sip is None:
        return
    if getattr(app, "callserver", None) is not None and sip.router.get("events") is None:
        sip.router.add(EventsModule(app))
    s = getattr(app, "mwi_settings", None)
    if s is not None and s.wanted():
        _mwi(app)
    m = getattr(app, "mwi", None)
    cs = getattr(app, "callserver", None)
    if m is not None and cs is not None:
        cs.registrar.listen(m.registered)    # unsolicited MWI to a new contact


def apply(app, old, new):
    s = MwiSettings(new)
    app.mwi_settings = s
    if hasattr(app, "commands"):
        app.commands.register("request voice mwi", _cmd("request_mwi"),
                              "Set a station's message-waiting state: station NAME new N "
                              "old M [urgent U]")
        app.commands.register("show voice mwi", _cmd("show_mwi"),
                              "Show the message-waiting state of each mailbox")
        app.commands.register("show sip subscriptions", _show_subscriptions,
                              "Show event subscriptions: watcher, resource, event, expiry")
    m = getattr(app, "mwi", None)
    if m is not None:
        m.configure(s)
    install(app)


S.on_commit("mwi", apply)
