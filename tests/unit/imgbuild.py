"""A minimal firmware image writer for the portable tests (no `construct` on
MicroPython).  tests/unit/test_image.py checks that it writes exactly what
tools/mkimage's construct layout writes for the same fields."""
import binascii
import hashlib
import struct


def payload(files):
    out = []
    for name, data in files:
        n = name.encode()
        out.append(struct.pack(">H", len(n)) + n + struct.pack(">I", len(data)) + data)
    return b"".join(out) + b"\0\0"


def _pad(s, n):
    b = s.encode()
    return b + b"\0" * (n - len(b))


def signed_part(body, version="9.9.9", boards=("sim",), runtime=1, build_time=1700000000,
                sig_alg=0):
    return (b"BVFW" + struct.pack(">HH", 1, 320) + _pad(version, 32)
            + struct.pack(">QBB", build_time, runtime, len(boards))
            + b"".join(_pad(b, 16) for b in boards) + b"\0" * (16 * (8 - len(boards)))
            + struct.pack(">I", len(body)) + hashlib.sha256(body).digest()
            + bytes([sig_alg, 0]))


def image(files, secret=None, **fields):
    """Image bytes: header (signed with secret if given) + payload."""
    body = payload(files)
    if secret is not None:
        fields["sig_alg"] = 1
    signed = signed_part(body, **fields)
    sig = bytes(64)
    if secret is not None:
        from firmware import ed25519
        sig = ed25519.sign(secret, signed)
    head = signed + sig
    head += struct.pack(">I", binascii.crc32(head) & 0xFFFFFFFF)
    head += b"\0" * (320 - len(head))
    return head + body
