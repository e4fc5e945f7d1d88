"""A SIP user agent of the sip.usage stack on the simulated network, for
subscription tests: its own SIP core (firmware.sipstack.core.SipCore) and
dialog module on the appliance's scheduler and clock, at its own host.

    c = SubClient(w, "127.0.2.1", seed=5)      # w: a CsWorld
    sub = c.subscriber("dialog", "2002", user="2001", password="Secret-2001")
    sub.start(w.now()); w.run(500)
    c.notes      [(state, body bytes, content type)] of every NOTIFY received
    c.states     [sub.state] after each change
    c.serve(module)   add a router module (e.g. a voicemail server's SUBSCRIBE handler)
    c.close()
"""
from firmware.compat import Random
from firmware.log import Log
from firmware.sipstack.core import SipCore
from firmware.sipstack.dialogs import user_agent
from firmware.sipstack.identity import SipIdentity
from firmware.sipstack.transport import Source
from sip.message import parse
from sip.usage.subscription import Subscriber


class _Tp:
    def __init__(self, client, sock, host):
        self.client = client
        self.sock = sock
        self.host = host
        self.on_message = None

    def send(self, data, dest):
        self.sock.sendto(bytes(data), dest.addr)

    def start(self):
        pass


class _App:
    def __init__(self, w, seed, host, port, domain):
        self.clock = w.app.clock
        self.rng = Random(seed)
        self.log = Log(self.clock)
        self.sched = w.app.sched
        self.identity = SipIdentity(host, port, domain)


class SubClient:
    def __init__(self, w, host, seed=5, domain="branch.example.com"):
        self.w = w
        sock = w.network.socket()
        sock.bind((host, 0))
        sock.setblocking(False)
        self.sock = sock
        self.host = host
        self.port = sock.getsockname()[1]
        self.app = _App(w, seed, host, self.port, domain)
        self.core = SipCore(self.app, _Tp(self, sock, host))
        self.app.sip = self.core
        self.ua = user_agent(self.app)
        self.notes = []
        self.states = []
        self.received = []        # first lines of every request received
        self.tasks = [w.app.sched.spawn(self._reader(), "subclient-%s" % host)]
        self.core.start()
        self.tasks.append(self.core.task)

    async def _reader(self):
        sock = self.sock
        while True:
            await sock.wait_readable()
            try:
                data, src = sock.recvfrom(65535)
            except OSError:
                continue
            msg = parse(data)
            if hasattr(msg, "method"):
                self.received.append(bytes(data).split(b"\r\n", 1)[0].decode())
            self.core.on_message(msg, Source("UDP", (src[0], src[1])))
            self.core._flush()

    def subscriber(self, event, resource, user, password, expires=600, accept=None,
                   server=None):
        w = self.w
        dest = server or w.server
        target = "sip:%s@%s" % (resource, "branch.example.com")
        return Subscriber(self.ua, event, target, "sip:%s@branch.example.com" % user,
                          dest, self, expires=expires, accept=accept,
                          auth=(user, password) if password else None, retry_ms=None)

    def serve(self, module):
        self.core.router.add(module)

    def on_notify(self, sub, state, body, ctype):
        self.notes.append((state, bytes(body or b""), ctype))

    def on_state(self, sub):
        self.states.append(sub.state)

    def close(self):
        for t in self.tasks:
            if t is not None and not t.done():
                t.cancel()
        self.sock.close()
