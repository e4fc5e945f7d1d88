"""Remote syslog of the system log: RFC 5424 messages over UDP (RFC 5426).

    set system syslog host 192.0.2.5 facility local3 port 514 level warning

Every entry the log keeps (at or above the host's level) is formatted as

    <PRI>1 TIMESTAMP HOSTNAME branch-voice - - [timeQuality ...] MSG

PRI = facility * 8 + severity.  TIMESTAMP is RFC 3339 UTC with ms once the
time of day is synchronised (firmware/timeofday.py), else the NILVALUE `-`;
the timeQuality element says which (tzKnown, isSynced).  A message is cut to
MAX_MESSAGE bytes (RFC 5426 asks receivers for at least 480; we stay below
the common 1024).

Sending is a scheduler task fed by a bounded queue (MAX_QUEUE): the log
writer never blocks, and when the queue is full the new message is dropped
and counted (`show log` shows the counters).
"""
from firmware.compat import const
from firmware.version import PRODUCT

from firmware.config.system import FACILITIES, MAX_SYSLOG_HOSTS as MAX_HOSTS

MAX_QUEUE = const(64)
MAX_MESSAGE = const(1024)
SEND_BATCH = const(16)      # messages per task turn
SEVERITY = {"debug": 7, "info": 6, "notice": 5, "warning": 4, "error": 3}


def rfc3339(unix_ms):
    from firmware.timeofday import civil_from_days
    days, ms = unix_ms // 86400000, unix_ms % 86400000
    y, mo, d = civil_from_days(days)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        y, mo, d, ms // 3600000, ms // 60000 % 60, ms // 1000 % 60, ms % 1000)


def format_5424(facility, level, text, hostname, unix_ms=None, app_name=PRODUCT):
    """One RFC 5424 message (bytes); unix_ms None: time not synchronised."""
    pri = FACILITIES.index(facility) * 8 + SEVERITY[level]
    stamp = "-" if unix_ms is None else rfc3339(unix_ms)
    sd = '[timeQuality tzKnown="%d" isSynced="%d"]' % ((1, 1) if unix_ms is not None else (0, 0))
    host = hostname or "-"
    msg = "<%d>1 %s %s %s - - %s %s" % (pri, stamp, host, app_name, sd, text)
    data = msg.encode()
    if len(data) > MAX_MESSAGE:
        data = data[:MAX_MESSAGE]
        while data and (data[-1] & 0xC0) == 0x80:     # do not end inside a UTF-8 sequence
            data = data[:-1]
        if data and data[-1] >= 0xC0:
            data = data[:-1]
    return data


class RemoteSyslog:
    """The log sink and its sending task; configure(hosts) with hosts a list
    of (address, port, facility, level)."""

    def __init__(self, app):
        self.app = app
        self.hosts = []
        self.queue = []
        self.dropped = 0
        self.sent = 0
        self.errors = 0
        self.sock = None
        self.task = None
        self.event = None
        self._hooked = False

    def configure(self, hosts):
        hosts = [tuple(h) for h in hosts][:MAX_HOSTS]
        if hosts == self.hosts:
            return
        self.hosts = hosts
        log = self.app.log
        if hosts and not self._hooked:
            log.sinks.append(self.sink)
            self._hooked = True
        elif not hosts and self._hooked:
            log.sinks.remove(self.sink)
            self._hooked = False
            self.queue = []
        if hosts and self.task is None:
            from firmware.sched import Event
            self.event = Event(self.app.sched)
            self.task = self.app.sched.spawn(self._run(), "syslog")
        elif not hosts and self.task is not None:
            self.task.cancel()
            self.task = None
            self._close()

    def sink(self, ms, level, text):
        """Log.write's hook: queue the entry for every host that wants it."""
        t = self.app.time.unix_ms(ms) if getattr(self.app, "time", None) is not None else None
        for host, port, facility, min_level in self.hosts:
            if SEVERITY[level] > SEVERITY[min_level]:
                continue
            if len(self.queue) >= MAX_QUEUE:
                self.dropped += 1
                continue
            self.queue.append(((host, port), format_5424(facility, level, text,
                                                         self.app.hostname, t)))
        if self.queue and self.event is not None:
            self.event.set()

    def _close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    async def _run(self):
        import socket
        from firmware.sipstack.transport import sockaddr
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            self.sock = s
            while True:
                if not self.queue:
                    self.event.clear()
                    await self.event.wait()
                batch = self.queue[:SEND_BATCH]
                self.queue = self.queue[SEND_BATCH:]
                for dest, data in batch:
                    try:
                        s.sendto(data, sockaddr(dest[0], dest[1]))
                        self.sent += 1
                    except OSError:
                        self.errors += 1     # counted, not logged: a log line would loop
                await self.app.sched.sleep(0)
        finally:
            self._close()

    def show(self):
        if not self.hosts:
            return None
        return "Remote syslog to %s: sent %d, dropped %d (queue of %d full), send errors %d" % (
            ", ".join("%s:%d (%s, %s and above)" % h for h in self.hosts),
            self.sent, self.dropped, MAX_QUEUE, self.errors)
