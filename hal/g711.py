"""G.711 mu-law / A-law.  Decode tables (256 x int) are built lazily once.

encode functions are integer-only (no table of 16 K entries; memory matters).
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

ULAW_SILENCE = const(0xFF)
ALAW_SILENCE = const(0xD5)
_BIAS = const(0x84)
_CLIP = const(32635)

_ulaw_dec = None
_alaw_dec = None


def ulaw_encode(x):
    """16-bit signed linear -> mu-law byte."""
    if x < 0:
        x = -x
        sign = 0x80
    else:
        sign = 0
    if x > _CLIP:
        x = _CLIP
    x += _BIAS
    exp = 7
    mask = 0x4000
    while exp > 0 and not (x & mask):
        exp -= 1
        mask >>= 1
    mant = (x >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant)) & 0xFF


def _ulaw_decode_calc(u):
    u = ~u & 0xFF
    t = ((u & 0x0F) << 3) + _BIAS
    t <<= (u & 0x70) >> 4
    return (_BIAS - t) if (u & 0x80) else (t - _BIAS)


def alaw_encode(x):
    if x >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        x = -x - 1
    if x > 32767:
        x = 32767
    seg = 0
    v = x >> 8
    while v and seg < 8:
        seg += 1
        v >>= 1
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    if seg < 2:
        aval |= (x >> 4) & 0x0F
    else:
        aval |= (x >> (seg + 3)) & 0x0F
    return aval ^ mask


def _alaw_decode_calc(a):
    a ^= 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t += 0x108
        t <<= seg - 1
    return t if (a & 0x80) else -t


def ulaw_table():
    global _ulaw_dec
    if _ulaw_dec is None:
        _ulaw_dec = [_ulaw_decode_calc(i) for i in range(256)]
    return _ulaw_dec


def alaw_table():
    global _alaw_dec
    if _alaw_dec is None:
        _alaw_dec = [_alaw_decode_calc(i) for i in range(256)]
    return _alaw_dec


def ulaw_decode(u):
    return ulaw_table()[u]


def alaw_decode(a):
    return alaw_table()[a]


def decode_table(law):
    return alaw_table() if law == "alaw" else ulaw_table()


def encoder(law):
    return alaw_encode if law == "alaw" else ulaw_encode


def silence(law):
    return ALAW_SILENCE if law == "alaw" else ULAW_SILENCE
