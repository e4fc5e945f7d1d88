# portable: micropython
"""The SIP core's TU timer table (firmware/sipstack/core.py call_later): due timers
fire in the timer task, a cancelled timer lets go of its callback at once
(its closure may hold a whole call), cancelled entries do not accumulate
while no timer comes due, and the table's bound MAX_TU_TIMERS raises
TimerTableFull only for live timers."""
from firmware.sipstack.identity import SipIdentity
from sip.timers import COMPACT_MIN, TimerTableFull
from firmware.sipstack import core as C
from firmware.compat import Random
from firmware.log import Log
from firmware.sched import Scheduler, VirtualClock
from tests.portable import raises


class _Tp:
    host = "127.0.0.1"
    on_message = None

    def send(self, data, dest):
        pass

    def start(self):
        pass


class _App:
    def __init__(self):
        self.clock = VirtualClock()
        self.rng = Random(5)
        self.log = Log(self.clock)
        self.sched = Scheduler(self.clock, log=self.log.write)
        self.identity = SipIdentity("127.0.0.1", 5070, "localdomain")
        self.sip_port = 5070


def _core():
    app = _App()
    core = C.SipCore(app, _Tp())
    core.start()
    return app, core


def test_due_timers_fire_in_deadline_order_and_cancelled_ones_never():
    app, core = _core()
    out = []
    core.call_later(300, lambda: out.append(("b", app.clock.now())))
    core.call_later(100, lambda: out.append(("a", app.clock.now())))
    gone = core.call_later(200, lambda: out.append(("never", app.clock.now())))
    gone.cancel()
    app.sched.run(until=1000)
    assert out == [("a", 100), ("b", 300)], out


def test_cancelled_timers_release_their_callbacks_and_do_not_accumulate():
    app, core = _core()
    held = core.call_later(3600000, lambda: None)     # one long live timer
    for i in range(5000):          # calls set up and ended; nothing comes due
        t = core.call_later(180000, lambda: i)
        t.cancel()
        assert t.fn is None
    live = core.timers.live()
    assert live == [held]
    assert len(core.timers) <= COMPACT_MIN, len(core.timers)
    assert all(t.fn is None for t in core.timers.timers if not t.active)


def test_the_table_bound_counts_live_timers_only():
    app, core = _core()
    timers = [core.call_later(1000 + i, lambda: None) for i in range(C.MAX_TU_TIMERS)]
    assert raises(TimerTableFull, core.call_later, 10, lambda: None)
    timers[0].cancel()
    core.call_later(10, lambda: None)           # room again once one is cancelled
    assert raises(TimerTableFull, core.call_later, 10, lambda: None)
