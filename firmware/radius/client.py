"""The accounting client without I/O: which record goes to which server
when, retransmission with back-off, failover, and response checking.  The
I/O shell (service.py) sends what poll() asks and feeds receive() what
arrives; tests drive it directly on a virtual clock.

One record is outstanding at a time, the head of the backlog (journal.py):
records reach the server in the order they were made, a replay after an
outage included.  A request is retransmitted after `timeout`, doubling each
time (capped at MAX_BACKOFF_MS), `retries` times; then the server is marked
down for `dead_time` and the next server in configuration order that is not
down takes the same record (failover).  The client stays with a server that
answers.  While every server is down records wait in the backlog; when the
first dead time ends, the head record probes that server again.

Each transmission carries Acct-Delay-Time (seconds since the event).  A
retransmission whose delay is unchanged is the same packet; one whose delay
changed gets a new Identifier and authenticator (RFC 2866 5.2).  A response
to any transmission of the record to that server acknowledges it.
"""
from firmware.compat import const
from firmware.radius import packet as P
from firmware.radius.config import MAX_SERVERS
MAX_BACKOFF_MS = const(32000)
MAX_TRANSMISSIONS = const(12)     # packets remembered for one record on one server


class Server:
    def __init__(self, host, port, secret):
        self.addr = (host, port)
        self.secret = secret if isinstance(secret, bytes) else secret.encode()
        self.state = "unknown"      # unknown / up / down
        self.down_until = 0
        self.ident = 0
        self.sent = 0
        self.retransmitted = 0
        self.acked = 0
        self.timeouts = 0
        self.bad = 0
        self.last_bad = None

    def next_ident(self):
        self.ident = (self.ident + 1) & 0xFF
        return self.ident


class Client:
    def __init__(self, journal, servers, timeout_ms=3000, retries=3, dead_ms=60000,
                 wall=None, log=None):
        self.journal = journal
        self.servers = servers[:MAX_SERVERS]
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.dead_ms = dead_ms
        self.wall = wall or (lambda: None)     # unix ms now, or None
        self.log = log
        self.current = 0            # index of the server in use
        self.rec = None             # the record outstanding
        self.packets = []           # its transmissions to the current server
        self.tries = 0
        self.delay = None
        self.deadline = None
        self.next_ms = 0            # when poll() has something to do
        self.failovers = 0

    # --- what to do when ----------------------------------------------------
    def next_deadline(self, now):
        if self.rec is not None:
            return self.deadline
        if not self.journal.pending:
            return None
        return max(now, self.next_ms)

    def state(self, now):
        if all(s.state == "down" and s.down_until > now for s in self.servers):
            return "all servers down: records wait in the backlog"
        s = self.servers[self.current]
        return "sending to %s:%d" % s.addr if self.rec is not None else "idle"

    def _pick(self, now):
        n = len(self.servers)
        for i in range(n):
            j = (self.current + i) % n
            s = self.servers[j]
            if s.state != "down" or s.down_until <= now:
                self.current = j
                return s
        return None

    def poll(self, now):
        """[(addr, bytes)] to send now."""
        out = []
        if self.rec is not None and now >= self.deadline:
            s = self.servers[self.current]
            if self.tries > self.retries:
                s.timeouts += 1
                s.state = "down"
                s.down_until = now + self.dead_ms
                if self.log:
                    self.log("warning", "radius: accounting server %s:%d does not answer; "
                             "skipped for %d s" % (s.addr[0], s.addr[1], self.dead_ms // 1000))
                self._drop_outstanding()
                if len(self.servers) > 1:
                    self.failovers += 1
                self.current = (self.current + 1) % len(self.servers)
            else:
                out.append(self._transmit(s, now))
        if self.rec is None and self.journal.pending and self.servers:
            s = self._pick(now)
            if s is None:
                self.next_ms = min(x.down_until for x in self.servers)
            else:
                self.rec = self.journal.pending[0]
                self.packets = []
                self.tries = 0
                self.delay = None
                out.append(self._transmit(s, now))
        return out

    def _drop_outstanding(self):
        self.rec = None
        self.packets = []
        self.deadline = None

    def delay_s(self, rec, now):
        w = self.wall() if rec.reloaded and rec.wall is not None else None
        if w is not None:       # made before a reboot: only the wall clock spans it
            return max(0, (w - rec.wall) // 1000)
        return max(0, (now - rec.made_ms) // 1000)

    def _transmit(self, s, now):
        d = self.delay_s(self.rec, now)
        if self.packets and d == self.delay:
            data = self.packets[-1]
            s.retransmitted += 1
        else:
            attrs = list(self.rec.attrs)
            attrs.append((P.ACCT_DELAY_TIME, d))
            data = P.accounting_request(s.next_ident(), s.secret, attrs)
            if self.packets:
                s.retransmitted += 1
            else:
                s.sent += 1
            self.packets.append(data)
            if len(self.packets) > MAX_TRANSMISSIONS:
                self.packets.pop(0)
            self.delay = d
        self.deadline = now + min(self.timeout_ms << self.tries, MAX_BACKOFF_MS)
        self.tries += 1
        return (s.addr, data)

    # --- what arrives -------------------------------------------------------
    def receive(self, data, addr, now):
        """The record acknowledged, or None (not for us, or refused: counted)."""
        if self.rec is None:
            return None
        s = self.servers[self.current]
        if tuple(addr) != s.addr:
            for x in self.servers:
                if tuple(addr) == x.addr:
                    x.bad += 1
                    x.last_bad = "late answer after failover"
            return None
        why = "no request outstanding"
        for p in self.packets:
            why = P.check_response(data, p, s.secret)
            if why is None:
                break
        if why is not None:
            s.bad += 1
            s.last_bad = why
            return None
        rec = self.rec
        s.acked += 1
        if s.state != "up" and self.log and s.state == "down":
            self.log("info", "radius: accounting server %s:%d answers again" % s.addr)
        s.state = "up"
        s.down_until = 0
        self._drop_outstanding()
        self.journal.done(rec)
        return rec
