"""Reference SIP servers on 127.0.0.1 for bench/callserver.py and the
baresip trial: kamailio with bench/refs/kamailio.cfg (registrar + proxy with
digest) and the Sippy B2BUA (b2bua_simple, a B2BUA with a fixed next hop).

    with Kamailio(domain="branch.example.com") as k:   # k.port, k.shm_used()
    with Sippy(next_hop=("127.0.0.1", uas_port)) as b:  # b.port

Each picks a free UDP port, logs to a file in its own temporary directory
(tail() reads it), and is ready when it answers an OPTIONS (sip_ping, a
receive deadline; no sleeping).  close() ends only the process it started.
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.harness import stop_process  # noqa: E402
from tests.interop.sipprun import free_udp_port, sip_ping  # noqa: E402

KAMAILIO_CFG = os.path.join(HERE, "kamailio.cfg")


class _Server:
    def _start(self, args, start_timeout_s):
        self.log_path = os.path.join(self.dir, "server.log")
        self._log = open(self.log_path, "wb")
        self.args = args
        self.proc = subprocess.Popen(args, cwd=self.dir, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        try:
            sip_ping(self.port, start_timeout_s)
        except AssertionError as e:
            self.close()
            raise AssertionError("%s did not answer OPTIONS on 127.0.0.1:%d: %s\n%s" % (
                args[0], self.port, e, self.tail()))
        if self.proc.poll() is not None:
            raise AssertionError("%s exited %s\n%s" % (args[0], self.proc.returncode,
                                                         self.tail()))

    def tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def pid(self):
        return self.proc.pid

    def close(self):
        stop_process(self.proc, 15)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Kamailio(_Server):
    """kamailio -DD (no daemon; the main process stays our child and takes
    its workers down on SIGTERM), logging to stderr, in-memory usrloc."""

    def __init__(self, domain="branch.example.com", port=None, children=2, shm_mb=64,
                 pkg_mb=8, start_timeout_s=20, binary="kamailio"):
        path = shutil.which(binary) or (os.path.exists("/usr/sbin/kamailio") and
                                        "/usr/sbin/kamailio")
        assert path, "kamailio not found: install the Debian package kamailio"
        self.dir = tempfile.mkdtemp(prefix="kamailio-")
        self.port = port or free_udp_port()
        self.domain = domain
        self.ctl = "unix:%s/ctl" % self.dir
        args = [path, "-f", KAMAILIO_CFG, "-DD", "-E", "-n", str(children),
                "-m", str(shm_mb), "-M", str(pkg_mb), "-Y", self.dir,
                "-l", "udp:127.0.0.1:%d" % self.port,
                "-A", 'DOMAIN="%s"' % domain, "-A", 'CTL_SOCK="%s"' % self.ctl]
        self._start(args, start_timeout_s)

    def rpc(self, *cmd):
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        r = subprocess.run([kamcmd, "-s", self.ctl] + list(cmd), capture_output=True,
                           text=True, timeout=20)
        if r.returncode != 0:
            raise AssertionError("kamcmd %s: %s%s" % (" ".join(cmd), r.stdout, r.stderr))
        return r.stdout

    def shm_used(self):
        """Shared memory in use (bytes): where kamailio keeps usrloc and
        transactions (core.shmmem 'used')."""
        for line in self.rpc("core.shmmem").splitlines():
            parts = line.replace(":", " ").split()
            if parts and parts[0] == "used":
                return int(parts[1])
        raise AssertionError("no 'used' in core.shmmem")


def sippy_binary():
    for cand in (os.path.join(ROOT, ".venv", "bin", "b2bua_simple"),
                 shutil.which("b2bua_simple")):
        if cand and os.path.exists(cand):
            return cand
    raise AssertionError("b2bua_simple not found: pip install sippy (tools/requirements.txt)")


class Sippy(_Server):
    """Sippy B2BUA, `b2bua_simple -f -l 127.0.0.1 -p PORT -n HOST:PORT`: every
    INVITE becomes a new outgoing call to the fixed next hop (REGISTER is
    proxied there too; sippy has no registrar).  OPTIONS gets 501, which is
    enough to know it listens."""

    def __init__(self, next_hop, port=None, start_timeout_s=30):
        self.dir = tempfile.mkdtemp(prefix="sippy-")
        self.port = port or free_udp_port()
        args = [sippy_binary(), "-f", "-l", "127.0.0.1", "-p", str(self.port),
                "-n", "%s:%d" % next_hop, "-L", os.path.join(self.dir, "sippy.log")]
        self._start(args, start_timeout_s)
