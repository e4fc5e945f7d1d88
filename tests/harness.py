"""Boot the appliance as a subprocess for system tests, the way users do.

    with Booted(tmp_path, console="pty") as app:
        app.sip_port, app.console_path, app.boot_line
        port = app.serial()          # pyserial on the console pty
        app.command("show version")  # sends a line, returns the output before the next prompt

Waits are deadlines on output (select / pyserial timeouts), never sleeps.
"""
import os
import re
import select
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
if not os.path.exists(PYTHON):
    PYTHON = sys.executable
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
BOOT_RE = re.compile(r"booted on board (\S+): SIP port (\d+), console (\S+)")
PROMPT_RE = re.compile(rb"\S+@\S+[>#] $")


def have_ipv6():
    """Can this host bind the IPv6 loopback (tests that need it skip otherwise)?"""
    import socket
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def stop_process(proc, grace_s):
    """End a child: SIGTERM, up to grace_s seconds to exit, then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def read_line(stream, deadline):
    """Read one line from a pipe before the deadline (monotonic seconds)."""
    buf = b""
    fd = stream.fileno()
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete line before the deadline; got %r" % buf)
        r, _, _ = select.select([fd], [], [], left)
        if r:
            ch = os.read(fd, 1)
            if not ch:
                break
            buf += ch
    return buf.decode(errors="replace")


class Booted:
    def __init__(self, state_dir, console="pty", args=(), interpreter=None, boot_timeout=30):
        self.state_dir = str(state_dir)
        self.console = console
        self.args = list(args)
        self.interpreter = interpreter or PYTHON
        self.boot_timeout = boot_timeout
        self.proc = None
        self.port = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        cmd = [self.interpreter, "-m", "firmware", "--board", "sim", "--state", self.state_dir,
               "--console", self.console, "--sip-host", "127.0.0.1", "--sip-port", "0"] + self.args
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        deadline = self.started + self.boot_timeout
        lines = []
        while True:
            line = read_line(self.proc.stdout, deadline)
            if not line:
                raise AssertionError("appliance exited before booting:\n" + "".join(lines))
            lines.append(line)
            m = BOOT_RE.search(line)
            if m:
                break
        self.boot_seconds = time.monotonic() - self.started
        self.boot_line = line.strip()
        self.board, self.sip_port, self.console_path = m.group(1), int(m.group(2)), m.group(3)
        return self

    def serial(self, timeout=10):
        import serial
        if self.port is None:
            # pyserial flushes pending input on open, so the first prompt is gone:
            # press Enter, as one does on a serial console, and wait for a fresh one.
            self.port = serial.Serial(self.console_path, 115200, timeout=timeout)
            self.port.write(b"\r")
            self.read_until_prompt()
        return self.port

    def read_until_prompt(self, timeout=10):
        """Console output up to and including the next prompt (`user@host> ` or `#`)."""
        port = self.port or self.serial()
        deadline = time.monotonic() + timeout
        out = b""
        while not PROMPT_RE.search(out.rsplit(b"\n", 1)[-1]):
            if time.monotonic() > deadline:
                raise TimeoutError("no prompt within %ss; got %r" % (timeout, out))
            out += port.read(port.in_waiting or 1)
        return out.decode(errors="replace")

    def command(self, line, timeout=10):
        """Send a console line; return what it printed before the next prompt."""
        port = self.serial()
        port.write(line.encode() + b"\r")
        out = self.read_until_prompt(timeout)
        text = out.replace("\r\n", "\n")
        lines = text.split("\n")
        return "\n".join(lines[1:-1])  # drop the echoed command and the prompt

    def stop(self):
        if self.port is not None:
            self.port.close()
            self.port = None
        if self.proc is not None:
            stop_process(self.proc, 10)
        if self.proc is not None:
            self.proc.stdout.close()
            if self.proc.stdin:
                self.proc.stdin.close()
