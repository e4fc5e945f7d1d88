# portable: micropython
"""The simulated phone (tests/sim/sipphone.py) against the test registrar and
proxy (tests/sim/sippeer.py), on a virtual clock, on both interpreters:
digest registration with refresh and unregistration, calls through the
record-routing proxy with hold/resume from either side and hang-up from
either side, all on the simulated network (tests/sim/simnet.py), CANCEL, busy, 407-challenged INVITEs, a wrong password, and a
lossy run whose tables all drain.  A failure prints its seed."""
import hashlib

from firmware.sched import Scheduler, VirtualClock
from tests.sim.simnet import SimNetwork
from tests.sim.sippeer import SipPeer, MAGIC
from tests.sim.sipphone import PhoneNet

USERS = {"2001": "Secret-2001", "2002": "Secret-2002", "2003": "Secret-2003"}


class PortablePeer(SipPeer):
    """SipPeer without hexdigest (MicroPython has none)."""

    def _branch(self, req):
        b = req.top_via.branch or ""
        d = hashlib.md5(("%s|%s" % (b, self.port)).encode()).digest()
        return MAGIC + "".join(["%02x" % x for x in d[:8]])


class World:
    def __init__(self, seed, loss=0.0, challenge_invites=False, users=USERS, trace=0):
        self.seed = seed
        self.sched = Scheduler(VirtualClock())
        # the peer and the phones on a simulated network: no sockets
        self.network = SimNetwork(seed)
        self.network.attach(self.sched)
        self.peer = PortablePeer(self.sched, users, realm="hq.example",
                                 challenge_invites=challenge_invites, network=self.network)
        self.peer.start()
        self.net = PhoneNet(self.sched, seed=seed, loss=loss, trace=trace, network=self.network)
        dom = "127.0.0.1:%d" % self.peer.port
        self.phones = {}
        for user in sorted(users):
            self.phones[user] = self.net.add(user, USERS.get(user, "x"), dom,
                                             ("127.0.0.1", self.peer.port))
        self.events = []
        for p in self.net.phones:
            p.on_event = self._event
        self.net.start()

    def _event(self, phone, call, event):
        self.events.append((phone.user, event))

    def now(self):
        return self.sched.clock.now()

    def run(self, ms):
        self.sched.run(until=self.now() + ms)

    def run_until(self, cond, limit_ms, step=50):
        end = self.now() + limit_ms
        while self.now() < end and not cond():
            self.run(step)
        assert cond(), "seed %d: condition not met within %d ms; events %r" % (
            self.seed, limit_ms, self.events[-20:])

    def close(self):
        self.net.close()
        self.peer.close()

    def register_all(self, expires=600):
        for p in self.net.phones:
            p.register(expires)
        self.run_until(lambda: all([p.registered for p in self.net.phones]), 40000)

    def settled(self):
        """Every transaction ended (Timer J/K/L/M at most 64*T1), nothing left."""
        self.run(40000)
        lk = self.net.leaks()
        assert lk == {"transactions": 0, "dialogs": 0, "calls": 0, "timers": 0}, (
            self.seed, lk)
        assert self.net.errors() == [], self.net.errors()


def _connected(a, b):
    return lambda: a.state == "connected" and b is not None and b.state == "connected" \
        and b.acked


def test_register_with_digest_refresh_and_unregister():
    w = World(11)
    try:
        a = w.phones["2001"]
        a.register(120)
        w.run(2000)
        assert a.registered and a.granted == 120, (a.reg_state, a.counters)
        assert w.peer.bindings["2001"][0] == "sip:2001@%s:%d" % (a.host, a.port)
        assert a.counters["reg_challenged"] == 1 and a.counters["reg_ok"] == 1
        w.run(600000)                               # refreshed at 80-95 % of 120 s
        assert a.registered
        assert 5 <= a.counters["reg_refreshes"] <= 10, a.counters
        assert a.counters["reg_ok"] == a.counters["reg_refreshes"] + 1
        assert a.counters["reg_failed"] == 0
        a.unregister()
        w.run(2000)
        assert not a.registered and "2001" not in w.peer.bindings
        assert a.counters["unreg_ok"] == 1 and a.reg_state == "idle"
        w.settled()
    finally:
        w.close()


def test_wrong_password_fails_and_retries_later():
    w = World(12, users={"2001": "other-secret", "2002": USERS["2002"]})
    try:
        a = w.phones["2001"]
        a.retry_ms = 10000
        a.register()
        w.run(3000)
        assert not a.registered and a.reg_state == "failed"
        assert a.counters["reg_failed_401"] == 1, a.counters
        w.run(7000)                                            # retried after 10-15 s:
        assert a.counters["reg_failed_401"] == 1, a.counters   # not before 10 s,
        w.run(5500)
        assert a.counters["reg_failed_401"] == 2, a.counters   # but by 15.5 s
        assert ("2001", "register_failed") in w.events
    finally:
        w.close()


def test_call_hold_resume_and_hangup_from_either_side():
    w = World(13)
    try:
        w.register_all()
        a, b = w.phones["2001"], w.phones["2002"]
        inc = []
        b.on_incoming = lambda p, c: inc.append(c) or ("answer", 3000)
        c = a.call("2002")
        w.run_until(lambda: c.state == "ringing", 2000)
        w.run(1000)
        assert c.state == "ringing" and len(inc) == 1 and inc[0].state == "ringing"
        w.run_until(lambda: _connected(c, inc[0])(), 5000)
        cb = inc[0]
        assert cb.remote == "2001" and c.remote == "2002"
        assert w.peer.log[0] == ("REGISTER", "sip:127.0.0.1:%d" % w.peer.port)
        # hold and resume from the caller, then from the callee
        assert a.hold(c)
        w.run_until(lambda: c.held and cb.remote_held, 2000)
        assert a.resume(c)
        w.run_until(lambda: not c.held and not cb.remote_held, 2000)
        assert b.hold(cb)
        w.run_until(lambda: cb.held and c.remote_held, 2000)
        assert b.resume(cb)
        w.run_until(lambda: not cb.held and not c.remote_held, 2000)
        # in-dialog requests went through the proxy (Record-Route)
        assert len([m for m in w.peer.log if m[0] == "INVITE"]) == 5
        assert len([m for m in w.peer.log if m[0] == "ACK"]) == 5
        a.hangup(c)
        w.run_until(lambda: cb.state == "terminated" and c.bye_status == 200, 2000)
        assert c.end_reason == "bye_sent" and cb.end_reason == "bye_received"
        # a second call, ended by the callee
        inc[:] = []
        c2 = a.call("2002")
        w.run_until(lambda: inc and _connected(c2, inc[0])(), 6000)
        b.hangup(inc[0])
        w.run_until(lambda: c2.state == "terminated" and inc[0].bye_status == 200, 2000)
        assert c2.end_reason == "bye_received"
        assert a.counters["calls_answered"] == 2 and b.counters["calls_in_confirmed"] == 2
        assert a.counters["calls_completed"] == 2 and b.counters["calls_completed"] == 2
        assert a.counters["reinvite_ok"] == 2 and b.counters["reinvite_ok"] == 2
        w.settled()
    finally:
        w.close()


def test_cancel_busy_and_unknown():
    w = World(14)
    try:
        w.register_all()
        a, b, c3 = w.phones["2001"], w.phones["2002"], w.phones["2003"]
        b.ring_ms = None                    # rings until cancelled
        c = a.call("2002")
        w.run_until(lambda: c.state == "ringing" and b.calls, 2000)
        bc = b.calls[0]
        a.hangup(c)
        w.run_until(lambda: c.state == "terminated" and bc.state == "terminated", 2000)
        assert c.end_reason == "cancelled" and c.status == 487, c
        assert bc.end_reason == "cancelled_by_remote"
        c3.busy = True
        c = a.call("2003")
        w.run_until(lambda: c.state == "terminated", 2000)
        assert c.status == 486 and a.counters["calls_failed_486"] == 1
        c = a.call("2999")
        w.run_until(lambda: c.state == "terminated", 2000)
        assert c.status == 404
        # the callee declines while ringing
        c = a.call("2002")
        w.run_until(lambda: b.calls, 2000)
        b.hangup(b.calls[0])
        w.run_until(lambda: c.state == "terminated", 2000)
        assert c.status == 603 and b.counters["calls_in_declined"] == 1
        # cancel before any provisional: the CANCEL waits for one (§9.1)
        b.ring_ms = 1000
        c = a.call("2002")
        a.hangup(c)
        assert c.cancel_pending
        w.run_until(lambda: c.state == "terminated", 3000)
        assert c.end_reason == "cancelled", c
        w.settled()
    finally:
        w.close()


def test_challenged_invite_is_retried_with_proxy_authorization():
    w = World(15, challenge_invites=True)
    try:
        w.register_all()
        a, b = w.phones["2001"], w.phones["2002"]
        c = a.call("2002")
        w.run_until(lambda: c.state == "connected" and b.calls and b.calls[0].acked, 4000)
        assert a.counters["calls_auth_retries"] == 1
        a.hangup(c)
        w.settled()
    finally:
        w.close()


def test_lossy_calls_all_complete_and_tables_drain():
    seed = 16
    w = World(seed, loss=0.2, trace=64)
    try:
        w.register_all()
        a, b = w.phones["2001"], w.phones["2002"]
        b.ring_ms = 1500
        done = []
        for i in range(12):
            c = a.call("2002")
            w.run_until(lambda: c.state == "connected" and b.calls and b.calls[0].acked, 40000)
            bc = b.calls[0]
            if i % 3 == 0:
                (a if i % 2 else b).hold(c if i % 2 else bc)
                w.run(5000)
            (a.hangup(c) if i % 2 else b.hangup(bc))
            w.run_until(lambda: c.state == "terminated" and bc.state == "terminated", 40000)
            done.append((c, bc))
            w.run(3000)
        w.run(40000)
        ctr = w.net.counters()
        assert ctr["tx_lost"] > 0 and ctr["rx_lost"] > 0
        for c, bc in done:
            assert c.answered_at is not None, (seed, c)
            bye = c.bye_status if c.end_reason == "bye_sent" else bc.bye_status
            assert bye == 200, (seed, c, bc, bye, a.trace_for(c.call_id))
        w.settled()
    finally:
        w.close()
