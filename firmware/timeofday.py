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

Time zones (`system time-zone`) need no tz database: `UTC`, fixed offsets
`UTC+2`, `UTC-05:30`, and a few named zones in ZONES with the daylight-saving
rule in force today (EU: last Sunday of March to last Sunday of October at
01:00 UTC; US: second Sunday of March to first Sunday of November at 02:00
local).  Past or future rule changes are not known; fixed offsets never
change.

NtpService is the I/O shell of the SNTP client: one scheduler task, one UDP
socket, bounded retries (see firmware/sntp.py).
"""
from firmware.compat import const

STEP_LOG_MS = const(1000)   # a correction larger than this is logged

# name: (standard offset in minutes, DST rule or None, standard abbreviation, DST abbreviation)
ZONES = {
    "UTC": (0, None, "UTC", "UTC"),
    "GMT": (0, None, "GMT", "GMT"),
    "Europe/London": (0, "EU", "GMT", "BST"),
    "Europe/Dublin": (0, "EU", "GMT", "IST"),
    "Europe/Lisbon": (0, "EU", "WET", "WEST"),
    "Europe/Berlin": (60, "EU", "CET", "CEST"),
    "Europe/Paris": (60, "EU", "CET", "CEST"),
    "Europe/Amsterdam": (60, "EU", "CET", "CEST"),
    "Europe/Brussels": (60, "EU", "CET", "CEST"),
    "Europe/Madrid": (60, "EU", "CET", "CEST"),
    "Europe/Rome": (60, "EU", "CET", "CEST"),
    "Europe/Vienna": (60, "EU", "CET", "CEST"),
    "Europe/Zurich": (60, "EU", "CET", "CEST"),
    "Europe/Stockholm": (60, "EU", "CET", "CEST"),
    "Europe/Warsaw": (60, "EU", "CET", "CEST"),
    "Europe/Helsinki": (120, "EU", "EET", "EEST"),
    "Europe/Athens": (120, "EU", "EET", "EEST"),
    "America/New_York": (-300, "US", "EST", "EDT"),
    "America/Chicago": (-360, "US", "CST", "CDT"),
    "America/Denver": (-420, "US", "MST", "MDT"),
    "America/Phoenix": (-420, None, "MST", "MST"),
    "America/Los_Angeles": (-480, "US", "PST", "PDT"),
    "Asia/Tokyo": (540, None, "JST", "JST"),
    "Asia/Kolkata": (330, None, "IST", "IST"),
    "Asia/Singapore": (480, None, "SGT", "SGT"),
}


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


def _nth_sunday(y, m, n):
    """Day number of the n-th Sunday of month m (n = -1: the last)."""
    if n > 0:
        first = days_from_civil(y, m, 1)
        return first + (7 - weekday(first)) % 7 + 7 * (n - 1)
    nm, ny = (m + 1, y) if m < 12 else (1, y + 1)
    last = days_from_civil(ny, nm, 1) - 1
    return last - weekday(last)


def _dst_active(rule, std_min, unix_ms):
    y = civil_from_days(unix_ms // 86400000)[0]
    if rule == "EU":
        start = _nth_sunday(y, 3, -1) * 86400000 + 3600000
        end = _nth_sunday(y, 10, -1) * 86400000 + 3600000
    else:   # US: 02:00 local standard time, back at 02:00 local daylight time
        start = _nth_sunday(y, 3, 2) * 86400000 + (120 - std_min) * 60000
        end = _nth_sunday(y, 11, 1) * 86400000 + (120 - std_min - 60) * 60000
    return start <= unix_ms < end


def parse_zone(text):
    """(offset minutes, rule, std abbreviation, dst abbreviation, canonical name);
    ValueError with the reason for anything else."""
    z = ZONES.get(text)
    if z is not None:
        return z + (text,)
    t = text
    for pre in ("UTC", "GMT"):
        if t.startswith(pre) and len(t) > 3 and t[3] in "+-":
            sign = -1 if t[3] == "-" else 1
            rest = t[4:]
            hh, sep, mm = rest.partition(":")
            if not sep and len(rest) == 4:
                hh, mm = rest[:2], rest[2:]
            if not hh.isdigit() or (mm and not mm.isdigit()) or (sep and len(mm) != 2):
                break
            h, m = int(hh), int(mm or "0")
            if h > 14 or m > 59 or h * 60 + m > 14 * 60:
                raise ValueError("offset out of range UTC-14:00..UTC+14:00")
            off = sign * (h * 60 + m)
            label = "UTC%s%02d:%02d" % ("-" if off < 0 else "+", abs(off) // 60, abs(off) % 60)
            return (off, None, label, label, text)
    raise ValueError("expected UTC, UTC+H, UTC-HH:MM or one of: %s" % ", ".join(sorted(ZONES)))


class TimeOfDay:
    def __init__(self, clock, log=None):
        self.clock = clock
        self.log = log
        self.offset = None      # unix ms - monotonic ms, once synchronised
        self.last_sync = None   # monotonic ms of the last answer
        self.server = None      # who answered it
        self.delay = None       # its round-trip delay, ms
        self.zone = ZONES["UTC"] + ("UTC",)

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
        self.zone = parse_zone(text)

    def zone_at(self, unix_ms):
        """(offset minutes, abbreviation) in force at unix_ms."""
        off, rule, std, dst = self.zone[0], self.zone[1], self.zone[2], self.zone[3]
        if rule is not None and _dst_active(rule, off, unix_ms):
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


class NtpService:
    """The SNTP client's task: `configure(servers)` starts, restarts or stops it."""

    def __init__(self, app):
        self.app = app
        self.servers = []
        self.client = None
        self.task = None
        self.sock = None
        self.errors = 0

    def configure(self, servers):
        servers = [(h, p) for h, p in servers]
        if servers == self.servers and (self.task is not None or not servers):
            return
        self.stop()
        self.servers = servers
        if servers:
            from firmware.sntp import SntpClient
            self.client = SntpClient(servers, self.app.rng, now=self.app.clock.now())
            self.task = self.app.sched.spawn(self._run(self.client), "ntp")

    def stop(self):
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.task = None
        self.client = None
        self._close()

    def _close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def _open(self):
        import socket
        from firmware.sipstack.transport import sockaddr
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(sockaddr("0.0.0.0", 0))
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        self.sock = s

    async def _run(self, client):
        from firmware.sched import TimeoutError
        from firmware.sipstack.transport import sockaddr, peer
        app = self.app
        sched = app.sched
        log = app.log.write
        try:
            self._open()
            while client is self.client:
                now = app.clock.now()
                for act in client.poll(now):
                    if act[0] == "send":
                        try:
                            self.sock.sendto(act[2], sockaddr(act[1][0], act[1][1]))
                        except OSError as e:
                            self.errors += 1
                            log("warning", "ntp: cannot send to %s:%d: %s" % (act[1][0], act[1][1], e))
                    elif act[0] == "failed":
                        log("warning", "ntp: no answer from %s; next try in %d s" % (
                            ", ".join("%s:%d" % s for s in client.servers),
                            (client.next_ms - now) // 1000))
                wait = client.next_deadline() - app.clock.now()
                try:
                    await sched.readable(self.sock, max(0, wait))
                except TimeoutError:
                    continue
                for _ in range(8):      # bounded work per wake-up
                    try:
                        data, raw = self.sock.recvfrom(128)
                    except OSError:
                        break
                    r = client.receive(data, peer(raw), app.clock.now())
                    if r is None:
                        continue
                    if r[0] == "sync":
                        app.time.set(r[1], app.clock.now(), r[2], r[3])
                    elif r[0] == "kod":
                        log("warning", "ntp: %s:%d sent kiss-o'-death %s" % (r[1][0], r[1][1], r[2]))
                    else:
                        log("warning", "ntp: answer from %s:%d refused: %s" % (r[1][0], r[1][1], r[2]))
        finally:
            if client is self.client or self.client is None:
                self._close()

    def show(self):
        c = self.client
        if c is None:
            return "NTP: no server configured"
        return "NTP servers: %s (requests %d, answers used %d, refused %d, dropped %d)" % (
            ", ".join("%s:%d" % s for s in c.servers), c.sent, c.syncs, c.rejected, c.dropped)
