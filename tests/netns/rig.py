"""The parts of the netns tier on a Topology (tests/netns/netns.py): a real
Kamailio at HQ (bench/refs/kamailio.cfg: registrar and proxy, digest on
REGISTER with the password rule Secret-<user>, calls only from registered
AORs, and with invite_auth a proxy digest challenge on every new INVITE), the appliance booted with tests/harness.py in the branch namespace
(`python -m firmware --board sim`, as ./flash.sh sim does, console on pipes),
and SIPp phones in any namespace; Rig puts them together for the tests.

    k = HqKamailio(net); k.kill(); k.start(); k.aors(); k.stat("core:rcv_requests_invite")
    app = boot_appliance(net, tmp, CONFIG_LINES)     # a tests.harness.Booted
    s = NsSipp(net, net.hq, HQ_WAN, scenario_path, target, cwd, inf=...); s.wait()
    rig = Rig(extra=LINES)          # Topology + HqKamailio + the appliance with CONFIG
    rig.control(); rig.row("fxs 1"); rig.call(1, "1002", 2); rig.break_out(3, "911", 1, "911")
    hq_phone(rig, "2001", "1001", hold_ms).wait()    # SIPp at HQ: register, call, hang up
"""
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time

from tests.harness import Booted, PYTHON
from tests.interop.sipprun import Result, _read_stats, credentials, sipp_binary
from tests.interop.tshark_check import SEVERITY_ERROR, Capture, count
from tests.netns.netns import APPLIANCE, HQ_WAN, Topology, inside, kill_group, udp_bound, until

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
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

    def __init__(self, net, domain=DOMAIN, invite_auth=True):
        self.net = net
        self.domain = domain
        self.invite_auth = invite_auth
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
        if self.invite_auth:      # new INVITEs challenged too (407)
            argv += ["-A", "INVITE_AUTH"]
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
        """One statistic, e.g. core:rcv_requests_invite, sl:407_replies."""
        out = self.rpc("stats.get_statistics", "all")
        for line in out.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == name:
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


B = "set services convergence-services "
STATIONS = (("alice", "1001", 1), ("bob", "1002", 2), ("carol", "1003", 3), ("dave", "1004", 4))
WINDOW_S, HOLD_DOWN_S, FAILURE_S = 16, 10, 3
CONFIG = [
    B + "sip domain " + DOMAIN,           # Kamailio's realm: the station passwords answer it
    B + "peer-call-server hq address " + HQ_WAN,
    B + "peer-call-server hq port %d" % SIP_PORT,
    B + "survivability probe-interval 1",
    B + "survivability failure-timeout %d" % FAILURE_S,
    B + "survivability failback-window %d" % WINDOW_S,
    B + "survivability failback-threshold 80",
    B + "survivability hold-down %d" % HOLD_DOWN_S,
    B + "trunk pstn1 fxo-port 1",
    B + "trunk pstn1 prefix 9",
    B + "trunk pstn1 did-target 1001",
    B + "trunk pstn1 priority 10",
    B + "trunk pstn2 fxo-port 2",
    B + "trunk pstn2 prefix 9",
    B + "trunk pstn2 priority 20",
] + [B + "station %s %s" % (name, kv) for name, ext, port in STATIONS
     for kv in ("extension " + ext, "fxs-port %d" % port, "password " + password(ext))]


class Rig:
    """The story's rig: namespaces, Kamailio, the appliance configured with
    CONFIG (+ extra lines) and helpers on its console."""

    def __init__(self, extra=(), invite_auth=True):
        self.tmp = tempfile.mkdtemp(prefix="netns-rig-")
        self.net = Topology()
        self.kamailio = self.app = self.capture = None
        try:
            # every SIP packet on the WAN, at the branch's end (it stays up at a cut)
            self.pcap = os.path.join(self.tmp, "wan.pcap")
            with inside(self.net.branch):
                self.capture = Capture(SIP_PORT, self.pcap, iface=self.net.wan_branch)
            self.kamailio = HqKamailio(self.net, invite_auth=invite_auth)
            self.app = boot_appliance(self.net, self.tmp, CONFIG + list(extra))
        except BaseException:
            self.close()
            raise

    # -- the appliance's console
    def cmd(self, line):
        return self.app.command(line)

    def control(self):
        """The first line of show survivability: who is in control."""
        return self.cmd("show survivability").split("\n", 1)[0]

    def changes(self):
        m = re.search(r"Changes of control by the monitor: (\d+)", self.cmd("show survivability"))
        assert m, self.cmd("show survivability")
        return int(m.group(1))

    def row(self, port):
        """A `show ports` row as a dict of its columns."""
        text = self.cmd("show ports")
        for line in text.split("\n"):
            if line.startswith(port + " "):
                w = line.split()
                return {"state": w[4], "hook": w[5], "line": w[6], "call": w[7],
                        "text": line}
        raise AssertionError("no row %s in\n%s" % (port, text))

    def wait_row(self, port, timeout_s=10, **want):
        return until("%s %r" % (port, want),
                     lambda: (lambda r: all(r[k] == v for k, v in want.items()) and r)(
                         self.row(port)), timeout_s)[0]

    def gw_counter(self, name):
        m = re.search(r"^  %s\s+(\d+)$" % name, self.cmd("show gateway"), re.M)
        assert m, self.cmd("show gateway")
        return int(m.group(1))

    def mark_calls(self):
        """Counters that show a call between two stations went through
        Kamailio: the INVITE it received, the one the gateway got back."""
        return (self.kamailio.stat("core:rcv_requests_invite"), self.gw_counter("invites in"),
                self.kamailio.stat("sl:407_replies"))

    def assert_through_kamailio(self, mark):
        """...and the caller answered Kamailio's 407 when it challenges INVITEs."""
        now = self.mark_calls()
        assert now[0] >= mark[0] + 1 and now[1] >= mark[1] + 1, \
            "not through Kamailio: INVITEs at Kamailio, into the gateway %r -> %r" % (mark, now)
        if self.kamailio.invite_auth:
            assert now[2] >= mark[2] + 1, "Kamailio did not challenge the INVITE: %r" % (now,)

    def log_since(self, mark):
        """show log lines after `mark` (log_mark(): the last line then, unique
        by its uptime stamp); all of them once the bounded log (200 entries)
        has dropped it."""
        lines = self.cmd("show log").split("\n")
        if mark in lines:
            return lines[len(lines) - lines[::-1].index(mark):]
        return lines

    def log_mark(self):
        return self.cmd("show log").rstrip("\n").split("\n")[-1]

    def start_with_peer(self):
        """A test's starting point: the phones on-hook, the WAN whole, Kamailio
        running, and in control (after the monitor's window if it was not)."""
        self.hang_up_all()
        if self.net.wan_cut:
            self.net.restore()
        if self.net.loss_percent:
            self.net.loss(0)
        if self.kamailio.proc.poll() is not None:
            self.kamailio.start()
        self.wait_peer(WINDOW_S + HOLD_DOWN_S + 10)

    def wait_peer(self, timeout_s):
        return until("Kamailio in control", lambda: self.control().startswith(
            "Control: peer call server hq"), timeout_s)[1]

    def wait_local(self, timeout_s):
        return until("local call server in control", lambda: self.control().startswith(
            "Control: the local call server"), timeout_s)[1]

    def registered(self):
        """Kamailio's bindings of the branch stations (AOR -> contacts)."""
        return {a: c for a, c in self.kamailio.aors().items() if a.startswith("100")}

    # -- the simulated board's hands
    def phone(self, n, action):
        out = self.cmd("request sim phone %d %s" % (n, action))
        assert out.startswith("phone %d: " % n), out
        return out

    def hang_up_all(self):
        for _, _, port in STATIONS:
            if self.row("fxs %d" % port)["hook"] == "off-hook":
                self.phone(port, "on-hook")
        for _, _, port in STATIONS:
            self.wait_row("fxs %d" % port, call="idle")
        for port in (1, 2):
            self.wait_row("fxo %d" % port, hook="idle")

    def call(self, caller, number, callee_port):
        """Off-hook, dial, the callee rings, answers: both ports in talk."""
        self.phone(caller, "off-hook")
        self.wait_row("fxs %d" % caller, line="forward-active")
        self.phone(caller, "dial " + number)
        t0 = time.monotonic()
        self.wait_row("fxs %d" % callee_port, line="ringing")
        ring_s = time.monotonic() - t0
        self.phone(callee_port, "off-hook")
        self.wait_row("fxs %d" % caller, call="talk")
        self.wait_row("fxs %d" % callee_port, call="talk")
        return ring_s

    def break_out(self, port, digits, line_no, dialled):
        """A call out of an FXO line: it is seized and the gateway logs the
        digits it dials (exactly `dialled`)."""
        mark = self.log_mark()
        self.phone(port, "off-hook")
        self.wait_row("fxs %d" % port, line="forward-active")
        self.phone(port, "dial " + digits)
        self.wait_dialled(mark, line_no, dialled)

    def wait_dialled(self, mark, line_no, dialled):
        """FXO line line_no seized, and the gateway logged (after log mark)
        that it dials exactly `dialled` on it."""
        self.wait_row("fxo %d" % line_no, hook="seized")
        until("fxo %d dials %s" % (line_no, dialled),
              lambda: any("fxo %d: outbound call to %s" % (line_no, dialled) in ln
                          for ln in self.log_since(mark)), 5)

    def diagnostics(self):
        out = []
        if self.app is not None and self.app.alive():
            for c in ("show survivability", "show gateway", "show ports", "show log"):
                out.append("--- %s\n%s" % (c, self.cmd(c)))
        if self.kamailio is not None:
            out.append("--- kamailio log\n" + self.kamailio.tail())
        return "\n".join(out)

    def wan_problems(self):
        """What is wrong with the SIP the appliance sent over the WAN so far
        (tshark: not SIP, malformed, expert errors); [] when all is well."""
        self.capture.stop()
        mine = "ip.src == %s && udp.srcport == %d" % (APPLIANCE, SIP_PORT)
        out = []
        n = count(self.pcap, "%s && (_ws.malformed || _ws.expert.severity >= %s)" % (
            mine, SEVERITY_ERROR))
        if n:
            out.append("%d malformed or with expert errors" % n)
        n = count(self.pcap, "%s && !sip" % mine)
        if n:
            out.append("%d not decoded as SIP" % n)
        if not count(self.pcap, "%s && sip" % mine):
            out.append("no SIP from the appliance was captured")
        return out

    def close(self):
        import shutil
        try:
            if self.capture is not None:
                self.capture.stop()
            if self.app is not None:
                self.app.stop()
            if self.kamailio is not None:
                self.kamailio.close()
        finally:
            self.net.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


def hq_phone(rig, user, callee, hold_ms):
    inf = os.path.join(rig.tmp, "hq-%s.csv" % user)
    with open(inf, "w") as f:
        f.write("SEQUENTIAL\n%s;%s;%s\n" % (user, credentials(user, password(user)), callee))
    return NsSipp(rig.net, rig.net.hq, HQ_WAN, os.path.join(HERE, "scenarios", "hq_phone_call.xml"),
                  "%s:%d" % (HQ_WAN, SIP_PORT), rig.tmp, inf=inf, timeout_s=30,
                  extra=("-d", str(hold_ms)))
