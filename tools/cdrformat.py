"""The CDR log layout, defined once with `construct` for the host tools.

The device writes the same bytes with `struct` (firmware/cdr/record.py for
a record, firmware/cdr/log.py for a segment header);
tests/unit/test_cdr_format.py builds records with each and parses them with
the other, so the two cannot drift.  A segment file is SEGMENT_HEADER then
FRAMEs until its end (a torn last frame is possible after a power cut).
"""
import binascii

from construct import (Const, Int8ub, Int16ub, Int32ub, Int64sb, Struct, Checksum, Bytes,
                       PascalString, this, Rebuild, len_, Check)

DISPOSITIONS = ("answered", "busy", "no-answer", "failed", "cancelled", "rejected")
MODES = ("gateway", "survivable")
SIDES = ("", "caller", "callee", "system")
KINDS = ("", "station", "fxs", "fxo", "trunk", "peer")
REDIRECTS = ("", "forwarded", "transferred", "parked")
FLAG_CLOCK = 1

SEGMENT_HEADER = Struct(
    "magic" / Const(b"CDRS"),
    "version" / Const(1, Int8ub),
    "seq" / Int32ub,
    "dropped" / Int32ub,        # records dropped (log full) before this segment was made
    "crc" / Checksum(Int32ub, lambda data: binascii.crc32(data) & 0xFFFFFFFF,
                     lambda ctx: b"CDRS" + bytes((1,)) + ctx.seq.to_bytes(4, "big")
                     + ctx.dropped.to_bytes(4, "big")),
)
assert SEGMENT_HEADER.sizeof() == 17


def _text(name):
    return name / PascalString(Int8ub, "utf8")


PAYLOAD = Struct(
    "flags" / Int8ub,           # bit 0: times are UTC ms since 1970, else ms since boot
    "disposition" / Int8ub,     # index in DISPOSITIONS
    "mode" / Int8ub,            # MODES
    "released_by" / Int8ub,     # SIDES
    "src_kind" / Int8ub,        # KINDS
    "dst_kind" / Int8ub,
    "redirect" / Int8ub,        # REDIRECTS
    "sip_status" / Int16ub,
    "start" / Int64sb,          # ms; -1: none
    "answer" / Int64sb,
    "end" / Int64sb,
    "rtp_sent" / Int32ub,
    "rtp_received" / Int32ub,
    "rtp_lost" / Int32ub,
    _text("id"),
    _text("calling"),
    _text("called"),
    _text("original_called"),
    _text("src"),
    _text("dst"),
    _text("cause"),
    _text("codec"),
    _text("call_ids"),          # space-separated
)

def _frame_crc(ctx):
    """CRC-32 of version, length and payload (the CRC field sits before the payload)."""
    return binascii.crc32(bytes((1,)) + len(ctx.payload).to_bytes(2, "big")
                          + ctx.payload) & 0xFFFFFFFF


FRAME = Struct(
    "magic" / Const(b"CR"),
    "version" / Const(1, Int8ub),
    "length" / Rebuild(Int16ub, len_(this.payload)),
    "crc" / Rebuild(Int32ub, _frame_crc),
    "payload" / Bytes(this.length),
    Check(lambda ctx: ctx.crc == _frame_crc(ctx)),
)


def _name(table, i):
    return table[i] if i < len(table) else ""


def to_dict(payload):
    """A parsed PAYLOAD as the device's CallRecord.as_dict() (docs/cdr.md)."""
    p = payload

    def ms(v):
        return None if v < 0 else v
    start, answer, end = ms(p.start), ms(p.answer), ms(p.end)
    return {"id": p.id, "call_ids": p.call_ids.split() if p.call_ids else [],
            "calling": p.calling, "called": p.called, "original_called": p.original_called,
            "src_kind": _name(KINDS, p.src_kind), "src": p.src,
            "dst_kind": _name(KINDS, p.dst_kind), "dst": p.dst,
            "mode": _name(MODES, p.mode), "clock_set": bool(p.flags & FLAG_CLOCK),
            "start": start, "answer": answer, "end": end,
            "duration": max(0, end - start) // 1000 if start is not None and end is not None else 0,
            "billsec": max(0, end - answer) // 1000 if answer is not None and end is not None else 0,
            "disposition": _name(DISPOSITIONS, p.disposition), "sip_status": p.sip_status,
            "cause": p.cause, "released_by": _name(SIDES, p.released_by),
            "redirect": _name(REDIRECTS, p.redirect), "codec": p.codec,
            "rtp_sent": p.rtp_sent, "rtp_received": p.rtp_received, "rtp_lost": p.rtp_lost}


def build(d):
    """The frame bytes of a record given as a dict of docs/cdr.md fields."""
    def ms(v):
        return -1 if v is None else v
    payload = PAYLOAD.build(dict(
        flags=FLAG_CLOCK if d.get("clock_set") else 0,
        disposition=DISPOSITIONS.index(d["disposition"]) if d.get("disposition") in DISPOSITIONS else 0,
        mode=MODES.index(d["mode"]) if d.get("mode") in MODES else 0,
        released_by=SIDES.index(d.get("released_by", "")) if d.get("released_by", "") in SIDES else 0,
        src_kind=KINDS.index(d.get("src_kind", "")) if d.get("src_kind", "") in KINDS else 0,
        dst_kind=KINDS.index(d.get("dst_kind", "")) if d.get("dst_kind", "") in KINDS else 0,
        redirect=REDIRECTS.index(d.get("redirect", "")) if d.get("redirect", "") in REDIRECTS else 0,
        sip_status=d.get("sip_status", 0), start=ms(d.get("start")), answer=ms(d.get("answer")),
        end=ms(d.get("end")), rtp_sent=d.get("rtp_sent", 0), rtp_received=d.get("rtp_received", 0),
        rtp_lost=d.get("rtp_lost", 0), id=d.get("id", ""), calling=d.get("calling", ""),
        called=d.get("called", ""), original_called=d.get("original_called", ""),
        src=d.get("src", ""), dst=d.get("dst", ""), cause=d.get("cause", ""),
        codec=d.get("codec", ""), call_ids=" ".join(d.get("call_ids", ()))))
    return FRAME.build(dict(payload=payload))


def parse_frame(data, pos=0):
    """(dict, next position) of the frame at pos; raises on a torn or bad frame."""
    f = FRAME.parse(data[pos:])
    return to_dict(PAYLOAD.parse(f.payload)), pos + 9 + f.length


def read_segment(data):
    """(segment header or None, [record dicts], bytes of a torn/bad tail)."""
    try:
        h = SEGMENT_HEADER.parse(data)
    except Exception:
        return None, [], len(data)
    pos = SEGMENT_HEADER.sizeof()
    out = []
    while pos < len(data):
        try:
            d, pos = parse_frame(data, pos)
        except Exception:
            return h, out, len(data) - pos
        out.append(d)
    return h, out, 0


def carve(data):
    """Every intact frame anywhere in data (a raw flash image): records in
    the order of their segments' sequence numbers where a segment header
    precedes them, duplicates (same id) once."""
    found = []      # (seq, position, dict)
    seq = -1
    pos = 0
    n = len(data)
    while pos < n - 9:
        if data[pos:pos + 4] == b"CDRS":
            try:
                seq = SEGMENT_HEADER.parse(data[pos:pos + 17]).seq
                pos += 17
                continue
            except Exception:
                pass
        if data[pos:pos + 2] == b"CR":
            try:
                d, nxt = parse_frame(data, pos)
            except Exception:
                pos += 1
                continue
            found.append((seq, pos, d))
            pos = nxt
            continue
        pos += 1
    found.sort(key=lambda t: (t[0], t[1]))
    seen = set()
    out = []
    for _, _, d in found:
        if d["id"] not in seen:
            seen.add(d["id"])
            out.append(d)
    return out
