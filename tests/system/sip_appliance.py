"""Test helper: the appliance as a subprocess with its console on pipes, and a
small UDP SIP client on 127.0.0.1.

    with Appliance(domain="example.com") as app:   # python -m firmware ...
        app.port                                    # from the boot line
        c = UdpClient(app.port)
        c.send(data); c.wait_for(call_id, final=True, deadline_s=2)
        app.command("show sip statistics")          # console output
        app.alive()

All waits are receive deadlines (select / socket timeouts), never sleeps.
"""
import os
import re
import select
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOOT_RE = re.compile(rb"SIP port (\d+)")
PROMPT_RE = re.compile(rb"(?:^|\n)[\w.-]+@[\w.-]+> ")


class Appliance:
    def __init__(self, domain="example.com", state=None, extra=(), python=None,
                 host=None, port=0):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="sipapp-")
        self.state = state or os.path.join(self.tmp, "state")
        args = [python or sys.executable, "-m", "firmware", "--board", "sim",
                "--state", self.state, "--console", "stdio", "--sip-port", str(port),
                "--domain", domain, "--seed", "4475"]
        if host:
            args += ["--sip-host", host]
        args += list(extra)
        self.proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.out = b""
        self.port = None
        m = self._read_until(BOOT_RE, 20)
        if m is None:
            self.close()
            raise AssertionError("appliance did not boot: %r" % self.out)
        self.port = int(m.group(1))
        self.boot_line = self.out
        if self._read_until(PROMPT_RE, 20, m.end()) is None:
            self.close()
            raise AssertionError("no console prompt: %r" % self.out)

    def _read_until(self, pattern, timeout_s, start=0):
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while True:
            m = pattern.search(self.out, start)
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
                return pattern.search(self.out, start)
            self.out += chunk

    def command(self, line, timeout_s=10):
        """Send a console command; return its output (up to the next prompt)."""
        start = len(self.out)
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        m = self._read_until(PROMPT_RE, timeout_s, start)
        text = self.out[start:m.start() if m else len(self.out)]
        return text.decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
