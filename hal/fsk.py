"""Caller-ID modem (Bell 202 and ITU-T V.23) shared by the SLIC driver, the DAA
driver and the sims.

Two modulations (STANDARDS): Bell 202 (mark 1200 Hz, space 2200 Hz; North
America) and V.23 (mark 1300 Hz, space 2100 Hz; ETSI EN 300 659 countries),
both 1200 baud.  Per country (CID_STYLES, see cid_style()): the modulation,
when the message goes (after the first ring, or before it, announced by a
line reversal and the dual-tone alerting signal DT-AS 2130 + 2750 Hz, as
BT SIN 227 does in the UK), and the channel-seizure / mark-bit counts
(GR-30: 300 / 180; EN 300 659-1: 300 / 180 +-25; SIN 227: 96-315 / 55-150).

Transmit: FskModulator renders a message (channel seizure 0101..., mark run,
then UART-framed bytes: start 0, 8 data bits LSB first, stop 1) as G.711
samples at 1200 baud, mark 1200 Hz, space 2200 Hz, continuous phase.  Samples
come from a 256-entry sine table pre-encoded in G.711 (built once per law), so
rendering a sample is one table lookup plus integer phase arithmetic.

Receive: FskDemodulator is a sliding-window correlation (non-coherent) demod:
for each sample it keeps I/Q sums over the last WINDOW samples against 1200 Hz
and 2200 Hz references (integer Q12 tables, period 40 samples) and decides
mark when the 1200 Hz energy wins.  A software UART samples mid-bit using
1/3-sample fixed point (8000/1200 = 20/3 samples per bit), and a parser
assembles SDMF/MDMF messages and checks the checksum (two's complement of the
byte sum, so all bytes + checksum == 0 mod 256).

Message formats (Telcordia GR-30 / ETSI EN 300 659, Bell 202 variant):
  MDMF call setup 0x80: params 0x01 date/time 'MMDDHHMM', 0x02 number,
  0x04 reason number absent ('O' out of area, 'P' private), 0x07 name,
  0x08 reason name absent.  MDMF MWI 0x82: param 0x0B VMWI (0xFF on, 0x00 off).
  SDMF call 0x04: 'MMDDHHMM' + number; SDMF MWI 0x06: 0x42 0x42 0x42 on,
  0x6F 0x6F 0x6F off.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hal import g711
from hal.dsp import sin_table, phase_inc, PHASE_MASK

MARK_HZ = const(1200)
SPACE_HZ = const(2200)
STANDARDS = {"bell202": (1200, 2200), "v23": (1300, 2100)}
# country -> (standard, "after_ring" | "before_ring", seizure bits, mark bits)
CID_STYLES = {
    "US": ("bell202", "after_ring", 300, 180),
    "GB": ("v23", "before_ring", 240, 120),
    "DE": ("v23", "after_ring", 300, 180),
}
ALERT_HZ = (2130, 2750)       # ETSI DT-AS
ALERT_MS = const(100)
ALERT_GAP_MS = const(60)      # DT-AS end -> FSK start (SIN 227: 45-75 ms)
ALERT_AMP = const(3000)       # per tone
_PERIOD = const(80)           # reference-table period: 1200/1300/2100/2200 Hz all fit
SEIZURE_BITS = const(300)
MARK_BITS = const(180)
TAIL_BITS = const(12)
MAX_NUMBER = const(20)        # longer numbers are truncated
MAX_NAME = const(15)          # longer names are truncated (GR-30 limit)
MAX_MESSAGE = const(255)      # body length limit of the format
MAX_MESSAGES = const(4)       # decoded messages kept by a demodulator; drop oldest
WINDOW = const(7)             # correlation window in samples (~1 bit)
AMPLITUDE = const(5000)       # about -16 dBm0

MSG_MDMF = const(0x80)
MSG_MDMF_MWI = const(0x82)
MSG_SDMF = const(0x04)
MSG_SDMF_MWI = const(0x06)

P_DATETIME = const(0x01)
P_NUMBER = const(0x02)
P_NUMBER_ABSENT = const(0x04)
P_NAME = const(0x07)
P_NAME_ABSENT = const(0x08)
P_VMWI = const(0x0B)

ABSENT_PRIVATE = "P"
ABSENT_OUT_OF_AREA = "O"


class FskError(ValueError):
    pass


def cid_style(country):
    """(standard, timing, seizure bits, mark bits) of a country's caller ID."""
    from hal import tones
    return CID_STYLES[tones.country_code(country)]


def _cksum(body):
    return (-sum(body)) & 0xFF


def _param(out, ptype, value):
    out.append(ptype)
    out.append(len(value))
    for c in value:
        out.append(c if isinstance(c, int) else ord(c))


def mdmf_call(datetime=None, number=None, name=None, number_absent=None, name_absent=None):
    """MDMF call-setup message (type 0x80) with checksum appended.

    datetime 'MMDDHHMM'; number/name text; *_absent 'P' (private) or 'O'
    (out of area) sent instead of the field.  Long fields are truncated to
    MAX_NUMBER / MAX_NAME.
    """
    body = bytearray()
    if datetime is not None:
        if len(datetime) != 8:
            raise FskError("datetime must be MMDDHHMM")
        _param(body, P_DATETIME, datetime)
    if number:
        _param(body, P_NUMBER, number[:MAX_NUMBER])
    elif number_absent:
        _param(body, P_NUMBER_ABSENT, number_absent[:1])
    if name:
        _param(body, P_NAME, name[:MAX_NAME])
    elif name_absent:
        _param(body, P_NAME_ABSENT, name_absent[:1])
    return _frame(MSG_MDMF, body)


def mdmf_vmwi(active):
    body = bytearray()
    _param(body, P_VMWI, bytes([0xFF if active else 0x00]))
    return _frame(MSG_MDMF_MWI, body)


def sdmf_call(datetime, number):
    body = bytearray(datetime.encode() + number[:10].encode())
    return _frame(MSG_SDMF, body)


def _frame(mtype, body):
    if len(body) > MAX_MESSAGE:
        raise FskError("message too long")
    msg = bytearray([mtype, len(body)])
    msg.extend(body)
    msg.append(_cksum(msg))
    return bytes(msg)


def parse(msg):
    """Parse a full message (type, len, body, checksum) -> dict; FskError if bad."""
    if len(msg) < 3 or len(msg) != msg[1] + 3:
        raise FskError("bad length")
    if sum(msg) & 0xFF:
        raise FskError("bad checksum")
    mtype = msg[0]
    body = msg[2:-1]
    out = {"type": mtype}
    if mtype in (MSG_MDMF, MSG_MDMF_MWI):
        i = 0
        while i + 2 <= len(body):
            pt = body[i]
            pl = body[i + 1]
            val = bytes(body[i + 2:i + 2 + pl])
            i += 2 + pl
            if pt == P_DATETIME:
                out["datetime"] = val.decode()
            elif pt == P_NUMBER:
                out["number"] = val.decode()
            elif pt == P_NUMBER_ABSENT:
                out["number_absent"] = val.decode()
            elif pt == P_NAME:
                out["name"] = val.decode()
            elif pt == P_NAME_ABSENT:
                out["name_absent"] = val.decode()
            elif pt == P_VMWI:
                out["vmwi"] = bool(val) and val[0] != 0
        if i != len(body):
            raise FskError("truncated parameter")
    elif mtype == MSG_SDMF:
        out["datetime"] = bytes(body[:8]).decode()
        out["number"] = bytes(body[8:]).decode()
    elif mtype == MSG_SDMF_MWI:
        out["vmwi"] = bytes(body[:1]) == b"B"
    else:
        raise FskError("unknown message type 0x%02x" % mtype)
    return out


_enc_tables = {}


def _encoded_sine(law, amp):
    """256-entry sine table already G.711-encoded at amplitude amp (built once)."""
    key = (law, amp)
    t = _enc_tables.get(key)
    if t is None:
        enc = g711.encoder(law)
        t = bytes(enc((s * amp) >> 15) for s in sin_table())
        _enc_tables[key] = t
    return t


class FskModulator:
    """Render one message into successive 160-byte frames.

    next_frame(buf) overwrites buf (a caller-owned bytearray(160), reused) and
    returns True while FSK samples remain; the tail of the last frame is silence.
    """

    def __init__(self, law="ulaw", amp=AMPLITUDE, standard="bell202",
                 seizure_bits=SEIZURE_BITS, mark_bits=MARK_BITS, alert=False):
        if standard not in STANDARDS:
            raise FskError("unknown FSK standard %r" % (standard,))
        mark, space = STANDARDS[standard]
        self.standard = standard
        self._tab = _encoded_sine(law, amp)
        self._silence = g711.silence(law)
        self._enc = g711.encoder(law)
        self._inc_mark = phase_inc(mark)
        self._inc_space = phase_inc(space)
        self._seizure_bits = seizure_bits
        self._mark_bits = mark_bits
        self._msg = b""
        self._nbits = 0
        self._n = 0
        self._phase = 0
        self.seizure = seizure_bits
        # ETSI DT-AS before the FSK (prior-to-ringing caller ID)
        self._pre = (ALERT_MS + ALERT_GAP_MS) * 8 if alert else 0
        self._alert_n = ALERT_MS * 8 if alert else 0
        self._k = 0                  # prefix samples rendered
        self._alert = None

    def load(self, msg, seizure=True):
        self._msg = msg
        self.seizure = self._seizure_bits if seizure else 0
        self._nbits = self.seizure + self._mark_bits + 10 * len(msg) + TAIL_BITS
        self._n = 0
        self._phase = 0
        self._k = 0
        if self._alert_n:
            from hal.dsp import ToneGen
            self._alert = ToneGen(ALERT_HZ, ALERT_AMP)

    def active(self):
        return self._k < self._pre or (self._n * 3) // 20 < self._nbits

    def duration_ms(self):
        return self._pre // 8 + (self._nbits * 1000 + 1199) // 1200

    def _bit(self, k):
        s = self.seizure
        if k < s:
            return k & 1
        k -= s
        if k < self._mark_bits:
            return 1
        k -= self._mark_bits
        j = k // 10
        if j >= len(self._msg):
            return 1
        b = k - j * 10
        if b == 0:
            return 0
        if b == 9:
            return 1
        return (self._msg[j] >> (b - 1)) & 1

    def next_frame(self, buf):
        tab = self._tab
        n = self._n
        ph = self._phase
        nbits = self._nbits
        im = self._inc_mark
        isp = self._inc_space
        produced = False
        cur_k = -1
        inc = im
        first = 0
        if self._k < self._pre:
            # the alerting signal, then silence until the FSK starts
            first = min(len(buf), self._pre - self._k)
            a_end = min(first, max(0, self._alert_n - self._k))
            if a_end:
                self._alert.fill(buf, self._enc, 0, a_end)
            for i in range(a_end, first):
                buf[i] = self._silence
            self._k += first
            produced = True
        for i in range(first, len(buf)):
            k = (n * 3) // 20
            if k >= nbits:
                buf[i] = self._silence
                continue
            if k != cur_k:
                cur_k = k
                inc = im if self._bit(k) else isp
            buf[i] = tab[ph >> 16]
            ph = (ph + inc) & PHASE_MASK
            n += 1
            produced = True
        self._n = n
        self._phase = ph
        return produced


def _ref_tables(standard):
    import math
    mark, space = STANDARDS[standard]
    c1 = []
    s1 = []
    c2 = []
    s2 = []
    for j in range(_PERIOD):
        a = 2 * math.pi * mark * j / 8000
        b = 2 * math.pi * space * j / 8000
        c1.append(int(4096 * math.cos(a)))
        s1.append(int(4096 * math.sin(a)))
        c2.append(int(4096 * math.cos(b)))
        s2.append(int(4096 * math.sin(b)))
    return c1, s1, c2, s2


_refs = {}

# parser states
_P_TYPE = const(0)
_P_LEN = const(1)
_P_BODY = const(2)


class FskDemodulator:
    """Bell 202 / V.23 receiver over G.711 frames.  feed(frame) -> list of
    parsed dicts."""

    def __init__(self, law="ulaw", min_level=40, standard="bell202"):
        if standard not in STANDARDS:
            raise FskError("unknown FSK standard %r" % (standard,))
        if standard not in _refs:
            _refs[standard] = _ref_tables(standard)
        self.standard = standard
        self._law = law
        self._min_level = min_level
        self._ref = _refs[standard]
        self._dec = g711.decode_table(law)
        self._hist = [0] * WINDOW
        self._hpos = 0
        self._n = 0
        self._i1 = self._q1 = self._i2 = self._q2 = 0
        # minimum energy (in demod units) for "carrier present"
        self._min_e = min_level * min_level * 4096 * 4096
        self._prev = 1
        self._uart = -1          # -1 hunting, else bit index expected next
        self._t0 = 0
        self._byte = 0
        self._pstate = _P_TYPE
        self._msg = bytearray()
        self._need = 0
        self.messages = []
        self.framing_errors = 0
        self.checksum_errors = 0
        self.dropped = 0

    def reset(self):
        self.__init__(self._law, self._min_level, self.standard)

    def feed(self, frame):
        c1, s1, c2, s2 = self._ref
        dec = self._dec
        hist = self._hist
        hpos = self._hpos
        n = self._n
        i1, q1, i2, q2 = self._i1, self._q1, self._i2, self._q2
        min_e = self._min_e
        out = None
        for b in frame:
            x = dec[b] >> 4
            j = n % _PERIOD
            old = hist[hpos]
            jo = (n - WINDOW) % _PERIOD
            i1 += x * c1[j] - old * c1[jo]
            q1 += x * s1[j] - old * s1[jo]
            i2 += x * c2[j] - old * c2[jo]
            q2 += x * s2[j] - old * s2[jo]
            hist[hpos] = x
            hpos += 1
            if hpos == WINDOW:
                hpos = 0
            em = i1 * i1 + q1 * q1
            es = i2 * i2 + q2 * q2
            n += 1
            if em + es < min_e:
                # no carrier: idle the UART and the parser
                self._uart = -1
                self._prev = 1
                if self._pstate != _P_TYPE:
                    self._pstate = _P_TYPE
                continue
            bit = 1 if em > es else 0
            u = self._uart
            if u < 0:
                if bit == 0 and self._prev == 1:
                    self._uart = 0
                    self._t0 = n
                    self._byte = 0
            else:
                if (n - self._t0) * 3 >= 10 + 20 * u:
                    if u == 0:
                        if bit != 0:
                            self._uart = -1
                        else:
                            self._uart = 1
                    elif u <= 8:
                        self._byte |= bit << (u - 1)
                        self._uart = u + 1
                    else:
                        self._uart = -1
                        if bit == 1:
                            r = self._on_byte(self._byte)
                            if r is not None:
                                if out is None:
                                    out = []
                                out.append(r)
                        else:
                            self.framing_errors += 1
            self._prev = bit
        self._hpos = hpos
        self._n = n % 40000   # keep n small; a multiple of _PERIOD keeps table phase
        self._t0 -= n - self._n
        self._i1, self._q1, self._i2, self._q2 = i1, q1, i2, q2
        return out or ()

    def _on_byte(self, b):
        st = self._pstate
        if st == _P_TYPE:
            if b in (MSG_MDMF, MSG_MDMF_MWI, MSG_SDMF, MSG_SDMF_MWI):
                self._msg = bytearray([b])
                self._pstate = _P_LEN
            return None
        self._msg.append(b)
        if st == _P_LEN:
            self._need = b + 1
            self._pstate = _P_BODY
            return None
        self._need -= 1
        if self._need > 0:
            return None
        self._pstate = _P_TYPE
        try:
            r = parse(bytes(self._msg))
        except FskError:
            self.checksum_errors += 1
            return None
        if len(self.messages) >= MAX_MESSAGES:
            self.messages.pop(0)
            self.dropped += 1
        self.messages.append(r)
        return r
