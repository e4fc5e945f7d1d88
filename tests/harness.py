"""The one harness that boots the appliance as a subprocess, the way users
do, for system, interop and benchmark runs; and a small UDP SIP client.

    with Booted(tmp_path, console="pty") as app:     # console on a pty (pyserial)
        app.sip_port, app.console_path, app.boot_line
        port = app.serial()
        app.command("show version")  # a line; the output before the next prompt
    with Booted.pipes(domain="example.com") as app:  # console on stdin/stdout pipes
        app.port, app.command("show sip statistics"), app.alive(), app.out
    c = UdpClient(app.port); c.send(options(call_id, app.port, c.port, "b1"))
    c.responses(lambda d: call_id(d) == cid, deadline_s=2, final=True)

Waits are deadlines on output (select / pyserial / socket timeouts), never sleeps.
"""
import os
import re
import select
import socket
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
PIPE_PROMPT_RE = re.compile(rb"(?:^|\n)[\w.-]+@[\w.-]+[>#] ")


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
    def __init__(self, state_dir=None, console="pty", args=(), interpreter=None, boot_timeout=30,
                 domain=None, host="127.0.0.1", port=0):
        import tempfile
        self.tmp = None
        if state_dir is None:
            self.tmp = tempfile.mkdtemp(prefix="booted-")
            state_dir = os.path.join(self.tmp, "state")
        self.state_dir = str(state_dir)
        self.console = console          # "pty", "pipes" (stdio on pipes) or "none"
        self.args = list(args)
        self.interpreter = interpreter or PYTHON
        self.boot_timeout = boot_timeout
        self.domain = domain
        self.host = host
        self.sip_port_arg = port
        self.proc = None
        self.sip_port = None
        self.serial_port = None         # pyserial on the pty console
        self.out = b""                  # what the pipes console printed
        self._mark = 0                  # where the output of the last line sent starts

    @classmethod
    def pipes(cls, domain="example.com", state=None, extra=(), python=None, host="127.0.0.1",
              port=0):
        """Booted with its console on stdin/stdout pipes, at the first prompt."""
        return cls(state, "pipes", extra, python, domain=domain, host=host, port=port).start()

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        cmd = [self.interpreter, "-m", "firmware", "--board", "sim", "--state", self.state_dir,
               "--console", "stdio" if self.console == "pipes" else self.console,
               "--sip-port", str(self.sip_port_arg)]
        if self.host:
            cmd += ["--sip-host", self.host]
        if self.domain:
            cmd += ["--domain", self.domain]
        cmd += self.args
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        deadline = self.started + self.boot_timeout
        lines = []
        while True:
            try:
                line = read_line(self.proc.stdout, deadline)
            except TimeoutError:
                self.stop()
                raise AssertionError("appliance did not boot:\n" + "".join(lines))
            if not line:
                self.stop()
                raise AssertionError("appliance exited before booting:\n" + "".join(lines))
            lines.append(line)
            m = BOOT_RE.search(line)
            if m:
                break
        self.boot_seconds = time.monotonic() - self.started
        self.boot_line = line.strip()
        self.board, self.sip_port, self.console_path = m.group(1), int(m.group(2)), m.group(3)
        if self.console == "pipes":
            self.out = "".join(lines).encode()
            if self._read_pipe_until(PIPE_PROMPT_RE, self.boot_timeout, len(self.out)) is None:
                self.stop()
                raise AssertionError("no console prompt: %r" % self.out)
        return self

    # -- the pty console
    @property
    def port(self):
        """The SIP port the boot line named."""
        return self.sip_port

    def serial(self, timeout=10):
        import serial
        if self.serial_port is None:
            # pyserial flushes pending input on open, so the first prompt is gone:
            # press Enter, as one does on a serial console, and wait for a fresh one.
            self.serial_port = serial.Serial(self.console_path, 115200, timeout=timeout)
            self.serial_port.write(b"\r")
            self.read_until_prompt()
        return self.serial_port

    def read_until_prompt(self, timeout=10):
        """Console output up to and including the next prompt (`user@host> ` or `#`)."""
        port = self.serial_port or self.serial()
        deadline = time.monotonic() + timeout
        out = b""
        while not PROMPT_RE.search(out.rsplit(b"\n", 1)[-1]):
            if time.monotonic() > deadline:
                raise TimeoutError("no prompt within %ss; got %r" % (timeout, out))
            out += port.read(port.in_waiting or 1)
        return out.decode(errors="replace")

    # -- the pipes console
    def _read_pipe_until(self, pattern, timeout_s, start=0):
        """The match of pattern in what was printed from start on (the match's
        offsets count from start), or None at the deadline or end of output."""
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while True:
            m = pattern.search(self.out[start:])
            if m is not None:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return pattern.search(self.out[start:])
            self.out += chunk

    def send(self, line):
        """Send a console line without waiting for its output (see output())."""
        if self.console == "pipes":
            self._mark = len(self.out)
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        else:
            self.serial().write(line.encode() + b"\r")

    def output(self, timeout=10):
        """What the last line sent printed before the next prompt."""
        if self.console == "pipes":
            start = self._mark
            m = self._read_pipe_until(PIPE_PROMPT_RE, timeout, start)
            end = start + m.end() if m else len(self.out)
            self._mark = end
            text = self.out[start:start + m.start() if m else len(self.out)]
            return text.decode("utf-8", "replace")
        out = self.read_until_prompt(timeout)
        lines = out.replace("\r\n", "\n").split("\n")
        return "\n".join(lines[1:-1])  # drop the echoed command and the prompt

    def command(self, line, timeout=10):
        """Send a console line; return what it printed before the next prompt."""
        self.send(line)
        return self.output(timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.serial_port is not None:
            self.serial_port.close()
            self.serial_port = None
        if self.proc is not None:
            if self.console == "pipes" and self.proc.poll() is None:
                try:
                    self.proc.stdin.close()     # end of input: a clean shutdown
                    self.proc.wait(10)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            stop_process(self.proc, 10)
            self.proc.stdout.close()
            if self.proc.stdin and not self.proc.stdin.closed:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
        if self.tmp is not None:
            import shutil
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    close = stop


_CALLID_RE = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", re.I | re.M)
_STATUS_RE = re.compile(rb"^SIP/2\.0 (\d{3}) ")


def call_id(data):
    m = _CALLID_RE.search(data.split(b"\r\n\r\n", 1)[0])
    return m.group(1).decode("utf-8", "replace") if m else None


def status(data):
    m = _STATUS_RE.match(data)
    return int(m.group(1)) if m else None


class UdpClient:
    def __init__(self, port, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.dest = (host, port)
        self.port = self.sock.getsockname()[1]

    def send(self, data):
        self.sock.sendto(data, self.dest)

    def drain(self):
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(65536)
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)

    def responses(self, match, deadline_s, final=False):
        """Responses for which match(bytes) is true until a final one (when
        final) or the deadline; a receive deadline, not a sleep."""
        got = []
        deadline = time.monotonic() + deadline_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return got
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return got
            if not match(data):
                continue
            got.append(data)
            st = status(data)
            if not final or (st is not None and st >= 200):
                return got

    def close(self):
        self.sock.close()


def options(call_id_value, port, via_port, branch, max_forwards=70, host="127.0.0.1",
            domain="example.com"):
    h = "[%s]" % host if ":" in host else host
    return ("OPTIONS sip:%s SIP/2.0\r\n"
            "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s;rport\r\n"
            "Max-Forwards: %d\r\n"
            "From: <sip:probe@%s>;tag=p1\r\n"
            "To: <sip:%s>\r\n"
            "Call-ID: %s\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n" % (domain, h, via_port, branch, max_forwards,
                                            domain, domain, call_id_value)).encode()
