"""Simulated buses and clock.  Each bus access first advances the chip model to
`now()` from the injected clock, so models evolve in virtual time only.

Fault hooks on every bus: fail_next(n, errno) makes the next n accesses raise
OSError; broken=True makes every access raise.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hal import bus

MAX_HISTORY = const(1024)    # recorded accesses per model; full -> drop oldest, count
EIO = const(5)
ENODEV = const(19)


class SimClock:
    """Virtual millisecond clock: call it for `now`; sleep(ms) advances it."""

    def __init__(self, t=0):
        self.t = t

    def __call__(self):
        return self.t

    def sleep(self, ms):
        self.t += ms

    def advance(self, ms):
        self.t += ms
        return self.t


class History:
    """Bounded register-access history: entries like ('w', reg, val), ('r', reg, val),
    ('iw', addr, val), ('ir', addr, val), or ('r', reg, b'..') for I2C block reads.

    Stored as a preallocated ring of 4-byte records (op, reg, value16) in one
    bytearray, so a long simulation keeps a fixed, small footprint on MicroPython
    (tuples per access fragmented its heap).  When full the oldest record is
    overwritten and counted in `dropped`; `items` rebuilds the tuples on demand.
    """

    _OPS = ("r", "w", "ir", "iw")

    def __init__(self, size=MAX_HISTORY):
        self.size = size
        self._buf = bytearray(4 * size)
        self._start = 0
        self._n = 0
        self.dropped = 0

    def add(self, entry):
        op, reg, val = entry
        code = self._OPS.index(op)
        if not isinstance(val, int):        # I2C block read: keep up to 2 bytes
            code = 4 + len(val)             # 5: 1 byte, 6: 2 bytes
            val = int.from_bytes(bytes(val[:2]) + b"\x00", "little") & 0xFFFF
        if self._n == self.size:
            self._start = (self._start + 1) % self.size
            self._n -= 1
            self.dropped += 1
        i = 4 * ((self._start + self._n) % self.size)
        b = self._buf
        b[i] = code
        b[i + 1] = reg & 0xFF
        b[i + 2] = val & 0xFF
        b[i + 3] = (val >> 8) & 0xFF
        self._n += 1

    def _get(self, k):
        i = 4 * ((self._start + k) % self.size)
        b = self._buf
        code, reg, val = b[i], b[i + 1], b[i + 2] | (b[i + 3] << 8)
        if code >= 5:
            return ("r", reg, bytes((val & 0xFF, val >> 8))[:code - 4])
        return (self._OPS[code], reg, val)

    @property
    def items(self):
        return [self._get(k) for k in range(self._n)]

    def clear(self):
        self._start = self._n = 0

    def writes(self):
        return [(e[1], e[2]) for e in self if e[0] == "w"]

    def index(self, entry, start=0):
        for k in range(start, self._n):
            if self._get(k) == entry:
                return k
        return -1

    def __len__(self):
        return self._n

    def __iter__(self):
        for k in range(self._n):
            yield self._get(k)


class _Faulty:
    def __init__(self):
        self.broken = False
        self._fail = 0
        self._errno = EIO
        self.errors = 0

    def fail_next(self, n=1, errno=EIO):
        self._fail = n
        self._errno = errno

    def _check(self):
        if self.broken or self._fail > 0:
            if self._fail > 0:
                self._fail -= 1
            self.errors += 1
            raise OSError(self._errno, "simulated bus error")


class SimSPI(_Faulty, bus.SPI):
    """One chip select on a simulated SPI bus, routed to model.spi_frame(bytes)->bytes."""

    def __init__(self, model, now, cs_per_byte=False):
        _Faulty.__init__(self)
        self.model = model
        self.now = now
        self.cs_per_byte = cs_per_byte

    def transfer(self, tx):
        self._check()
        self.model.advance(self.now())
        if self.cs_per_byte:
            out = bytearray(len(tx))
            for i in range(len(tx)):
                out[i] = self.model.spi_frame(bytes((tx[i],)))[0]
            return bytes(out)
        return bytes(self.model.spi_frame(bytes(tx)))

    def write_readinto(self, tx, rx):
        r = self.transfer(tx)
        for i in range(len(rx)):
            rx[i] = r[i]
        return rx


class SimI2C(_Faulty, bus.I2C):
    def __init__(self, now, devices=None):
        _Faulty.__init__(self)
        self.now = now
        self.devices = devices if devices is not None else {}

    def add(self, addr, model):
        self.devices[addr] = model

    def _dev(self, addr):
        self._check()
        m = self.devices.get(addr)
        if m is None:
            raise OSError(ENODEV, "no I2C device at 0x%02x" % addr)
        m.advance(self.now())
        return m

    def read_reg(self, addr, reg, n):
        return self._dev(addr).i2c_read(reg, n)

    def write_reg(self, addr, reg, data):
        self._dev(addr).i2c_write(reg, data)


class SimPin(bus.Pin):
    """A GPIO pin whose level tests can read (level) or drive (set_input)."""

    def __init__(self, num=None, level=0):
        bus.Pin.__init__(self)
        self.num = num
        self.level = level
        self.writes = 0

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0
        self.writes += 1

    def set_input(self, v):
        self.level = 1 if v else 0


class SimPCM(bus.PCM):
    """PCM bus whose line side is the chip models: they attach() sinks for frames
    written toward the line, and inject() frames coming from the line."""
    pass
