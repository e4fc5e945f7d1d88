"""SNTP client (RFC 4330), sans-I/O: packets in and out, `now` in ms of the
monotonic clock, no sockets and no clock reads.  The I/O shell is
firmware/timeofday.py (a scheduler task with one UDP socket).

    c = SntpClient([("192.0.2.1", 123)], rng)
    for act in c.poll(now):          # ("send", (host, port), bytes) | ("timeout", server)
        ...                          # | ("failed", None): every server failed this round
    r = c.receive(data, (host, port), now)
    # ("sync", unix_ms_at_now, server, delay_ms) | ("reject", server, reason)
    # | ("kod", server, code) | None (not an answer to our request: dropped, counted)
    c.next_deadline()                # when poll() has something to do

The request's transmit timestamp is 64 random bits, not our time (we do not
know it yet): the server echoes it as the originate timestamp, which ties an
answer to our request (RFC 4330 section 5 checks, plus the source address).
The time at our receive instant is T3 + delay / 2 with delay = (T4 - T1) -
(T3 - T2), T1/T4 on our monotonic clock and T2/T3 the server's stamps.

Bounds: MAX_TRIES requests per server per round, REQUEST_TIMEOUT_MS each;
after a failed round the next one waits RETRY_MIN_MS, doubling up to
POLL_MS; after a sync the next poll is POLL_MS later.  A kiss-o'-death RATE
moves on to the next server; DENY or RSTR stops using that server.
"""
from firmware.compat import const

NTP_PORT = const(123)
PACKET_LEN = const(48)
REQUEST_TIMEOUT_MS = const(2000)
MAX_TRIES = const(2)              # requests to one server in one round
RETRY_MIN_MS = const(16000)       # after a failed round (RFC 4330: at least 15 s)
POLL_MS = const(1024000)          # between polls once synchronised; the longest retry wait
NTP_UNIX_DELTA = 2208988800       # seconds from 1900-01-01 to 1970-01-01
_ERA = 1 << 32

MODE_CLIENT = const(3)
MODE_SERVER = const(4)


def build_request(nonce):
    """A 48-byte SNTP request: LI 0, version 4, mode 3 (client); nonce (8 bytes)
    as the transmit timestamp."""
    if len(nonce) != 8:
        raise ValueError("nonce must be 8 bytes")
    pkt = bytearray(PACKET_LEN)
    pkt[0] = (4 << 3) | MODE_CLIENT
    pkt[40:48] = nonce
    return bytes(pkt)


def ntp_to_unix_ms(stamp):
    """A 64-bit NTP timestamp (bytes) as ms since 1970 (era 0 until 2036, then
    era 1: RFC 4330 section 3's rule on the top bit)."""
    sec = int.from_bytes(stamp[0:4], "big")
    frac = int.from_bytes(stamp[4:8], "big")
    if sec & 0x80000000:
        unix = sec - NTP_UNIX_DELTA
    else:
        unix = sec + _ERA - NTP_UNIX_DELTA
    return unix * 1000 + ((frac * 1000 + (1 << 31)) >> 32)


def unix_ms_to_ntp(ms):
    """ms since 1970 as an 8-byte NTP timestamp (for tests and responders)."""
    sec = (ms // 1000 + NTP_UNIX_DELTA) % _ERA
    frac = ((ms % 1000) << 32) // 1000
    return sec.to_bytes(4, "big") + frac.to_bytes(4, "big")


def parse_response(data, nonce):
    """Check a server's answer to the request with this nonce.  Returns
    ("ok", T2 ms, T3 ms, stratum), ("kod", code) or ("reject", reason)."""
    if len(data) < PACKET_LEN:
        return ("reject", "short packet (%d bytes)" % len(data))
    b0 = data[0]
    li, vn, mode = b0 >> 6, (b0 >> 3) & 7, b0 & 7
    if mode != MODE_SERVER:
        return ("reject", "mode %d, not a server answer" % mode)
    if vn not in (3, 4):
        return ("reject", "version %d" % vn)
    if data[24:32] != nonce:
        return ("reject", "originate timestamp does not match our request")
    stratum = data[1]
    if stratum == 0:
        code = "".join(chr(c) if 32 < c < 127 else "" for c in data[12:16])
        return ("kod", code or "?")
    if li == 3:
        return ("reject", "server not synchronised (leap indicator 3)")
    if stratum > 15:
        return ("reject", "stratum %d" % stratum)
    if data[40:48] == bytes(8):
        return ("reject", "transmit timestamp is zero")
    return ("ok", ntp_to_unix_ms(data[32:40]), ntp_to_unix_ms(data[40:48]), stratum)


class SntpClient:
    def __init__(self, servers, rng, timeout_ms=REQUEST_TIMEOUT_MS, tries=MAX_TRIES,
                 now=0):
        self.servers = [(h, p) for h, p in servers]
        self.disabled = {}         # server -> kiss code that stopped it (DENY, RSTR)
        self.rng = rng
        self.timeout_ms = timeout_ms
        self.tries = tries
        self.idx = 0               # the server asked in this round
        self.tried = 0             # requests sent to it in this round
        self.asked = 0             # servers given up on in this round
        self.pending = None        # (nonce, sent ms, server)
        self.next_ms = now         # when poll() sends
        self.retry_ms = RETRY_MIN_MS
        self.sent = 0
        self.dropped = 0           # datagrams that were not an answer to our request
        self.rejected = 0
        self.syncs = 0

    def next_deadline(self):
        if self.pending is not None:
            return self.pending[1] + self.timeout_ms
        return self.next_ms

    def _usable(self):
        return [s for s in self.servers if s not in self.disabled]

    def poll(self, now):
        acts = []
        if not self._usable():
            self.pending = None
            self.next_ms = now + POLL_MS
            return acts
        if self.pending is not None:
            if now < self.pending[1] + self.timeout_ms:
                return acts
            acts.append(("timeout", self.pending[2]))
            self.pending = None
            self.tried += 1
            if self.tried >= self.tries:
                self._next_server(now, acts)
            else:
                self.next_ms = now
        if now < self.next_ms:
            return acts
        server = self.servers[self.idx % len(self.servers)]
        while server in self.disabled:
            self.idx += 1
            server = self.servers[self.idx % len(self.servers)]
        nonce = self.rng.next64().to_bytes(8, "big")
        self.pending = (nonce, now, server)
        self.sent += 1
        acts.append(("send", server, build_request(nonce)))
        return acts

    def _next_server(self, now, acts, count=True):
        self.tried = 0
        self.idx = (self.idx + 1) % len(self.servers)
        if count:
            self.asked += 1
        if self.asked >= len(self._usable()):
            acts.append(("failed", None))
            self.asked = 0
            self.next_ms = now + self.retry_ms
            self.retry_ms = min(self.retry_ms * 2, POLL_MS)
        else:
            self.next_ms = now

    def receive(self, data, src, now):
        p = self.pending
        if p is None or (src[0], src[1]) != p[2]:
            self.dropped += 1
            return None
        r = parse_response(data, p[0])
        server = p[2]
        if r[0] == "reject":
            if r[1].startswith("originate"):
                self.dropped += 1       # not our answer: keep waiting for it
                return None
            self.rejected += 1
            self.pending = None
            acts = []
            self._next_server(now, acts)
            return ("reject", server, r[1])
        self.pending = None
        if r[0] == "kod":
            stop = r[1] in ("DENY", "RSTR")
            if stop:
                self.disabled[server] = r[1]
            acts = []
            self._next_server(now, acts, count=not stop)
            return ("kod", server, r[1])
        _, t2, t3, _stratum = r
        delay = (now - p[1]) - (t3 - t2)
        if delay < 0:
            delay = 0
        self.syncs += 1
        self.tried = 0
        self.asked = 0
        self.retry_ms = RETRY_MIN_MS
        self.next_ms = now + POLL_MS
        return ("sync", t3 + delay // 2, server, delay)
