"""What CPython 3.11 and MicroPython spell differently, in one place.

Device code imports `const`, the clocks' raw tick reads, the random sources
(SystemRandom for a running appliance, the seeded Random for the simulation)
and the hash constructors from here, so that nothing else needs to know
which interpreter it runs on.  `sip/` and `hal/` do not import `firmware`
(dependencies point one way); they take the random source and `now` as
arguments and spell `const` with the same two-line fallback.
"""
import sys
import hashlib
import binascii as _binascii
import os as _os

MICROPYTHON = sys.implementation.name == "micropython"

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

if MICROPYTHON:
    import time as _time

    _ticks_ms = _time.ticks_ms
    _ticks_diff = _time.ticks_diff
    _wall = _time.time
else:
    import time as _time

    def _ticks_ms():
        return _time.monotonic_ns() // 1000000

    def _ticks_diff(a, b):
        return a - b

    _wall = _time.time


def ticks_ms():
    """Raw monotonic ticks in ms; may wrap on MicroPython, use ticks_diff."""
    return _ticks_ms()


def ticks_diff(a, b):
    return _ticks_diff(a, b)


class MonotonicMs:
    """A non-wrapping monotonic millisecond counter built on ticks_ms.

    MicroPython's ticks wrap after 2**29 ms or so; we fold each difference into
    an unbounded integer, which stays exact as long as it is read at least once
    per wrap period (the scheduler reads it every loop turn).
    """

    def __init__(self):
        self._last = _ticks_ms()
        self._ms = 0

    def __call__(self):
        t = _ticks_ms()
        self._ms += _ticks_diff(t, self._last)
        self._last = t
        return self._ms


def wall_time():
    """Seconds since the epoch; for display and CDR stamps only, never timers."""
    return int(_wall())


def md5(data=b""):
    return hashlib.md5(data)


def sha256(data=b""):
    return hashlib.sha256(data)


_HASHES = {"md5": (md5, 64), "sha256": (sha256, 64), "sha-256": (sha256, 64)}


def hash_new(name, data=b""):
    """Hash constructor by (case-insensitive) name: md5, sha256 / sha-256."""
    return _HASHES[name.lower()][0](data)


def hmac_digest(name, key, msg):
    """RFC 2104 HMAC on hashlib; MicroPython has no `hmac` module."""
    ctor, block = _HASHES[name.lower()]
    if len(key) > block:
        key = ctor(key).digest()
    key = key + b"\x00" * (block - len(key))
    ipad = bytes(b ^ 0x36 for b in key)
    opad = bytes(b ^ 0x5C for b in key)
    return ctor(opad + ctor(ipad + msg).digest()).digest()


def hexlify(data):
    return _binascii.hexlify(data).decode()


class Random:
    """The seeded random source of the simulation: xorshift64*, identical on
    both interpreters.

    Only the in-process simulation injects one (Appliance(..., rng=Random(seed))),
    so that a whole simulated run, network included, is reproducible from its
    seed.  It is NOT cryptographic: three outputs give its state away, so a
    running appliance never uses it for anything an outsider sees (tags,
    branches, Call-IDs, nonces, salts, SSRCs); it uses SystemRandom.
    """

    _MASK = (1 << 64) - 1

    def __init__(self, seed=None):
        if seed is None:
            seed = int.from_bytes(urandom(8), "big")
        self.seed = seed
        self._s = (seed * 0x9E3779B97F4A7C15 + 1) & self._MASK or 1

    def next64(self):
        x = self._s
        x ^= (x >> 12)
        x ^= (x << 25) & self._MASK
        x ^= (x >> 27)
        self._s = x
        return (x * 0x2545F4914F6CDD1D) & self._MASK

    def randbelow(self, n):
        """Uniform integer in [0, n)."""
        return self.next64() % n

    def random(self):
        """Float in [0, 1)."""
        return (self.next64() >> 11) / 9007199254740992.0

    def token(self, nbytes=8):
        """Lower-case hex string of nbytes random bytes (tags, branches)."""
        out = []
        while nbytes > 0:
            v = self.next64()
            for _ in range(min(8, nbytes)):
                out.append("%02x" % (v & 0xFF))
                v >>= 8
                nbytes -= 1
        return "".join(out)


_TWO64 = 1 << 64


class SystemRandom:
    """The running appliance's random source: every value is drawn from the
    operating system's cryptographic generator (os.urandom: getrandom() or
    /dev/urandom on Linux and the MicroPython unix port, the hardware RNG on
    MicroPython boards whose os.urandom has one).  Same interface as Random, so
    callers do not know which one they hold; nothing is kept between calls, so
    no output says anything about another.  `read` (n -> n bytes) replaces the
    OS source, for tests of this class only."""

    seed = None     # nothing to replay: there is no seed

    def __init__(self, read=None):
        self._read = read or urandom

    def bytes(self, n):
        return self._read(n)

    def next64(self):
        return int.from_bytes(self._read(8), "big")

    def randbelow(self, n):
        """Uniform integer in [0, n), without modulo bias (n < 2**64)."""
        if n <= 0:
            raise ValueError("randbelow needs n > 0")
        limit = _TWO64 - _TWO64 % n     # the largest multiple of n that fits
        while True:
            v = int.from_bytes(self._read(8), "big")
            if v < limit:
                return v % n

    def random(self):
        """Float in [0, 1): 53 random bits."""
        return (int.from_bytes(self._read(8), "big") >> 11) / 9007199254740992.0

    def token(self, nbytes=8):
        """Lower-case hex string of nbytes random bytes (tags, branches, keys)."""
        return hexlify(self._read(nbytes))


def urandom(n):
    """n bytes from the operating system's cryptographic source."""
    return _os.urandom(n)


def fsync_file(f):
    """Flush a file to stable storage where the platform allows it."""
    f.flush()
    try:
        import os
        os.fsync(f.fileno())
    except (AttributeError, OSError):
        pass  # MicroPython's os has no fsync; flush reaches the VFS


def fsync_dir(path):
    try:
        import os
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except (AttributeError, OSError):
        pass


def mkdirs(path):
    """Create path and its missing parents (os.makedirs is CPython only)."""
    import os
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        p = "/".join(parts[:i])
        if p:
            try:
                os.mkdir(p)
            except OSError:
                pass


def sleep_ms(ms):
    """Block the whole process; only the real-clock scheduler's idle wait uses it."""
    if MICROPYTHON:
        _time.sleep_ms(ms)
    else:
        _time.sleep(ms / 1000)


GC_THRESHOLD_MIN = const(65536)
GC_THRESHOLD_SHARE = const(8)     # collect after allocating 1/8 of the heap free at boot


def tune_gc():
    """MicroPython: collect after a share of the heap has been allocated
    instead of only when it is exhausted.  Left alone, garbage fills the whole
    heap between collections, so the objects that survive (bindings, lingering
    transactions) end up scattered over all of it, and after some minutes of
    load no 16 KB hole is left for a UDP receive buffer even with 85 % of the
    heap free (measured: 223 datagrams dropped in a 3 s REGISTER run on an
    8 MB heap).  With a threshold the churn stays in the low part of the heap
    and the top stays whole.  Returns the threshold (None on CPython)."""
    if not MICROPYTHON:
        return None
    import gc
    gc.collect()
    t = max(GC_THRESHOLD_MIN, gc.mem_free() // GC_THRESHOLD_SHARE)
    gc.threshold(t)
    return t
