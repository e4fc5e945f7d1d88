"""A bounded table of TU timers, sans-I/O: deadlines in milliseconds go in,
the next deadline and the due callbacks come out.  The SIP core owns one
table and runs it beside the transaction layer's timers; the dialog usages
(sip/usage/) and the services schedule on it.

    timers = TimerTable(max_timers)
    t = timers.add(deadline, fn, with_now=False)   fn() (or fn(now)) when due;
                                 TimerTableFull when max_timers live timers exist
    t.cancel()                   the callback is dropped at once
    timers.next_deadline() -> ms or None
    timers.due(now) -> [timer]   removed from the table; fire each with t.fire(now)

Cancelled timers stay in the list until a sweep, which runs whenever the
list has doubled since the last one (at least COMPACT_MIN entries): ended
calls release their closures at once and the list stays small.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

COMPACT_MIN = const(32)


class TimerTableFull(Exception):
    pass


class Timer:
    __slots__ = ("deadline", "fn", "active", "with_now")

    def __init__(self, deadline, fn, with_now):
        self.deadline = deadline
        self.fn = fn
        self.active = True
        self.with_now = with_now

    def cancel(self):
        # Drop the callback now: a cancelled timer waits in the table until the
        # next sweep, and its closure may hold a whole call.
        self.active = False
        self.fn = None

    def fire(self, now):
        fn = self.fn
        self.active = False
        self.fn = None
        if fn is not None:
            if self.with_now:
                fn(now)
            else:
                fn()


class TimerTable:
    def __init__(self, max_timers):
        self.max_timers = max_timers
        self.timers = []
        self._compact_at = COMPACT_MIN

    def __len__(self):
        return len(self.timers)

    def add(self, deadline, fn, with_now=False):
        if len(self.timers) >= self._compact_at or len(self.timers) >= self.max_timers:
            self.timers = [t for t in self.timers if t.active]
            self._compact_at = max(COMPACT_MIN, 2 * len(self.timers))
            if len(self.timers) >= self.max_timers:
                raise TimerTableFull("TU timer table full (%d)" % self.max_timers)
        t = Timer(deadline, fn, with_now)
        self.timers.append(t)
        return t

    def next_deadline(self):
        d = None
        for t in self.timers:
            if t.active and (d is None or t.deadline < d):
                d = t.deadline
        return d

    def due(self, now):
        """The live timers due at `now`, earliest first, taken off the table."""
        due = [t for t in self.timers if t.active and t.deadline <= now]
        if due:
            self.timers = [t for t in self.timers if t.active and t.deadline > now]
            due.sort(key=_deadline)
        return due

    def live(self):
        return [t for t in self.timers if t.active]


def _deadline(t):
    return t.deadline
