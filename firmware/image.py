"""The firmware image, device side: a small portable reader of the layout that
tools/mkimage writes with `construct` (tools/imagelayout.py).  The two are
tested against each other (tests/unit/test_image.py), so they cannot drift.

Layout (all integers big-endian):

    header, HEADER_SIZE (320) bytes:
      0  magic            4   b"BVFW"
      4  format           u16 FORMAT (1)
      6  header size      u16 HEADER_SIZE
      8  firmware version 32  ASCII, NUL-padded
     40  build time       u64 Unix seconds
     48  runtime          u8  1 = CPython (.py payload), 2 = MicroPython (.mpy payload)
     49  board count      u8  1..MAX_BOARDS
     50  boards           MAX_BOARDS x 16 ASCII, NUL-padded
    178  payload size     u32
    182  payload SHA-256  32
    214  signature alg    u8  0 = unsigned, 1 = Ed25519
    215  reserved         u8  0
    216  signature        64  Ed25519 over header bytes 0..215 (which hold the
                              payload's SHA-256), zeros when unsigned
    280  header CRC-32    u32 of bytes 0..279
    284  reserved         36  zeros
    payload, `payload size` bytes: entries, each
      u16 name length (0 ends the payload), name (UTF-8 relative path),
      u32 data size, data
    nothing after the payload

check() verifies a whole image in bounded chunks and raises ImageError with a
message a user can act on; entries() walks a checked payload.
"""
import binascii
import hashlib

from firmware.compat import const, mkdirs

MAGIC = b"BVFW"
FORMAT = const(1)
HEADER_SIZE = const(320)
MAX_BOARDS = const(8)
BOARD_LEN = const(16)
VERSION_LEN = const(32)
SIGNED_LEN = const(216)       # the bytes the signature covers
SIG_OFF = const(216)
CRC_OFF = const(280)
MAX_PAYLOAD = const(4194304)  # 4 MiB
MAX_ENTRIES = const(1024)
MAX_NAME = const(160)
MAX_FILE = const(524288)
CHUNK = const(4096)
RUNTIMES = {1: "cpython", 2: "micropython"}
SIG_NONE = const(0)
SIG_ED25519 = const(1)


class ImageError(Exception):
    pass


def _u16(b, i):
    return (b[i] << 8) | b[i + 1]


def _u32(b, i):
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


def _text(b, i, n, what):
    raw = bytes(b[i:i + n])
    end = raw.find(b"\0")
    if end >= 0:
        if raw[end:] != b"\0" * (n - end):
            raise ImageError("corrupt image header: %s has bytes after its end" % what)
        raw = raw[:end]
    try:
        return raw.decode()
    except UnicodeError:
        raise ImageError("corrupt image header: %s is not text" % what)


class Header:
    """The parsed header; raw keeps its bytes (the signed part is raw[:216])."""

    def __init__(self, raw):
        b = raw
        if len(b) < HEADER_SIZE:
            raise ImageError("truncated image: %d bytes, a header alone is %d" % (len(b), HEADER_SIZE))
        if bytes(b[0:4]) != MAGIC:
            raise ImageError("not a firmware image (magic %r, expected %r)" % (bytes(b[0:4]), MAGIC))
        if _u16(b, 4) != FORMAT:
            raise ImageError("image format %d is not supported (this firmware reads format %d)"
                             % (_u16(b, 4), FORMAT))
        if _u16(b, 6) != HEADER_SIZE:
            raise ImageError("corrupt image header: header size %d, expected %d" % (_u16(b, 6), HEADER_SIZE))
        crc = binascii.crc32(bytes(b[0:CRC_OFF])) & 0xFFFFFFFF
        if crc != _u32(b, CRC_OFF):
            raise ImageError("corrupt image header: CRC %08x, computed %08x" % (_u32(b, CRC_OFF), crc))
        if b[215] or bytes(b[284:HEADER_SIZE]) != bytes(HEADER_SIZE - 284):
            raise ImageError("corrupt image header: reserved bytes are not zero")
        self.raw = bytes(b[0:HEADER_SIZE])
        self.version = _text(b, 8, VERSION_LEN, "the version")
        self.build_time = (_u32(b, 40) << 32) | _u32(b, 44)
        rt = b[48]
        if rt not in RUNTIMES:
            raise ImageError("corrupt image header: unknown runtime %d" % rt)
        self.runtime = RUNTIMES[rt]
        n = b[49]
        if not 1 <= n <= MAX_BOARDS:
            raise ImageError("corrupt image header: %d boards (1..%d)" % (n, MAX_BOARDS))
        self.boards = [_text(b, 50 + i * BOARD_LEN, BOARD_LEN, "a board name") for i in range(n)]
        self.payload_size = _u32(b, 178)
        if self.payload_size > MAX_PAYLOAD:
            raise ImageError("payload of %d bytes is over the %d-byte bound" % (self.payload_size, MAX_PAYLOAD))
        self.sha256 = bytes(b[182:214])
        self.sig_alg = b[214]
        if self.sig_alg not in (SIG_NONE, SIG_ED25519):
            raise ImageError("corrupt image header: unknown signature algorithm %d" % self.sig_alg)
        self.signature = bytes(b[SIG_OFF:SIG_OFF + 64])

    def describe(self):
        return [
            "format: %d" % FORMAT,
            "version: %s" % self.version,
            "build time: %d" % self.build_time,
            "runtime: %s" % self.runtime,
            "boards: %s" % ", ".join(self.boards),
            "payload: %d bytes, SHA-256 %s" % (self.payload_size, binascii.hexlify(self.sha256).decode()),
            "signature: %s" % ("Ed25519" if self.sig_alg == SIG_ED25519 else "none"),
        ]


def read_header(f):
    return Header(f.read(HEADER_SIZE))


def check(f, board=None, runtime=None, pubkey=None, out=None):
    """Verify the image read from f (at its start): header, board, runtime,
    size, SHA-256 and, when pubkey (32 bytes) is given, the Ed25519
    signature (then an unsigned image is refused).  If out is given, every
    byte read is also written to it (copy while checking).  Returns the
    Header; raises ImageError."""
    raw = f.read(HEADER_SIZE)
    h = Header(raw)
    if board is not None and board not in h.boards:
        raise ImageError("image is for board %s, not for this board (%s)" % (", ".join(h.boards), board))
    if runtime is not None and h.runtime != runtime:
        raise ImageError("image is for %s, this appliance runs %s" % (h.runtime, runtime))
    if pubkey is not None:
        if h.sig_alg == SIG_NONE:
            raise ImageError("image is unsigned, and this appliance requires a signed image")
        from firmware import ed25519
        if not ed25519.verify(pubkey, h.raw[:SIGNED_LEN], h.signature):
            raise ImageError("image signature does not verify with the configured public key")
    if out is not None:
        out.write(h.raw)
    sha = hashlib.sha256()
    left = h.payload_size
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            raise ImageError("truncated image: payload ends %d bytes early" % left)
        sha.update(chunk)
        if out is not None:
            out.write(chunk)
        left -= len(chunk)
    if f.read(1):
        raise ImageError("corrupt image: bytes after the %d-byte payload" % h.payload_size)
    if sha.digest() != h.sha256:
        raise ImageError("corrupt image: payload SHA-256 does not match the header")
    return h


def check_file(path, board=None, runtime=None, pubkey=None):
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ImageError("cannot open image %s: %s" % (path, e))
    try:
        return check(f, board, runtime, pubkey)
    finally:
        f.close()


def _read_exact(f, n, what):
    b = f.read(n)
    if len(b) != n:
        raise ImageError("corrupt payload: %s ends early" % what)
    return b


def entries(f, header, sink):
    """Walk the payload of a checked image (f just after the header):
    sink(name, size, read) for each entry, where read(n) returns the next
    bytes of its data (sink may read fewer; the rest is skipped).  Names are
    relative paths without '..'.  Returns the number of entries."""
    left = header.payload_size
    count = 0
    while True:
        if left < 2:
            raise ImageError("corrupt payload: no end marker")
        n = _u16(_read_exact(f, 2, "an entry name length"), 0)
        left -= 2
        if n == 0:
            break
        if n > MAX_NAME or left < n + 4:
            raise ImageError("corrupt payload: entry name of %d bytes" % n)
        name = _read_exact(f, n, "an entry name").decode()
        size = _u32(_read_exact(f, 4, "an entry size"), 0)
        left -= n + 4
        if (name.startswith("/") or "\\" in name or ".." in name.split("/")
                or size > MAX_FILE or size > left):
            raise ImageError("corrupt payload: bad entry %r (%d bytes)" % (name, size))
        count += 1
        if count > MAX_ENTRIES:
            raise ImageError("corrupt payload: more than %d entries" % MAX_ENTRIES)
        rest = [size]

        def read(k, rest=rest):
            k = min(k, rest[0])
            b = _read_exact(f, k, name) if k else b""
            rest[0] -= k
            return b
        sink(name, size, read)
        while rest[0]:
            read(CHUNK)
        left -= size
    if left:
        raise ImageError("corrupt payload: %d bytes after the end marker" % left)
    return count


def extract(path, dest, pubkey=None):
    """Check the image at path, then write its payload under dest (created).
    Returns (Header, entry count)."""
    h = check_file(path, pubkey=pubkey)
    mkdirs(dest)
    made = {dest: True}

    def sink(name, size, read):
        parts = name.split("/")
        d = dest
        for p in parts[:-1]:
            d = d + "/" + p
            if d not in made:
                mkdirs(d)
                made[d] = True
        with open(dest + "/" + name, "wb") as out:
            while True:
                b = read(CHUNK)
                if not b:
                    break
                out.write(b)
    with open(path, "rb") as f:
        f.read(HEADER_SIZE)
        n = entries(f, h, sink)
    return h, n
