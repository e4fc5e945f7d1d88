"""Running SIPp (Debian `sip-tester`) from tests and benchmarks: injection
files, start/wait with deadlines, the final statistics and the error log.

    users_csv(path, ["1000", "1001"])                  # reg_digest / reg_station
    calls_csv(path, callers, uac_callees, uas_callees)  # uac_call (USER order)
    r = run("reg_digest", "127.0.0.1:5060", inf=path, calls=100, rate=50,
            domain="branch.example.com", cwd=tmp)
    r.rc, r.successful, r.failed, r.elapsed_s, r.errors, r.output
    uas = start("uas_call", target, local_port=p, calls=200, ...)   # Sipp
    uas.wait(timeout_s) -> Result

Every run gets -trace_stat (final counters), -trace_err (unexpected
messages), -nostdin, -timeout with -timeout_error (a SIPp that hangs fails),
and binds 127.0.0.1.  wait_udp_bound() and sip_ping() wait for a server's
socket with a deadline, without sleeping on the wall clock.
"""
import os
import shutil
import socket
import subprocess
import time

from tests.harness import stop_process

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, "scenarios")


def sipp_binary():
    path = shutil.which("sipp")
    assert path, "sipp not found: install the Debian package sip-tester"
    return path


# SIPp's exit status when a socket it binds is in use (EXIT_BIND_ERROR, -2)
BIND_ERROR = 254


def free_udp_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def credentials(user, password):
    """The injected [authentication] keyword: SIPp 3.6 does not expand
    [fieldN] inside [authentication ...], so the whole keyword is a field."""
    return "[authentication username=%s password=%s]" % (user, password)


def password_for(ext):
    return "Secret-%s" % ext


def users_csv(path, extensions, password=password_for):
    """SEQUENTIAL: user-id;password;extension;credentials (user-id = extension)."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for ext in extensions:
            pw = password(ext)
            f.write("%s;%s;%s;%s\n" % (ext, pw, ext, credentials(ext, pw)))
    return path


def calls_csv(path, callers, uac_hangs, uas_hangs):
    """USER: caller;callee when the caller hangs up;callee when the called
    side hangs up -- one line per SIPp user (-users len(callers))."""
    assert len(callers) == len(uac_hangs) == len(uas_hangs)
    with open(path, "w") as f:
        f.write("USER\n")
        for row in zip(callers, uac_hangs, uas_hangs):
            f.write("%s;%s;%s\n" % row)
    return path


class Result:
    def __init__(self, name, rc, output, stats, errors, wall_s):
        self.name = name
        self.rc = rc
        self.output = output
        self.stats = stats
        self.errors = errors
        self.wall_s = wall_s

    def _int(self, key):
        try:
            return int(float(self.stats.get(key, "")))
        except ValueError:
            return None

    @property
    def successful(self):
        return self._int("SuccessfulCall(C)")

    @property
    def failed(self):
        return self._int("FailedCall(C)")

    @property
    def created(self):
        return self._int("TotalCallCreated")

    @property
    def elapsed_s(self):
        """From SIPp's StartTime to its last statistics dump (its exit)."""
        try:
            start = float(self.stats["StartTime"].split("\t")[-1])
            now = float(self.stats["CurrentTime"].split("\t")[-1])
            return now - start
        except (KeyError, ValueError, IndexError):
            return self.wall_s

    def describe(self):
        return "sipp %s: exit %s, %s successful, %s failed, %.2f s\n--- errors ---\n%s\n" \
               "--- output ---\n%s" % (self.name, self.rc, self.successful, self.failed,
                                       self.elapsed_s or 0.0, self.errors[-4000:],
                                       self.output[-3000:])


def _read_stats(path):
    try:
        with open(path) as f:
            lines = [ln.rstrip("\n") for ln in f if ln.strip()]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    head = lines[0].split(";")
    last = lines[-1].split(";")
    return dict(zip(head, last))


class Sipp:
    def __init__(self, scenario, target, cwd, local_port=None, calls=1, rate=None,
                 users=None, inf=None, domain="branch.example.com", duration_ms=None,
                 timeout_s=60, media_port=None, auth_uri=True, extra=(), scenario_path=None):
        self.name = scenario
        self.cwd = cwd
        self.local_port = local_port or free_udp_port()
        tag = "%s-%d" % (scenario, self.local_port)
        self.stat_path = os.path.join(cwd, tag + ".stat.csv")
        self.err_path = os.path.join(cwd, tag + ".errors.log")
        self.out_path = os.path.join(cwd, tag + ".out")
        for p in (self.stat_path, self.err_path):
            if os.path.exists(p):
                os.unlink(p)
        path = scenario_path or os.path.join(SCENARIOS, scenario + ".xml")
        args = [sipp_binary(), "-sf", path, "-i", "127.0.0.1", "-p", str(self.local_port),
                "-m", str(calls), "-s", domain, "-nostdin",
                "-timeout", "%ds" % timeout_s, "-timeout_error",
                "-trace_stat", "-stf", self.stat_path, "-fd", "3600",
                "-trace_err", "-error_file", self.err_path]
        if auth_uri:   # digest uri = the Request-URI (sip:DOMAIN), not ip:port
            args += ["-auth_uri", domain]
        if inf:
            args += ["-inf", inf]
        if users:
            args += ["-users", str(users)]
        elif rate:
            args += ["-r", str(rate)]
        if duration_ms is not None:
            args += ["-d", str(duration_ms)]
        if media_port:
            args += ["-mp", str(media_port)]
        args += list(extra)
        args.append(target)
        self.args = args
        self.timeout_s = timeout_s
        self._out = open(self.out_path, "wb")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=self._out, stderr=subprocess.STDOUT)

    def wait(self, timeout_s=None):
        """Wait for SIPp to exit (it ends after -m calls or at -timeout);
        kill it past timeout_s (default: its -timeout plus 30 s)."""
        limit = timeout_s if timeout_s is not None else self.timeout_s + 30
        try:
            rc = self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            rc = "killed after %ss" % limit
        wall = time.monotonic() - self.t0
        self._out.close()
        with open(self.out_path, "rb") as f:
            output = f.read().decode("utf-8", "replace")
        errors = ""
        if os.path.exists(self.err_path):
            with open(self.err_path, "rb") as f:
                errors = f.read().decode("utf-8", "replace")
        return Result(self.name, rc, output, _read_stats(self.stat_path), errors, wall)

    def stop(self):
        stop_process(self.proc, 10)
        if not self._out.closed:
            self._out.close()


def start(scenario, target, cwd, **kw):
    s = Sipp(scenario, target, cwd, **kw)
    if s.local_port:
        wait_udp_bound(s.local_port, 10, s.proc)
    return s


def run(scenario, target, cwd, **kw):
    return Sipp(scenario, target, cwd, **kw).wait()


def _bound_ports():
    ports = set()
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    local = line.split()[1]
                    ports.add(int(local.rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def wait_udp_bound(port, deadline_s, proc=None):
    """Wait until some socket on this host is bound to UDP `port` (a server
    is listening); waits on `proc` (if given) between looks, so a process
    that exits fails at once.  Raises after the deadline."""
    deadline = time.monotonic() + deadline_s
    while port not in _bound_ports():
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("nothing bound UDP port %d within %ss" % (port, deadline_s))
        if proc is not None:
            try:
                proc.wait(min(0.02, left))
                raise AssertionError("process exited %s before binding UDP port %d" % (
                    proc.returncode, port))
            except subprocess.TimeoutExpired:
                pass
        else:
            select_wait(min(0.02, left))


def select_wait(seconds):
    import select
    select.select([], [], [], seconds)


def sip_ping(port, deadline_s, host="127.0.0.1", domain="branch.example.com"):
    """Send OPTIONS every 200 ms until any SIP response comes (a receive
    deadline per try); returns the status line; raises after deadline_s."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    lport = s.getsockname()[1]
    deadline = time.monotonic() + deadline_s
    n = 0
    try:
        while True:
            n += 1
            msg = ("OPTIONS sip:%s:%d SIP/2.0\r\n"
                   "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK-ping-%d;rport\r\n"
                   "Max-Forwards: 70\r\nFrom: <sip:ping@%s>;tag=ping%d\r\n"
                   "To: <sip:%s:%d>\r\nCall-ID: ping-%d-%d@%s\r\nCSeq: %d OPTIONS\r\n"
                   "Content-Length: 0\r\n\r\n" % (host, port, host, lport, n, domain, n,
                                                  host, port, lport, n, host, n))
            s.sendto(msg.encode(), (host, port))
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no SIP answer from %s:%d within %ss" % (
                    host, port, deadline_s))
            s.settimeout(min(0.2, left))
            try:
                data = s.recv(65536)
                if data.startswith(b"SIP/2.0 "):
                    return data.split(b"\r\n", 1)[0].decode()
            except socket.timeout:
                pass
            except ConnectionRefusedError:   # ICMP port unreachable: not bound yet
                select_wait(min(0.02, max(0, deadline - time.monotonic())))
    finally:
        s.close()
