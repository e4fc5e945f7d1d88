"""RTP media for the analog ports: G.711 frames straight from the PCM bus
into RTP and back (RFC 3550 / RFC 3551), plus the local three-way mixer.

    mm = MediaManager(app, host="127.0.0.1", port_min=16384, port_max=16483)
    s = mm.open()                  # RtpSession on the next free even port; None when full
    s.set_remote(host, port, pt)   # pt 0 (PCMU) or 8 (PCMA); law of the board in mm.law
    s.send(frame)                  # one 160-byte frame of the board's law = 20 ms
    s.poll()                       # drain the socket (non-blocking) into the playout queue
    f = s.pop()                    # oldest received frame (a reused buffer) or None
    mm.close(s)

Packet: 12-byte header (V=2, no padding/extension/CSRC, marker on the first
packet, PT, sequence +1, timestamp +160, SSRC from app.rng) + 160 bytes of
payload.  The board's law is the payload when the negotiated codec matches
it; otherwise every byte goes through a 256-entry µ-law<->A-law table.

Receive policy: packets shorter than 12 bytes, with a version other than
2, a payload type other than the negotiated one (telephone-event packets
are counted in `events`; each key press, RFC 4733, is added once to
`digits`, read with take_digits()), CSRCs/extension, or a payload other
than 160 bytes are dropped and counted ("bad").  A packet is accepted from
any source (symmetric RTP is not enforced).

Buffers (allocated once per session and reused): one transmit packet
buffer, one receive buffer, PLAYOUT_FRAMES frame slots.  (On MicroPython,
which lacks recv_into and whose readinto joins datagrams, each received
packet is one short-lived bytes object copied into the receive buffer.)  The playout queue is
a FIFO of PLAYOUT_FRAMES slots; when full the oldest frame is dropped
("overflow").  pop() returns the slot itself: it is overwritten once
PLAYOUT_FRAMES more packets arrive, so use it before the next poll().
Bounds: MAX_SESSIONS open sessions (open() returns None beyond, counted in
mm.refused), MAX_PACKETS_PER_POLL packets drained per poll.

Marking (issue 14, feature 12): every socket open() makes carries the DSCP
of the service class's `dscp-rtp` (IP_TOS, or IPV6_TCLASS on IPv6, = dscp
<< 2).  Each manager registers under its role in app.media_managers (one
per role: a rebuilt service replaces its old entry, so the table is bounded
by the roles), and set_rtp_dscp(app, dscp) re-marks every open socket of
every manager: a committed change applies to calls already up.  A socket
that refuses the option is counted in mm.dscp_errors and still carries
media.
"""
import socket

from firmware.compat import const
from firmware.sipstack.transport import sockaddr

MAX_SESSIONS = const(16)
PLAYOUT_FRAMES = const(8)
MAX_PACKETS_PER_POLL = const(16)
MAX_EVENT_DIGITS = const(16)     # RFC 4733 digits kept until taken (oldest dropped)
MAX_TX_EVENTS = const(16)        # keys waiting to go out as events (beyond: refused, counted)
EVENT_FRAMES = const(5)          # 100 ms of event packets per key
EVENT_END_REPEATS = const(3)     # end packets sent three times (RFC 4733 §2.5.1.4)
EVENT_GAP_FRAMES = const(2)      # audio between two keys
EVENT_VOLUME = const(10)         # -10 dBm0
_EVENT_KEYS = "0123456789*#ABCD"
FRAME = const(160)
HEADER = const(12)
RX_BUF = const(1500)

_EAGAIN = (11, 35)
_IPPROTO_IP = const(0)
_IP_TOS = const(1)
_IPPROTO_IPV6 = const(41)
_IPV6_TCLASS = const(67)
DEFAULT_DSCP = const(46)         # EF, the service-class default


def set_rtp_dscp(app, dscp):
    """Mark every RTP socket of the appliance (open now or later) with `dscp`."""
    dscp = int(dscp)
    if not 0 <= dscp <= 63:
        raise ValueError("DSCP must be 0..63, not %d" % dscp)
    app.rtp_dscp = dscp
    mms = getattr(app, "media_managers", None)
    if mms:
        for mm in mms.values():
            mm.set_dscp(dscp)


def _law_pt(law):
    return 8 if law == "alaw" else 0


XLAT_TABLES = {}


def xlat(src_law):
    """256-byte table src law -> the other law (built once, via linear)."""
    t = XLAT_TABLES.get(src_law)
    if t is None:
        from hal import g711
        dec = g711.decode_table(src_law)
        enc = g711.encoder("alaw" if src_law == "ulaw" else "ulaw")
        t = bytes(enc(dec[i]) for i in range(256))
        XLAT_TABLES[src_law] = t
    return t


def build_header(buf, pt, seq, ts, ssrc, marker=False):
    """Write a 12-byte RTP header into buf[0:12]."""
    buf[0] = 0x80
    buf[1] = (0x80 if marker else 0) | (pt & 0x7F)
    buf[2] = (seq >> 8) & 0xFF
    buf[3] = seq & 0xFF
    buf[4] = (ts >> 24) & 0xFF
    buf[5] = (ts >> 16) & 0xFF
    buf[6] = (ts >> 8) & 0xFF
    buf[7] = ts & 0xFF
    buf[8] = (ssrc >> 24) & 0xFF
    buf[9] = (ssrc >> 16) & 0xFF
    buf[10] = (ssrc >> 8) & 0xFF
    buf[11] = ssrc & 0xFF


def parse_header(buf, n):
    """(pt, seq, ts, ssrc, payload offset) or None when not a plain RTP packet."""
    if n < HEADER or (buf[0] & 0xC0) != 0x80:
        return None
    cc = buf[0] & 0x0F
    off = HEADER + 4 * cc
    if buf[0] & 0x10:                      # header extension
        if n < off + 4:
            return None
        off += 4 + 4 * ((buf[off + 2] << 8) | buf[off + 3])
    if off > n:
        return None
    return (buf[1] & 0x7F, (buf[2] << 8) | buf[3],
            (buf[4] << 24) | (buf[5] << 16) | (buf[6] << 8) | buf[7],
            (buf[8] << 24) | (buf[9] << 16) | (buf[10] << 8) | buf[11], off)


class RtpSession:
    def __init__(self, mm, sock, port):
        self.mm = mm
        self.sock = sock
        self.port = port
        rng = mm.app.rng
        self.ssrc = rng.randbelow(0x7FFFFFFF)
        self.seq = rng.randbelow(0x10000)
        self.ts = rng.randbelow(0x7FFFFFFF)
        self.pt = _law_pt(mm.law)
        self.event_pt = None
        self.remote = None
        self.remote_addr = None
        self.first = True
        self._tx = bytearray(HEADER + FRAME)
        self._txv = memoryview(self._tx)
        self._rx = bytearray(RX_BUF)
        self._slots = [bytearray(FRAME) for _ in range(PLAYOUT_FRAMES)]
        self._head = 0       # oldest slot
        self._count = 0
        self._xl_tx = None   # translation tables when codec law != board law
        self._xl_rx = None
        self.sent = 0
        self.received = 0
        self.bad = 0
        self.events = 0
        self.digits = ""         # RFC 4733 key presses received, oldest first (take_digits)
        self.tx_keys = ""        # keys to send as RFC 4733 events (send_digits)
        self._ev_frame = 0       # packets of the current key sent (event + end)
        self._ev_ts = 0          # the current key's timestamp (its start)
        self._ev_gap = 0         # audio frames still due before the next key
        self._evv = None         # the event packet (the tx buffer's start), made at the first key
        self.events_sent = 0
        self.events_dropped = 0
        self._event_ts = None    # timestamp of the event last counted as a key press
        self.overflow = 0
        self.lost = 0
        self._last_seq = None
        self.closed = False
        self.jitter = None       # a JitterBuffer takes the frames instead of the FIFO
        recv_into = getattr(sock, "recv_into", None)
        # MicroPython has no recv_into, and its readinto() reads a UDP socket as a
        # stream (it joins datagrams): there, recv() allocates one bytes per packet
        self._recv = recv_into if recv_into is not None else self._recv_copy

    def _recv_copy(self, buf):
        data = self.sock.recv(RX_BUF)
        n = len(data)
        if n:
            buf[:n] = data
        return n

    def set_remote(self, host, port, pt=None, event_pt=None):
        self.remote = (host, port)
        self.remote_addr = sockaddr(host, port) if port else None
        if pt is not None:
            self.pt = pt
        self.event_pt = event_pt
        law = self.mm.law
        if self.pt == _law_pt(law):
            self._xl_tx = self._xl_rx = None
        else:
            other = "alaw" if law == "ulaw" else "ulaw"
            self._xl_tx = xlat(law)
            self._xl_rx = xlat(other)

    def send_digits(self, keys):
        """Queue keys to go out as RFC 4733 events in place of the next
        frames; False when the far end offered no telephone-event."""
        if self.event_pt is None:
            return False
        if self._evv is None:
            self._evv = self._txv[:HEADER + 4]
        for k in keys:
            if len(self.tx_keys) >= MAX_TX_EVENTS or _EVENT_KEYS.find(k) < 0:
                self.events_dropped += 1
            else:
                self.tx_keys += k
        return True

    def _send_event(self):
        """One packet of the current key (RFC 4733 §2.5): the same timestamp,
        a growing duration, the marker on the first, then the end packets."""
        buf = self._tx
        n = self._ev_frame
        if n == 0:
            self._ev_ts = self.ts
        end = n >= EVENT_FRAMES - 1
        dur = FRAME * (min(n, EVENT_FRAMES - 1) + 1)
        build_header(buf, self.event_pt, self.seq, self._ev_ts, self.ssrc, n == 0)
        buf[HEADER] = _EVENT_KEYS.find(self.tx_keys[0])
        buf[HEADER + 1] = (0x80 if end else 0) | EVENT_VOLUME
        buf[HEADER + 2] = (dur >> 8) & 0xFF
        buf[HEADER + 3] = dur & 0xFF
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + FRAME) & 0xFFFFFFFF
        self._ev_frame = n + 1
        if self._ev_frame >= EVENT_FRAMES - 1 + EVENT_END_REPEATS:
            self._ev_frame = 0
            self.tx_keys = self.tx_keys[1:]
            self._ev_gap = EVENT_GAP_FRAMES
            self.events_sent += 1
        try:
            self.sock.sendto(self._evv, self.remote_addr)
        except OSError:
            self.mm.send_errors += 1
            return False
        self.sent += 1
        return True

    def send(self, frame):
        if self.closed or self.remote_addr is None:
            return False
        if self.tx_keys:
            if self._ev_gap:
                self._ev_gap -= 1
            else:
                return self._send_event()
        buf = self._tx
        build_header(buf, self.pt, self.seq, self.ts, self.ssrc, self.first)
        self.first = False
        xl = self._xl_tx
        if xl is None:
            self._txv[HEADER:HEADER + FRAME] = frame
        else:
            for i in range(FRAME):
                buf[HEADER + i] = xl[frame[i]]
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + FRAME) & 0xFFFFFFFF
        try:
            self.sock.sendto(buf, self.remote_addr)
        except OSError:
            self.mm.send_errors += 1
            return False
        self.sent += 1
        return True

    def poll(self):
        if self.closed:
            return
        buf = self._rx
        for _ in range(MAX_PACKETS_PER_POLL):
            try:
                n = self._recv(buf)
            except OSError as e:
                if e.args and e.args[0] not in _EAGAIN:
                    self.mm.recv_errors += 1
                return
            if not n:
                return
            h = parse_header(buf, n)
            if h is None:
                self.bad += 1
                continue
            pt, seq, ts, ssrc, off = h
            if pt != self.pt:
                if self.event_pt is not None and pt == self.event_pt:
                    self.events += 1
                    self._event(buf, off, n, ts)
                else:
                    self.bad += 1
                continue
            if n - off != FRAME:
                self.bad += 1
                continue
            if self._last_seq is not None:
                gap = (seq - self._last_seq - 1) & 0xFFFF
                if gap < 1000:
                    self.lost += gap
            self._last_seq = seq
            self.received += 1
            if self.jitter is not None:      # a conference member: reordered by sequence
                self.jitter.put(seq, buf, off, self._xl_rx)
                continue
            if self._count >= PLAYOUT_FRAMES:
                self._head = (self._head + 1) % PLAYOUT_FRAMES
                self._count -= 1
                self.overflow += 1
            slot = self._slots[(self._head + self._count) % PLAYOUT_FRAMES]
            xl = self._xl_rx
            if xl is None:
                slot[:] = memoryview(buf)[off:off + FRAME]
            else:
                for i in range(FRAME):
                    slot[i] = xl[buf[off + i]]
            self._count += 1

    def _event(self, buf, off, n, ts):
        """RFC 4733 §2.3: one key press is every packet with the same
        timestamp (retransmitted end packets included): count it once."""
        if n - off < 4 or ts == self._event_ts or buf[off] >= len(_EVENT_KEYS):
            return
        self._event_ts = ts
        self.digits = (self.digits + _EVENT_KEYS[buf[off]])[-MAX_EVENT_DIGITS:]

    def take_digits(self):
        d, self.digits = self.digits, ""
        return d

    def pop(self):
        if self._count == 0:
            return None
        slot = self._slots[self._head]
        self._head = (self._head + 1) % PLAYOUT_FRAMES
        self._count -= 1
        return slot

    def pending(self):
        return self._count

    def stats(self):
        return "sent %d received %d lost %d bad %d overflow %d" % (
            self.sent, self.received, self.lost, self.bad, self.overflow)


class MediaManager:
    def __init__(self, app, host="127.0.0.1", port_min=16384, port_max=16483, law="ulaw",
                 role="gateway"):
        self.app = app
        self.host = host
        self.port_min = port_min
        self.port_max = port_max
        self.law = law
        self.sessions = []
        self._next = port_min
        self.refused = 0
        self.send_errors = 0
        self.recv_errors = 0
        self.bind_errors = 0
        self.dscp_errors = 0
        self.dscp = getattr(app, "rtp_dscp", DEFAULT_DSCP)
        mms = getattr(app, "media_managers", None)
        if mms is None:
            mms = {}
            try:
                app.media_managers = mms
            except AttributeError:      # an app object without attributes (tests)
                pass
        mms[role] = self

    def set_dscp(self, dscp):
        self.dscp = dscp
        for s in self.sessions:
            self._mark(s.sock)

    def _mark(self, s):
        try:
            if ":" in self.host:
                s.setsockopt(_IPPROTO_IPV6, _IPV6_TCLASS, self.dscp << 2)
            else:
                s.setsockopt(_IPPROTO_IP, _IP_TOS, self.dscp << 2)
        except (OSError, AttributeError):
            self.dscp_errors += 1

    def set_range(self, lo, hi):
        self.port_min = lo
        self.port_max = hi
        if not lo <= self._next <= hi:
            self._next = lo

    def open(self):
        """A new session on a free even port of the range, or None (counted)."""
        if len(self.sessions) >= MAX_SESSIONS:
            self.refused += 1
            return None
        used = [s.port for s in self.sessions]
        span = (self.port_max - self.port_min) // 2 + 1
        p = self._next
        for _ in range(span):
            if p > self.port_max or p < self.port_min:
                p = self.port_min
            p -= (p - self.port_min) % 2
            cand = p
            p += 2
            if cand in used:
                continue
            fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            net = getattr(self.app, "network", None)    # simulation: in-memory sockets
            s = (socket if net is None else net).socket(fam, socket.SOCK_DGRAM)
            try:
                s.bind(sockaddr(self.host, cand))
            except OSError:
                s.close()
                self.bind_errors += 1
                continue
            s.setblocking(False)
            self._mark(s)
            self._next = p
            sess = RtpSession(self, s, cand)
            self.sessions.append(sess)
            return sess
        self.refused += 1
        return None

    def close(self, sess):
        if sess is None or sess.closed:
            return
        sess.closed = True
        try:
            sess.sock.close()
        except OSError:
            pass
        if sess in self.sessions:
            self.sessions.remove(sess)

    def __len__(self):
        return len(self.sessions)


def server_media(app, host):
    """The RTP sessions of media the call server terminates itself (auto
    attendant, music on hold, conference): the analog gateway's manager when
    there is one (one port range, one MAX_SESSIONS bound), else one shared
    manager of the call server's."""
    gw = getattr(app, "gateway", None)
    if gw is not None:
        return gw.media
    mm = (getattr(app, "media_managers", None) or {}).get("callserver")
    if mm is None:
        mm = MediaManager(app, host, role="callserver")
        gs = getattr(app, "gateway_settings", None)
        if gs is not None:
            mm.set_range(gs.rtp_min, gs.rtp_max)
    return mm
