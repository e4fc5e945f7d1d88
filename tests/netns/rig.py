"""The parts of the netns tier on a Topology (tests/netns/netns.py): a real
Kamailio at HQ (bench/refs/kamailio.cfg: registrar and proxy, digest on
REGISTER with the password rule Secret-<user>, calls only from registered
AORs), the appliance booted with tests/harness.py in the branch namespace
(`python -m firmware --board sim`, as ./flash.sh sim does, console on pipes),
and SIPp phones in any namespace.

    k = HqKamailio(net); k.kill(); k.start(); k.aors(); k.stat("rcv_requests_invite")
    app = boot_appliance(net, tmp, CONFIG_LINES)     # a tests.harness.Booted
    s = NsSipp(net, net.hq, HQ_WAN, scenario_path, target, cwd, inf=...); s.wait()
"""
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time

from tests.harness import Booted, PYTHON
from tests.interop.sipprun import Result, _read_stats, sipp_binary
from tests.netns.netns import APPLIANCE, HQ_WAN, kill_group, udp_bound, until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KAMAILIO_CFG = os.path.join(ROOT, "bench", "refs", "kamailio.cfg")
DOMAIN = "hq.example.com"
SIP_PORT = 5060


def password(ext):
    """The reference Kamailio's rule (bench/refs/kamailio.cfg)."""
    return "Secret-%s" % ext


class HqKamailio:
    """kamailio -DD in the HQ namespace on HQ_WAN:5060 (its own process
    group: kill() takes the main process and its workers down at once, as a
    crash would), with a ctl socket for kamcmd in its run directory."""

    def __init__(self, net, domain=DOMAIN):
        self.net = net
        self.domain = domain
        self.dir = tempfile.mkdtemp(prefix="netns-kamailio-")
        self.ctl = "unix:%s/ctl" % self.dir
        self.proc = None
        self.start()

    def start(self, timeout_s=20):
        path = shutil.which("kamailio") or "/usr/sbin/kamailio"
        assert os.path.exists(path), "kamailio not found: install the Debian package kamailio"
        argv = [path, "-f", KAMAILIO_CFG, "-DD", "-E", "-n", "2", "-m", "64", "-M", "8",
                "-Y", self.dir, "-l", "udp:%s:%d" % (HQ_WAN, SIP_PORT),
                "-A", 'DOMAIN="%s"' % self.domain, "-A", 'CTL_SOCK="%s"' % self.ctl]
        self.log_path = os.path.join(self.dir, "kamailio.log")
        self.proc = self.net.spawn(self.net.hq, argv, self.log_path, cwd=self.dir)
        until("kamailio bound %s:%d" % (HQ_WAN, SIP_PORT),
              lambda: self._check_alive() and udp_bound(self.proc.pid, HQ_WAN, SIP_PORT),
              timeout_s)

    def _check_alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("kamailio exited %s\n%s" % (self.proc.returncode, self.tail()))
        return True

    def kill(self):
        """SIGKILL to the whole group: no graceful shutdown, like a crash."""
        kill_group(self.proc, signal.SIGKILL)

    def tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def rpc(self, *cmd):
        kamcmd = shutil.which("kamcmd") or "/usr/sbin/kamcmd"
        r = subprocess.run([kamcmd, "-s", self.ctl] + list(cmd), capture_output=True,
                           text=True, timeout=20)
        if r.returncode != 0:
            raise AssertionError("kamcmd %s: %s%s" % (" ".join(cmd), r.stdout, r.stderr))
        return r.stdout

    def aors(self):
        """The registered AORs (user parts) with their contacts, from ul.dump."""
        out = {}
        aor = None
        for line in self.rpc("ul.dump").splitlines():
            w = line.strip()
            if w.startswith("AoR:"):
                aor = w.split(":", 1)[1].strip()
                out[aor] = []
            elif w.startswith("Address:") and aor is not None:
                out[aor].append(w.split(":", 1)[1].strip())
        return out

    def stat(self, name):
        """One core statistic (e.g. rcv_requests_invite, rcv_requests_register)."""
        out = self.rpc("stats.get_statistics", "all")
        for line in out.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "core:" + name:
                return int(value)
        raise AssertionError("no statistic %s in %r" % (name, out))

    def close(self):
        if self.proc is not None:
            kill_group(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def boot_appliance(net, tmp, config_lines, boot_timeout=60):
    """The appliance in the branch namespace on APPLIANCE:5060, console on
    pipes, configured from a --config file (as ./flash.sh sim --config)."""
    tmp = str(tmp)
    cfg = os.path.join(tmp, "branch.conf")
    with open(cfg, "w") as f:
        f.write("\n".join(config_lines) + "\n")
    # the interpreter Booted starts, run inside the namespace
    wrapper = os.path.join(tmp, "python-in-branch")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n" % (net.branch, PYTHON))
    os.chmod(wrapper, os.stat(wrapper).st_mode | stat.S_IEXEC)
    app = Booted(os.path.join(tmp, "state"), "pipes", ["--config", cfg], wrapper,
                 boot_timeout=boot_timeout, domain=DOMAIN, host=APPLIANCE, port=SIP_PORT)
    return app.start()


class NsSipp:
    """SIPp inside a namespace, bound to local_ip (tests/interop/sipprun.Sipp
    binds 127.0.0.1 in this namespace; same files and Result)."""

    def __init__(self, net, ns, local_ip, scenario_path, target, cwd, calls=1, inf=None,
                 domain=DOMAIN, timeout_s=60, local_port=None, extra=()):
        self.cwd = cwd
        self.local_port = local_port or 5070 + len(net.procs)
        tag = "%s-%d" % (os.path.basename(scenario_path).split(".")[0], self.local_port)
        self.name = tag
        self.stat_path = os.path.join(cwd, tag + ".stat.csv")
        self.err_path = os.path.join(cwd, tag + ".errors.log")
        self.out_path = os.path.join(cwd, tag + ".out")
        for p in (self.stat_path, self.err_path, self.out_path):
            if os.path.exists(p):
                os.unlink(p)
        argv = [sipp_binary(), "-sf", scenario_path, "-i", local_ip, "-p", str(self.local_port),
                "-m", str(calls), "-s", domain, "-auth_uri", domain, "-nostdin",
                "-timeout", "%ds" % timeout_s, "-timeout_error", "-trace_stat",
                "-stf", self.stat_path, "-fd", "3600", "-trace_err",
                "-error_file", self.err_path] + list(extra)
        if inf:
            argv += ["-inf", inf]
        argv.append(target)
        self.timeout_s = timeout_s
        self.t0 = time.monotonic()
        self.proc = net.spawn(ns, argv, self.out_path, cwd=cwd)
        until("sipp bound %s:%d" % (local_ip, self.local_port),
              lambda: self.proc.poll() is not None or
              udp_bound(self.proc.pid, local_ip, self.local_port), 10)

    def wait(self, timeout_s=None):
        limit = timeout_s if timeout_s is not None else self.timeout_s + 30
        try:
            rc = self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
            rc = "killed after %ss" % limit
        wall = time.monotonic() - self.t0
        with open(self.out_path, "rb") as f:
            output = f.read().decode("utf-8", "replace")
        errors = ""
        if os.path.exists(self.err_path):
            with open(self.err_path, "rb") as f:
                errors = f.read().decode("utf-8", "replace")
        return Result(self.name, rc, output, _read_stats(self.stat_path), errors, wall)
