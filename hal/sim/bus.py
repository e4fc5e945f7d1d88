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
    """Bounded register-access history: entries like ('w', reg, val), ('r', reg, val)."""

    def __init__(self, size=MAX_HISTORY):
        self.size = size
        self.items = []
        self.dropped = 0

    def add(self, entry):
        if len(self.items) >= self.size:
            self.items.pop(0)
            self.dropped += 1
        self.items.append(entry)

    def clear(self):
        self.items = []

    def writes(self):
        return [(e[1], e[2]) for e in self.items if e[0] == "w"]

    def index(self, entry, start=0):
        for i in range(start, len(self.items)):
            if self.items[i] == entry:
                return i
        return -1

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


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
