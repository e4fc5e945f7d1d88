"""Console byte streams: stdio, a new pseudo-terminal, or a serial device.

Each stream offers fileno() for the scheduler's poll, read() of what is
available (b"" at end of input), write(bytes), is_tty and a label for the boot
line.  A terminal is put in raw mode so that the console's line editor sees
every key; a pipe is read as plain lines.  The pty is CPython-only (MicroPython
has no os.openpty); MicroPython boards use the HAL UART instead.
"""
import sys

from firmware.compat import MICROPYTHON

READ_CHUNK = 512


def _is_tty(fd):
    try:
        import termios
        termios.tcgetattr(fd)
        return True
    except Exception:
        return False


class FdStream:
    """A console over a file descriptor (CPython) or file object (MicroPython)."""

    def __init__(self, rfd, wfd, label, raw=False, keep=()):
        self.rfd = rfd
        self.wfd = wfd
        self.label = label
        self.is_tty = _is_tty(rfd)
        self._saved = None
        self._keep = keep  # fds kept open for the stream's lifetime (pty slave)
        self._want_raw = raw and self.is_tty
        if MICROPYTHON:
            self._rfile = sys.stdin.buffer if rfd == 0 else open(label, "rb")
            self._wfile = sys.stdout.buffer if wfd == 1 else self._rfile

    def activate(self):
        """Put a terminal in raw mode, once the console task takes it over
        (after the boot messages, which still print in cooked mode)."""
        if self._want_raw and self._saved is None:
            self._saved = _make_raw(self.rfd)

    def fileno(self):
        return self.rfd

    broken = False  # the output side is gone (EPIPE): the console ends as at end of input

    def read(self):
        if self.broken:
            return b""
        if MICROPYTHON:
            return self._rfile.read(1) or b""
        import os
        try:
            return os.read(self.rfd, READ_CHUNK)
        except OSError:  # EIO: the pty's other side went away
            return b""

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        if self.broken:
            return
        if MICROPYTHON:
            try:
                self._wfile.write(data)
                if hasattr(self._wfile, "flush"):
                    self._wfile.flush()
            except OSError:
                self.broken = True
            return
        import os
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.wfd, view)
            except BlockingIOError:
                import select
                select.select([], [self.wfd], [], 1.0)
                continue
            except OSError:  # EPIPE / EIO: nobody reads the console any more
                self.broken = True
                return
            view = view[n:]

    device = False  # a serial device, whose speed `system console baud-rate` sets

    def set_baud(self, baud):
        """Set the line speed of a serial-device console; False for stdio/pty."""
        if not (self.device and self.is_tty):
            return False
        import termios
        attrs = termios.tcgetattr(self.rfd)
        speed = getattr(termios, "B%d" % baud)
        attrs[4] = attrs[5] = speed
        termios.tcsetattr(self.rfd, termios.TCSANOW, attrs)
        return True

    def close(self):
        if self._saved is not None:
            _restore(self.rfd, self._saved)
            self._saved = None
        if self.device and not MICROPYTHON and self.rfd is not None:
            import os
            os.close(self.rfd)
            self.rfd = self.wfd = None


def _make_raw(fd):
    import termios
    saved = termios.tcgetattr(fd)
    if MICROPYTHON:
        termios.setraw(fd)
    else:
        import tty
        tty.setraw(fd)
    return saved


def _restore(fd, saved):
    try:
        import termios
        termios.tcsetattr(fd, termios.TCSANOW, saved)
    except Exception:
        pass


def open_console(spec, baud=115200):
    """spec: 'stdio' | 'pty' | 'none' | a device path.  Returns a stream or None."""
    if spec == "none":
        return None
    if spec == "stdio":
        return FdStream(0, 1, "stdio", raw=True)
    if spec == "pty":
        if MICROPYTHON:
            raise OSError("--console pty needs CPython; use stdio or a device")
        import os
        import tty
        master, slave = os.openpty()
        tty.setraw(slave)  # our line editor echoes; the line discipline must not
        return FdStream(master, master, os.ttyname(slave), keep=(slave,))
    return open_device(spec, baud)


def open_device(path, baud=115200):
    if MICROPYTHON:
        f = open(path, "r+b")
        s = FdStream(f.fileno(), f.fileno(), path, raw=True)
        s.device = True
        s.set_baud(baud)
        return s
    import os
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    s = FdStream(fd, fd, path, raw=True)
    s.device = True
    s.set_baud(baud)
    return s
