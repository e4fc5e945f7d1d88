"""The time of day: the one place that says what time it is (`app.time`).

    app.time.now()          # ms since 1970 (UTC), or None until synchronised
    app.time.synced         # True once an SNTP server answered
    app.time.stamp(ms)      # a monotonic-clock instant as text: the local date
                            # once synchronised, "uptime 12.345s" before
    app.time.local(unix_ms) # "2026-12-02 11:26:07 CET"

Time of day comes only from SNTP (firmware/sntp.py, `system ntp server`):
the monotonic clock plus the offset of the last answer.  Until then nothing
pretends to know the date, and every timestamp says so.  Instants taken
before the sync are converted with the same offset afterwards (the monotonic
clock is continuous), so `show log` shows dates for the boot lines too.

Time zones (`system time-zone`, firmware/timezones.py, loaded for a zone
other than UTC) need no tz database: fixed offsets and a few named zones with
the daylight-saving rule in force today.  The SNTP task is firmware/ntp.py,
loaded once a server is configured.
"""
from firmware.compat import const

STEP_LOG_MS = const(1000)   # a correction larger than this is logged
UTC = (0, None, "UTC", "UTC", "UTC")   # (offset min, DST rule, std abbr, DST abbr, name)

# --- calendar (proleptic Gregorian, days since 1970-01-01) ---------------------------

def days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return (y + (m <= 2), m, d)


def weekday(days):
    """0 = Sunday for days since 1970-01-01 (a Thursday)."""
    return (days + 4) % 7


class TimeOfDay:
    def __init__(self, clock, log=None):
        self.clock = clock
        self.log = log
        self.offset = None      # unix ms - monotonic ms, once synchronised
        self.last_sync = None   # monotonic ms of the last answer
        self.server = None      # who answered it
        self.delay = None       # its round-trip delay, ms
        self.zone = UTC

    @property
    def synced(self):
        return self.offset is not None

    def now(self):
        """ms since 1970 UTC, or None until an SNTP server answered."""
        return None if self.offset is None else self.clock.now() + self.offset

    def unix_ms(self, mono_ms):
        return None if self.offset is None else mono_ms + self.offset

    def set(self, unix_ms, mono_ms, server=None, delay=None):
        """An SNTP answer: unix_ms was the time at mono_ms on our clock."""
        new = unix_ms - mono_ms
        old = self.offset
        self.offset = new
        self.last_sync = mono_ms
        self.server = server
        self.delay = delay
        if self.log is not None:
            src = "%s:%d" % server if server else "?"
            if old is None:
                self.log("notice", "time synchronised from %s: %s" % (src, self.local(unix_ms)))
            elif abs(new - old) > STEP_LOG_MS:
                self.log("notice", "time stepped by %+d ms (from %s)" % (new - old, src))

    def set_zone(self, text):
        if text == "UTC":
            self.zone = UTC
            return
        from firmware.timezones import parse_zone
        self.zone = parse_zone(text)

    def zone_at(self, unix_ms):
        """(offset minutes, abbreviation) in force at unix_ms."""
        off, rule, std, dst = self.zone[0], self.zone[1], self.zone[2], self.zone[3]
        if rule is not None:
            from firmware.timezones import dst_active
            if dst_active(rule, off, unix_ms):
                return off + 60, dst
        return off, std

    def local(self, unix_ms, millis=False, zone=True):
        off, abbr = self.zone_at(unix_ms)
        t = unix_ms + off * 60000
        days, ms = t // 86400000, t % 86400000
        y, mo, d = civil_from_days(days)
        s = "%04d-%02d-%02d %02d:%02d:%02d" % (y, mo, d, ms // 3600000, ms // 60000 % 60,
                                                ms // 1000 % 60)
        if millis:
            s += ".%03d" % (ms % 1000)
        if zone:
            s += " " + abbr
        return s

    def stamp(self, mono_ms, millis=True):
        """A monotonic instant as text: local date and time once synchronised,
        else the time since boot, marked as such."""
        if self.offset is None:
            return "uptime %d.%03ds" % (mono_ms // 1000, mono_ms % 1000)
        return self.local(mono_ms + self.offset, millis, zone=False)
