"""The firmware image layout, defined once with `construct` for the host tools.

The device reads the same bytes with its own small parser (firmware/image.py,
which documents the layout field by field); tests/unit/test_image.py builds
images with this definition and reads them with that parser, and the other
way round, so the two cannot drift.
"""
import binascii

from construct import (Array, Bytes, Const, Int8ub, Int16ub, Int32ub, Int64ub, PaddedString,
                       Struct, Padding, Checksum, Prefixed, GreedyBytes, PascalString)

HEADER_SIZE = 320
MAX_BOARDS = 8
RUNTIMES = {"cpython": 1, "micropython": 2}
SIG_NONE, SIG_ED25519 = 0, 1

# bytes 0..215: what the signature covers
SIGNED = Struct(
    "magic" / Const(b"BVFW"),
    "format" / Const(1, Int16ub),
    "header_size" / Const(HEADER_SIZE, Int16ub),
    "version" / PaddedString(32, "ascii"),
    "build_time" / Int64ub,
    "runtime" / Int8ub,
    "board_count" / Int8ub,
    "boards" / Array(MAX_BOARDS, PaddedString(16, "ascii")),
    "payload_size" / Int32ub,
    "payload_sha256" / Bytes(32),
    "sig_alg" / Int8ub,
    Padding(1),
)
assert SIGNED.sizeof() == 216

HEADER = Struct(
    "signed_raw" / Bytes(216),
    "signature" / Bytes(64),
    "crc" / Checksum(Int32ub, lambda data: binascii.crc32(data) & 0xFFFFFFFF,
                     lambda ctx: ctx.signed_raw + ctx.signature),
    Padding(HEADER_SIZE - 284),
)
assert HEADER.sizeof() == HEADER_SIZE

# one payload entry; a u16 zero ends the payload
ENTRY = Struct(
    "name" / PascalString(Int16ub, "utf8"),
    "data" / Prefixed(Int32ub, GreedyBytes),
)


def build_signed(version, build_time, runtime, boards, payload_size, sha256, sig_alg):
    if not 1 <= len(boards) <= MAX_BOARDS:
        raise ValueError("an image names 1..%d boards, not %d" % (MAX_BOARDS, len(boards)))
    for b in boards:
        if not b or len(b) > 16:
            raise ValueError("board name %r: 1..16 characters" % b)
    padded = list(boards) + [""] * (MAX_BOARDS - len(boards))
    raw = SIGNED.build(dict(version=version, build_time=build_time, runtime=RUNTIMES[runtime],
                            board_count=len(boards), boards=padded, payload_size=payload_size, payload_sha256=sha256,
                            sig_alg=sig_alg))
    return raw


def build_header(signed_raw, signature=bytes(64)):
    return HEADER.build(dict(signed_raw=signed_raw, signature=signature))


def parse_header(data):
    """Container with the header fields (construct checks magic, format, CRC)."""
    h = HEADER.parse(data[:HEADER_SIZE])
    s = SIGNED.parse(h.signed_raw)
    s.boards = [b for b in s.boards[:s.board_count]]
    s.signature = h.signature
    s.crc = None
    return s


def build_payload(files):
    """files: [(name, bytes)] -> payload bytes."""
    out = [ENTRY.build(dict(name=n, data=d)) for n, d in files]
    return b"".join(out) + b"\0\0"


def parse_payload(data):
    """[(name, bytes)] of a payload."""
    files = []
    pos = 0
    while True:
        if data[pos:pos + 2] == b"\0\0":
            if pos + 2 != len(data):
                raise ValueError("bytes after the payload's end marker")
            return files
        e = ENTRY.parse(data[pos:])
        files.append((e.name, e.data))
        pos += len(ENTRY.build(e))
