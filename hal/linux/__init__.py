"""Linux backend (CPython only): spidev, smbus2, gpiozero, pyserial, file/FIFO PCM.

Each class imports its library inside __init__, so importing this package never
fails on a host without the library; only using the class does.
"""
import os

from hal import bus


class LinuxSPI(bus.SPI):
    """/dev/spidevB.C.  cs_per_byte uses spidev.xfer (CS released between bytes),
    otherwise xfer2 (CS held for the whole transfer)."""

    def __init__(self, bus_num, cs, mode=3, speed_hz=1000000, cs_per_byte=False):
        import spidev
        self._dev = spidev.SpiDev()
        self._dev.open(bus_num, cs)
        self._dev.mode = mode
        self._dev.max_speed_hz = speed_hz
        self.cs_per_byte = cs_per_byte

    def transfer(self, tx):
        if self.cs_per_byte:
            return bytes(self._dev.xfer(list(tx)))
        return bytes(self._dev.xfer2(list(tx)))

    def close(self):
        self._dev.close()


class LinuxI2C(bus.I2C):
    def __init__(self, bus_num):
        import smbus2
        self._bus = smbus2.SMBus(bus_num)

    def read_reg(self, addr, reg, n):
        return bytes(self._bus.read_i2c_block_data(addr, reg, n))

    def write_reg(self, addr, reg, data):
        self._bus.write_i2c_block_data(addr, reg, list(data))

    def close(self):
        self._bus.close()


class LinuxPin(bus.Pin):
    """gpiozero pin (BCM numbering).  Edge callbacks are polled via poll()."""

    def __init__(self, num, out=False, pull_up=None, value=0):
        bus.Pin.__init__(self)
        import gpiozero
        self.num = num
        if out:
            self._dev = gpiozero.DigitalOutputDevice(num, initial_value=bool(value))
        else:
            self._dev = gpiozero.DigitalInputDevice(num, pull_up=pull_up)
        self._out = out

    def value(self, v=None):
        if v is None:
            return 1 if self._dev.value else 0
        if v:
            self._dev.on()
        else:
            self._dev.off()


class LinuxUART(bus.UART):
    def __init__(self, port, baudrate=115200):
        import serial
        self._s = serial.Serial(port, baudrate, timeout=0)

    def read(self, n=-1):
        if n is None or n < 0:
            n = self._s.in_waiting or 1
        data = self._s.read(n)
        return data or None

    def write(self, data):
        return self._s.write(data)

    def fileno(self):
        return self._s.fileno()


class FilePCM(bus.PCM):
    """PCM over files or FIFOs, one pair per channel: rx_fmt % chan is read from,
    tx_fmt % chan written to (for example a FIFO fed by an ALSA/TDM helper).
    ALSA itself is out of scope here."""

    def __init__(self, channels, rx_fmt, tx_fmt):
        bus.PCM.__init__(self, channels)
        self._rx_fmt = rx_fmt
        self._tx_fmt = tx_fmt
        self._rfd = [None] * channels
        self._wfd = [None] * channels
        self._part = [b""] * channels

    def _fd(self, chan, write):
        fds = self._wfd if write else self._rfd
        if fds[chan] is None:
            path = (self._tx_fmt if write else self._rx_fmt) % chan
            flags = (os.O_WRONLY | os.O_CREAT) if write else os.O_RDONLY
            fds[chan] = os.open(path, flags | os.O_NONBLOCK)
        return fds[chan]

    def read_frame(self, chan):
        try:
            data = os.read(self._fd(chan, False), bus.FRAME_BYTES - len(self._part[chan]))
        except BlockingIOError:
            return None
        if not data:
            return None
        buf = self._part[chan] + data
        if len(buf) < bus.FRAME_BYTES:
            self._part[chan] = buf
            return None
        self._part[chan] = b""
        return buf

    def write_frame(self, chan, frame):
        if len(frame) != bus.FRAME_BYTES:
            raise ValueError("PCM frame must be %d bytes" % bus.FRAME_BYTES)
        try:
            os.write(self._fd(chan, True), bytes(frame))
        except BlockingIOError:
            self.tx[chan].dropped += 1


class Backend:
    name = "linux"

    def __init__(self, board):
        self.board = board
        self._i2c = {}

    def spi(self, bus_id, cs, cs_per_byte):
        spec = self.board.get("spi", {}).get(bus_id, {})
        return LinuxSPI(spec.get("bus", bus_id), cs, spec.get("mode", 3),
                        spec.get("speed_hz", 1000000), cs_per_byte)

    def i2c(self, bus_id):
        if bus_id not in self._i2c:
            spec = self.board.get("i2c", {}).get(bus_id, {})
            self._i2c[bus_id] = LinuxI2C(spec.get("bus", bus_id))
        return self._i2c[bus_id]

    def pin(self, num, out=True):
        return LinuxPin(num, out=out)

    def pcm(self, spec):
        kind = spec.get("kind", "file")
        if kind != "file":
            raise NotImplementedError(
                "board %s: PCM kind %r needs an ALSA/TDM helper; use kind 'file' with "
                "rx/tx FIFO paths" % (self.board.get("name"), kind))
        return FilePCM(spec.get("channels", 8), spec.get("rx", "/run/voice/pcm%d.rx"),
                       spec.get("tx", "/run/voice/pcm%d.tx"))
