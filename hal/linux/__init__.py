"""Linux backend (CPython only): spidev, smbus2, gpiozero, pyserial; PCM over
FIFOs, a TDM character device, or the Pi's PCM block through ALSA.

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
    tx_fmt % chan written to (for example FIFOs fed by an external helper).
    TDM devices and the Pi's PCM block use StreamPCM below."""

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


TDM_MAX_READ_FRAMES = 4         # frames taken from the stream per pump (a backlog is drained over ticks)
_SILENCE = {"ulaw": 0xFF, "alaw": 0xD5}


class StreamPCM(bus.PCM):
    """TDM over one interleaved byte stream: each 8 kHz sample period carries
    one G.711 byte per timeslot, so 20 ms of N channels are 160*N bytes with
    channel c at offsets c, c+N, ...  Bytes come from rx_fd (non-blocking);
    for every frame received one frame is written to tx_fd, built from each
    channel's next queued frame or silence, so the line's clock paces both
    directions.  A full transmit stream drops the frame (tx_dropped)."""

    def __init__(self, channels, rx_fd, tx_fd, law="ulaw", procs=(), files=()):
        bus.PCM.__init__(self, channels)
        self.rx_fd = rx_fd
        self.tx_fd = tx_fd
        self.procs = list(procs)         # ALSA helper processes, ended by close()
        self.files = list(files)         # pipe objects owning the fds (else close the fds)
        self.frame = bus.FRAME_BYTES * channels
        self._part = b""
        self._silence = bytes([_SILENCE[law]]) * bus.FRAME_BYTES
        self._out = bytearray(self.frame)
        self.frames_in = 0
        self.frames_out = 0
        self.tx_dropped = 0
        self.eof = False

    def pump(self):
        if self.eof:
            return
        for _ in range(TDM_MAX_READ_FRAMES):
            try:
                data = os.read(self.rx_fd, self.frame - len(self._part))
            except BlockingIOError:
                return
            if not data:
                self.eof = True          # the helper or device went away: a fault to report
                return
            buf = self._part + data
            if len(buf) < self.frame:
                self._part = buf
                return
            self._part = b""
            n = self.channels
            for c in range(n):
                self.rx[c].push(buf[c::n])
            self.frames_in += 1
            self._send()

    def _send(self):
        out = self._out
        n = self.channels
        for c in range(n):
            f = self.tx[c].pop()
            out[c::n] = f if f is not None else self._silence
        try:
            os.write(self.tx_fd, out)
            self.frames_out += 1
        except BlockingIOError:
            self.tx_dropped += 1

    def read_frame(self, chan):
        self.pump()
        return self.rx[chan].pop()

    def write_frame(self, chan, frame):
        if len(frame) != bus.FRAME_BYTES:
            self.bad_frames += 1
            raise ValueError("PCM frame must be %d bytes" % bus.FRAME_BYTES)
        self.tx[chan].push(bytes(frame))

    def close(self):
        for f in self.files:
            try:
                f.close()             # closes the pipe fds (EOF to aplay)
            except OSError:
                pass
        if not self.files:
            for fd in {self.rx_fd, self.tx_fd}:
                try:
                    os.close(fd)
                except OSError:
                    pass
        for p in self.procs:
            # EOF on its pipe ends each tool once it has written what it had
            # (aplay plays out its buffer); only one that hangs is terminated
            try:
                p.wait(PROC_EXIT_GRACE_S)
                continue
            except Exception:
                p.terminate()
            try:
                p.wait(2)
            except Exception:
                p.kill()
                p.wait()


PROC_EXIT_GRACE_S = 2      # arecord/aplay: time to exit on EOF before SIGTERM


def tdm_device_pcm(channels, path, law):
    """A TDM character device (SRX-class boards): one fd both ways."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    return StreamPCM(channels, fd, fd, law)


def alsa_pcm(channels, device, law, period_us=20000):
    """The Pi's PCM/I2S block as an ALSA device (a device-tree overlay sets it
    to DSP-A framing, 8 kHz, one byte per timeslot): arecord and aplay from
    alsa-utils move the raw interleaved stream through pipes."""
    import subprocess
    fmt = "MU_LAW" if law == "ulaw" else "A_LAW"
    common = ["-q", "-D", device, "-t", "raw", "-f", fmt, "-r", "8000", "-c", str(channels),
              "--period-time=%d" % period_us, "--buffer-time=%d" % (period_us * 4)]
    try:
        rec = subprocess.Popen(["arecord"] + common, stdout=subprocess.PIPE)
        play = subprocess.Popen(["aplay"] + common, stdin=subprocess.PIPE)
    except OSError as e:
        raise OSError(e.errno, "cannot start arecord/aplay (alsa-utils): %s" % e.strerror)
    rx, tx = rec.stdout.fileno(), play.stdin.fileno()
    os.set_blocking(rx, False)
    os.set_blocking(tx, False)
    return StreamPCM(channels, rx, tx, law, (rec, play), (rec.stdout, play.stdin))


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
        channels = spec.get("channels", 8)
        law = self.board.get("law", "ulaw")
        if kind == "file":
            return FilePCM(channels, spec.get("rx", "/run/voice/pcm%d.rx"),
                           spec.get("tx", "/run/voice/pcm%d.tx"))
        if kind == "tdm":
            return tdm_device_pcm(channels, spec.get("device", "/dev/tdm0"), law)
        if kind == "bcm2835":
            return alsa_pcm(channels, spec.get("alsa", "hw:0,0"), law)
        raise NotImplementedError("board %s: unknown PCM kind %r (file, tdm, bcm2835)" % (
            self.board.get("name"), kind))
