# portable: micropython
"""Generic subscriptions (sip/usage/subscription.py, RFC 6665) between two
user agents, each a SIP core with its dialog module on one virtual clock,
joined by an in-test wire that can drop what it carries."""
from firmware.compat import Random
from firmware.log import Log
from firmware.sched import Scheduler, VirtualClock
from firmware.sipstack.core import SipCore
from firmware.sipstack.dialogs import user_agent
from firmware.sipstack.identity import SipIdentity
from firmware.sipstack.router import Module
from firmware.sipstack.transport import Source
from sip.message import parse
from sip.usage.subscription import Subscriber, Notifier, parse_subscription_state

MWI = "application/simple-message-summary"


class _Tp:
    def __init__(self, wire, addr):
        self.wire = wire
        self.addr = addr
        self.host = addr[0]
        self.on_message = None

    def send(self, data, dest):
        self.wire.queue.append((self.addr, dest.addr, bytes(data)))

    def start(self):
        pass


class _App:
    def __init__(self, clock, seed, port):
        self.clock = clock
        self.rng = Random(seed)
        self.log = Log(clock)
        self.sched = Scheduler(clock, log=self.log.write)
        self.identity = SipIdentity("127.0.0.1", port, "localdomain")


class Wire:
    def __init__(self):
        self.clock = VirtualClock()
        self.queue = []
        self.cores = {}
        self.drop = None          # fn(first line) -> True: lost on the wire
        self.seen = []
        self.raw = []

    def side(self, seed, port):
        app = _App(self.clock, seed, port)
        core = SipCore(app, _Tp(self, ("127.0.0.1", port)))
        app.sip = core
        self.cores[("127.0.0.1", port)] = core
        return app, core, user_agent(app)

    def pump(self):
        n = 0
        while self.queue and n < 200:
            n += 1
            src, dst, data = self.queue.pop(0)
            first = data.split(b"\r\n", 1)[0].decode()
            self.seen.append(first)
            self.raw.append(data)
            if self.drop is not None and self.drop(first):
                continue
            self.cores[dst].on_message(parse(data), Source("UDP", src))

    def run(self, ms, step=500):
        end = self.clock.now() + ms
        while True:
            self.pump()
            if self.clock.now() >= end:
                return
            self.clock.burn(min(step, end - self.clock.now()))
            for core in self.cores.values():
                core.on_timer(self.clock.now())


class Watcher:
    def __init__(self):
        self.notes = []
        self.states = []

    def on_notify(self, sub, state, body, ctype):
        self.notes.append((state, bytes(body or b""), ctype))

    def on_state(self, sub):
        self.states.append(sub.state)


class Voicemail:
    """The notifier's module: one mailbox's message summary."""

    def __init__(self, wire, app, core, ua, min_expires=60, max_expires=3600):
        self.ua = ua
        self.clock = wire.clock
        self.subs = []
        self.ended = []
        self.waiting = 0
        self.min_expires = min_expires
        self.max_expires = max_expires
        core.router.add(Module("voicemail", 60, ("SUBSCRIBE",), take=self.take))

    def body(self):
        return ("Messages-Waiting: %s\r\nVoice-Message: %d/0\r\n" % (
            "yes" if self.waiting else "no", self.waiting)).encode()

    def take(self, sreq):
        g = Notifier.check(sreq, ("message-summary",), self.min_expires, self.max_expires)
        if g is not None:
            n = Notifier.accept(self.ua, sreq, self, self.clock.now(), g, self.body(), MWI,
                                self.min_expires, self.max_expires)
            if n is not None:
                self.subs.append(n)
        return True

    def set_waiting(self, n):
        self.waiting = n
        for s in self.subs:
            s.notify(self.body(), MWI, self.clock.now())

    def on_ended(self, n, reason):
        self.ended.append(reason)
        if n in self.subs:
            self.subs.remove(n)


def _pair(seed=1, **kw):
    w = Wire()
    _, _, phone = w.side(seed, 5071)
    app, core, server = w.side(seed + 100, 5072)
    vm = Voicemail(w, app, core, server, **kw)
    watcher = Watcher()
    sub = Subscriber(phone, "message-summary", "sip:2001@127.0.0.1:5072",
                     "sip:2001@127.0.0.1:5071", ("127.0.0.1", 5072), watcher,
                     expires=600, accept=MWI)
    return w, phone, server, vm, watcher, sub


def test_subscribe_notify_changes_refresh_and_unsubscribe():
    w, phone, server, vm, watcher, sub = _pair()
    sub.start(w.clock.now())
    w.run(1000)
    assert sub.state == "active", (sub.state, w.seen)
    assert watcher.notes[0] == ("active", b"Messages-Waiting: no\r\nVoice-Message: 0/0\r\n", MWI)
    assert len(phone.dialogs) == 1 and len(server.dialogs) == 1
    vm.set_waiting(2)
    w.run(1000)
    assert watcher.notes[-1][1].startswith(b"Messages-Waiting: yes"), watcher.notes
    # refreshed in the dialog before the 600 s run out, each refresh answered
    # with a NOTIFY of the current state; the subscription never lapses
    w.run(1800 * 1000, step=5000)
    subs = [x for x in w.seen if x.startswith("SUBSCRIBE")]
    assert 3 <= len(subs) <= 5, subs
    assert sub.state == "active" and vm.ended == [], (sub.state, vm.ended)
    assert len(watcher.notes) >= len(subs) + 1
    sub.stop(w.clock.now())
    w.run(1000)
    assert sub.state == "terminated" and sub.reason == "unsubscribed", (sub.state, sub.reason)
    assert vm.ended == ["unsubscribed"], vm.ended
    assert watcher.notes[-1][0] == "terminated"
    assert len(phone.dialogs) == 0 and len(server.dialogs) == 0
    assert phone.event_subs == [] and server.event_subs == []


def test_changes_while_a_notify_is_outstanding_are_merged():
    w, phone, server, vm, watcher, sub = _pair()
    sub.start(w.clock.now())
    w.run(1000)
    before = len(watcher.notes)
    vm.set_waiting(1)        # a NOTIFY goes out
    vm.set_waiting(2)        # held: one NOTIFY outstanding at a time
    vm.set_waiting(3)
    w.run(1000)
    got = [n[1] for n in watcher.notes[before:]]
    assert got == [b"Messages-Waiting: yes\r\nVoice-Message: 1/0\r\n",
                   b"Messages-Waiting: yes\r\nVoice-Message: 3/0\r\n"], got


def test_unknown_package_short_expiry_and_retry_after_rejection():
    w, phone, server, vm, watcher, sub = _pair(min_expires=900)
    sub.retry_ms = 60000
    sub.start(w.clock.now())
    w.run(1000)
    # 423 with Min-Expires 900: the subscriber raises its expiry and goes on
    assert sub.state == "active" and sub.expires == 900, (sub.state, sub.expires, w.seen)
    bad = Subscriber(phone, "presence", "sip:2001@127.0.0.1:5072", "sip:2001@127.0.0.1:5071",
                     ("127.0.0.1", 5072), Watcher(), retry_ms=60000)
    bad.start(w.clock.now())
    w.run(1000)
    assert bad.state == "failed" and bad.status == 489, (bad.state, bad.status)
    n = len([x for x in w.seen if x.startswith("SUBSCRIBE sip:2001")])
    w.run(61000)
    assert len([x for x in w.seen if x.startswith("SUBSCRIBE sip:2001")]) == n + 1, \
        "retried once after retry_ms"


def test_lost_notify_after_2xx_fails_with_timer_n_then_retries():
    w, phone, server, vm, watcher, sub = _pair()
    sub.retry_ms = 60000
    w.drop = lambda first: first.startswith("NOTIFY")
    sub.start(w.clock.now())
    w.run(40000)
    assert sub.state == "failed" and sub.status == 408, (sub.state, sub.status)
    assert len(phone.dialogs) == 0
    w.drop = None
    w.run(70000)
    assert sub.state == "active", (sub.state, w.seen[-6:])


def test_notifier_expires_an_unrefreshed_subscription():
    w, phone, server, vm, watcher, sub = _pair()
    sub.start(w.clock.now())
    w.run(1000)
    w.drop = lambda first: first.startswith("SUBSCRIBE")    # refreshes are lost
    sub.retry_ms = None
    w.run(700 * 1000, step=5000)
    assert vm.ended == ["timeout"], vm.ended
    # the subscriber gave up when its refresh timed out (408), before the
    # notifier's terminated NOTIFY, which then finds no dialog (481)
    assert sub.state == "failed" and sub.status == 408, (sub.state, sub.status)
    assert len(server.dialogs) == 0 and server.event_subs == []
    assert len(phone.dialogs) == 0 and phone.event_subs == []


def test_subscription_state_header():
    assert parse_subscription_state("active;expires=60") == ("active", {"expires": "60"})
    assert parse_subscription_state("terminated; reason=probation; retry-after=30") == \
        ("terminated", {"reason": "probation", "retry-after": "30"})
    assert parse_subscription_state("") is None


def test_gate_refuses_notifies_from_elsewhere():
    """sub.gate sees every NOTIFY first: a refused one is answered with the
    gate's status and changes nothing."""
    w, phone, server, vm, watcher, sub = _pair()
    seen = []

    def gate(sreq):
        seen.append(sreq.source.addr)
        return (403, "Forbidden (Not The Voicemail Server)") if len(seen) > 1 else None

    sub.gate = gate
    sub.start(w.clock.now())
    w.run(1000)
    assert sub.state == "active" and len(watcher.notes) == 1, (sub.state, watcher.notes)
    assert seen == [("127.0.0.1", 5072)], seen
    vm.set_waiting(4)
    w.run(1000)
    assert len(watcher.notes) == 1, watcher.notes          # the second NOTIFY was refused
    assert "SIP/2.0 403 Forbidden (Not The Voicemail Server)" in w.seen, w.seen[-4:]
    # the notifier ends a subscription whose NOTIFY was rejected
    assert vm.ended == ["rejected"], vm.ended


def test_one_contact_in_notify_and_refresh():
    """The dialog puts its Contact into in-dialog SUBSCRIBE and NOTIFY; the
    usage adds none of its own (baresip saw two in every NOTIFY)."""
    w, phone, server, vm, watcher, sub = _pair()
    sub.start(w.clock.now())
    w.run(1000)
    vm.set_waiting(1)
    sub._refresh(w.clock.now(), 600)
    w.run(1000)
    checked = 0
    for data in w.raw:
        first = data.split(b"\r\n", 1)[0]
        if first.startswith(b"NOTIFY") or first.startswith(b"SUBSCRIBE"):
            head = data.split(b"\r\n\r\n", 1)[0].lower()
            assert head.count(b"\r\ncontact:") == 1, data
            checked += 1
    assert checked >= 4, w.seen
