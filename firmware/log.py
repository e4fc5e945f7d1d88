"""The system log: a bounded ring of entries that `show log` lists.

MAX_LOG_ENTRIES bounds it; when full the oldest entry is dropped and counted
in `dropped`, so a flood of errors can never exhaust memory.

Entries keep the monotonic clock's ms; `time` (firmware/timeofday.py, set by
the appliance) turns them into local dates once the time is synchronised,
and into "uptime 12.345s" before.  `sinks` get every kept entry as it is
written (the remote syslog, firmware/syslog.py).
"""
from firmware.compat import const

MAX_LOG_ENTRIES = const(200)
LEVELS = ("debug", "info", "notice", "warning", "error")


class Log:
    def __init__(self, clock, max_entries=MAX_LOG_ENTRIES, echo=None):
        self.clock = clock
        self.max_entries = max_entries
        self.entries = []   # (ms, level, text)
        self.dropped = 0
        self.echo = echo    # optional callable(line) for errors, e.g. the console
        self.min_level = "info"
        self.time = None    # firmware/timeofday.py TimeOfDay, for dates
        self.sinks = []     # callables(ms, level, text): remote syslog

    def __call__(self, level, text):
        self.write(level, text)

    def write(self, level, text):
        if LEVELS.index(level) < LEVELS.index(self.min_level):
            return
        if len(self.entries) >= self.max_entries:
            self.entries.pop(0)
            self.dropped += 1
        now = self.clock.now()
        self.entries.append((now, level, text))
        for sink in self.sinks:
            sink(now, level, text)
        if self.echo is not None and level == "error":
            self.echo(self.format((now, level, text)))

    def info(self, text):
        self.write("info", text)

    def error(self, text):
        self.write("error", text)

    def format(self, entry):
        ms, level, text = entry
        if self.time is None:
            when = "%9d.%03d" % (ms // 1000, ms % 1000)
        else:
            when = self.time.stamp(ms)
        return "%s %-7s %s" % (when, level, text)

    def lines(self):
        return [self.format(e) for e in self.entries]
