"""MicroPython backend: machine.SPI / I2C / Pin / UART.

Only the builder imports this, and only on MicroPython.  Chip selects are
driven as GPIOs so that per-byte CS (Si3210) is possible on any port.
"""
import machine

from hal import bus


class MpySPI(bus.SPI):
    def __init__(self, spi, cs_pin, cs_per_byte=False):
        self._spi = spi
        self._cs = cs_pin
        self._cs(1)
        self.cs_per_byte = cs_per_byte
        self._b1 = bytearray(1)
        self._r1 = bytearray(1)

    def write_readinto(self, tx, rx):
        cs = self._cs
        if self.cs_per_byte:
            b1 = self._b1
            r1 = self._r1
            for i in range(len(tx)):
                b1[0] = tx[i]
                cs(0)
                self._spi.write_readinto(b1, r1)
                cs(1)
                rx[i] = r1[0]
            return rx
        cs(0)
        try:
            self._spi.write_readinto(tx, rx)
        finally:
            cs(1)
        return rx

    def transfer(self, tx):
        rx = bytearray(len(tx))
        self.write_readinto(tx, rx)
        return bytes(rx)


class MpyI2C(bus.I2C):
    def __init__(self, i2c):
        self._i2c = i2c

    def read_reg(self, addr, reg, n):
        return self._i2c.readfrom_mem(addr, reg, n)

    def write_reg(self, addr, reg, data):
        self._i2c.writeto_mem(addr, reg, data)


class MpyPin(bus.Pin):
    def __init__(self, num, out=True, value=0):
        bus.Pin.__init__(self)
        if out:
            self._pin = machine.Pin(num, machine.Pin.OUT, value=value)
        else:
            self._pin = machine.Pin(num, machine.Pin.IN, machine.Pin.PULL_UP)

    def value(self, v=None):
        if v is None:
            return self._pin.value()
        self._pin.value(1 if v else 0)


class MpyUART(bus.UART):
    def __init__(self, uart_id, baudrate=115200, **kw):
        self._u = machine.UART(uart_id, baudrate=baudrate, timeout=0, **kw)

    def read(self, n=-1):
        if n is None or n < 0:
            return self._u.read()
        return self._u.read(n)

    def write(self, data):
        return self._u.write(data)


class Backend:
    name = "mpy"

    def __init__(self, board):
        self.board = board
        self._spi = {}
        self._i2c = {}

    def spi(self, bus_id, cs, cs_per_byte):
        spec = self.board.get("spi", {}).get(bus_id, {})
        if bus_id not in self._spi:
            mode = spec.get("mode", 3)
            self._spi[bus_id] = machine.SPI(spec.get("bus", bus_id),
                                            baudrate=spec.get("speed_hz", 1000000),
                                            polarity=(mode >> 1) & 1, phase=mode & 1)
        cs_pins = spec.get("cs_pins")
        pin_num = cs_pins[cs] if cs_pins else cs
        cs_pin = machine.Pin(pin_num, machine.Pin.OUT, value=1)
        return MpySPI(self._spi[bus_id], cs_pin, cs_per_byte)

    def i2c(self, bus_id):
        if bus_id not in self._i2c:
            spec = self.board.get("i2c", {}).get(bus_id, {})
            self._i2c[bus_id] = MpyI2C(machine.I2C(spec.get("bus", bus_id),
                                                   freq=spec.get("freq", 100000)))
        return self._i2c[bus_id]

    def pin(self, num, out=True):
        return MpyPin(num, out=out)

    def pcm(self, spec):
        # Frames are pumped by a board-specific DMA/I2S service into these queues.
        return bus.PCM(spec.get("channels", 8))
