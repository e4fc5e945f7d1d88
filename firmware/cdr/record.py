"""The call detail record (CDR): one per call attempt, answered or not.

    rec = CallRecord(rid, source, mode)     # the stream makes them (stream.py)
    rec.as_dict()                           # the stable field names of docs/cdr.md
    encode(rec) -> bytes                    # one framed log record (log.py)
    decode(buf, pos) -> (CallRecord, next)  # raises RecordError on a bad frame

Wire layout (version 1), big-endian, defined for the host once with
`construct` in tools/cdrformat.py; tests/unit/test_cdr_format.py proves that
the two agree:

    frame   magic "CR" | version u8 | length u16 (payload bytes) |
            crc32 u32 (of version, length and payload) | payload
    payload flags u8 | disposition u8 | mode u8 | released_by u8 |
            src_kind u8 | dst_kind u8 | redirect u8 | sip_status u16 |
            start s64 | answer s64 | end s64 (ms; -1: none) |
            rtp_sent u32 | rtp_received u32 | rtp_lost u32 |
            id, calling, called, original_called, src, dst, cause, codec,
            call_ids (space-separated): each u8 length + UTF-8
"""
import struct
from binascii import crc32

from firmware.compat import const

VERSION = const(1)
MAGIC = b"CR"
HEADER = const(9)                  # magic 2, version 1, length 2, crc 4
MAX_TEXT = const(255)              # one text field; longer is cut (at a UTF-8 boundary)
MAX_CALL_IDS = const(4)            # legs' Call-IDs kept per record (forks beyond: not kept)
MAX_PAYLOAD = const(HEADER + 9 + 24 + 12 + 9 * 256)

FLAG_CLOCK = const(1)              # start/answer/end are UTC ms since 1970 (else ms since boot)

_FIXED = ">BBBBBBBHqqqIII"
_FIXED_LEN = struct.calcsize(_FIXED)

# code tables: the position is the code on flash; append only
DISPOSITIONS = ("answered", "busy", "no-answer", "failed", "cancelled", "rejected")
MODES = ("gateway", "survivable")
SIDES = ("", "caller", "callee", "system")
KINDS = ("", "station", "fxs", "fxo", "trunk", "peer")
REDIRECTS = ("", "forwarded", "transferred", "parked")
TEXTS = ("id", "calling", "called", "original_called", "src", "dst", "cause", "codec")


class RecordError(ValueError):
    """A frame that is not a whole, intact record (torn or corrupt)."""


class CallRecord:
    __slots__ = ("id", "source", "mode", "clock_set", "call_ids", "calling", "called",
                 "original_called", "src_kind", "src", "dst_kind", "dst", "start", "answer",
                 "end", "disposition", "sip_status", "cause", "released_by", "redirect",
                 "codec", "rtp_sent", "rtp_received", "rtp_lost", "events", "mono_start")

    def __init__(self, rid, source="", mode="survivable"):
        self.id = rid                 # unique (OS random), the RADIUS Acct-Session-Id
        self.source = source          # producer: callserver, gateway, proxy (not stored)
        self.mode = mode              # gateway (peer in control) or survivable (local)
        self.clock_set = False
        self.call_ids = []
        self.calling = ""
        self.called = ""
        self.original_called = ""
        self.src_kind = ""
        self.src = ""
        self.dst_kind = ""
        self.dst = ""
        self.start = None
        self.answer = None
        self.end = None
        self.disposition = ""
        self.sip_status = 0
        self.cause = ""
        self.released_by = ""
        self.redirect = ""
        self.codec = ""
        self.rtp_sent = 0
        self.rtp_received = 0
        self.rtp_lost = 0
        self.events = 0               # stream events seen (not stored)
        self.mono_start = None        # monotonic ms at start (durations; not stored)

    def duration(self):
        """Whole seconds from start to end (0 while the call runs)."""
        if self.start is None or self.end is None:
            return 0
        return max(0, self.end - self.start) // 1000

    def billsec(self):
        if self.answer is None or self.end is None:
            return 0
        return max(0, self.end - self.answer) // 1000

    def add_call_id(self, cid):
        if cid and cid not in self.call_ids and len(self.call_ids) < MAX_CALL_IDS:
            self.call_ids.append(cid)

    def as_dict(self):
        return {"id": self.id, "call_ids": list(self.call_ids), "calling": self.calling,
                "called": self.called, "original_called": self.original_called,
                "src_kind": self.src_kind, "src": self.src, "dst_kind": self.dst_kind,
                "dst": self.dst, "mode": self.mode, "clock_set": self.clock_set,
                "start": self.start, "answer": self.answer, "end": self.end,
                "duration": self.duration(), "billsec": self.billsec(),
                "disposition": self.disposition, "sip_status": self.sip_status,
                "cause": self.cause, "released_by": self.released_by,
                "redirect": self.redirect, "codec": self.codec, "rtp_sent": self.rtp_sent,
                "rtp_received": self.rtp_received, "rtp_lost": self.rtp_lost}

    def __repr__(self):
        return "<CDR %s %s->%s %s>" % (self.id, self.calling, self.called, self.disposition)


def _code(table, value):
    try:
        return table.index(value)
    except ValueError:
        return 0


def _name(table, code):
    return table[code] if code < len(table) else ""


def _text(s):
    b = (s or "").encode()
    if len(b) <= MAX_TEXT:
        return b
    b = b[:MAX_TEXT]
    while b and (b[-1] & 0xC0) == 0x80:   # a cut continuation byte
        b = b[:-1]
    if b and b[-1] >= 0xC0:               # a lead byte without its continuation
        b = b[:-1]
    return b


def _ms(v):
    return -1 if v is None else v


def encode(rec):
    flags = FLAG_CLOCK if rec.clock_set else 0
    parts = [struct.pack(_FIXED, flags, _code(DISPOSITIONS, rec.disposition),
                         _code(MODES, rec.mode), _code(SIDES, rec.released_by),
                         _code(KINDS, rec.src_kind), _code(KINDS, rec.dst_kind),
                         _code(REDIRECTS, rec.redirect), rec.sip_status & 0xFFFF,
                         _ms(rec.start), _ms(rec.answer), _ms(rec.end),
                         rec.rtp_sent & 0xFFFFFFFF, rec.rtp_received & 0xFFFFFFFF,
                         rec.rtp_lost & 0xFFFFFFFF)]
    for name in TEXTS:
        b = _text(getattr(rec, name))
        parts.append(bytes((len(b),)))
        parts.append(b)
    b = _text(" ".join(rec.call_ids))
    parts.append(bytes((len(b),)))
    parts.append(b)
    payload = b"".join(parts)
    head = struct.pack(">BH", VERSION, len(payload))
    return MAGIC + head + struct.pack(">I", crc32(payload, crc32(head)) & 0xFFFFFFFF) + payload


def frame_length(buf, pos):
    """The length of the whole frame at pos, or raise RecordError."""
    if len(buf) - pos < HEADER:
        raise RecordError("torn header")
    if buf[pos:pos + 2] != MAGIC:
        raise RecordError("no record magic")
    if buf[pos + 2] != VERSION:
        raise RecordError("record version %d" % buf[pos + 2])
    n = (buf[pos + 3] << 8) | buf[pos + 4]
    if len(buf) - pos < HEADER + n:
        raise RecordError("torn payload")
    return HEADER + n


def decode(buf, pos=0):
    """(CallRecord, position after it) for the frame at pos."""
    n = frame_length(buf, pos)
    payload = bytes(buf[pos + HEADER:pos + n])
    crc = struct.unpack(">I", bytes(buf[pos + 5:pos + 9]))[0]
    if crc32(payload, crc32(bytes(buf[pos + 2:pos + 5]))) & 0xFFFFFFFF != crc:
        raise RecordError("CRC mismatch")
    if len(payload) < _FIXED_LEN:
        raise RecordError("short payload")
    v = struct.unpack(_FIXED, payload[:_FIXED_LEN])
    rec = CallRecord("")
    rec.clock_set = bool(v[0] & FLAG_CLOCK)
    rec.disposition = _name(DISPOSITIONS, v[1])
    rec.mode = _name(MODES, v[2])
    rec.released_by = _name(SIDES, v[3])
    rec.src_kind = _name(KINDS, v[4])
    rec.dst_kind = _name(KINDS, v[5])
    rec.redirect = _name(REDIRECTS, v[6])
    rec.sip_status = v[7]
    rec.start = None if v[8] < 0 else v[8]
    rec.answer = None if v[9] < 0 else v[9]
    rec.end = None if v[10] < 0 else v[10]
    rec.rtp_sent, rec.rtp_received, rec.rtp_lost = v[11], v[12], v[13]
    p = _FIXED_LEN
    texts = []
    for _ in range(len(TEXTS) + 1):
        if p >= len(payload):
            raise RecordError("short payload")
        k = payload[p]
        if p + 1 + k > len(payload):
            raise RecordError("short payload")
        try:
            texts.append(payload[p + 1:p + 1 + k].decode())
        except UnicodeError:
            raise RecordError("bad text")
        p += 1 + k
    for i in range(len(TEXTS)):
        setattr(rec, TEXTS[i], texts[i])
    rec.call_ids = texts[-1].split() if texts[-1] else []
    return rec, pos + n
