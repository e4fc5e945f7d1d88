"""Network namespaces for the interop tier: the branch appliance, HQ with a
real Kamailio, and the branch LAN with its phones, each in a namespace this
module creates (names unique per run, 10.x addresses that exist only inside
them), joined by veth pairs:

    lan ns  10.77.2.2 --veth-- 10.77.2.1  branch ns  10.77.1.1 --veth (WAN)-- 10.77.1.2  hq ns
                                  appliance 10.77.0.1/32 on lo

The appliance's SIP address sits on the branch's loopback so that a WAN
cut (the HQ end of the WAN veth set down, as a cable pulled at HQ) leaves the
LAN side untouched; both other namespaces route to it over their veth.

    with Topology() as net:
        net.run(net.hq, "ip", "addr")               # a command inside a namespace
        net.cut(); net.restore()                     # ip link set ... down / up
        net.loss(50); net.loss(0)                    # nft numgen random drop, both ways
        net.exec_args(net.branch, [...])             # argv that runs inside one

close() ends every namespace (and with them the veths); it runs even when
creation failed half-way, so nothing outlives a test.
"""
import os
import subprocess
import time

from tests.harness import stop_process

APPLIANCE = "10.77.0.1"
BRANCH_WAN, HQ_WAN = "10.77.1.1", "10.77.1.2"
BRANCH_LAN, PHONES = "10.77.2.1", "10.77.2.2"
NFT_TABLE = "bvwanloss"


def sh(args, timeout=20, check=True):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d: %s%s" % (" ".join(args), r.returncode,
                                                    r.stdout, r.stderr))
    return r.stdout


class Topology:
    def __init__(self):
        if os.geteuid() != 0:
            raise AssertionError("tests/netns creates network namespaces: run as root "
                                 "(tools/test-all does, as .ci/run)")
        self.tag = "bv" + os.urandom(3).hex()     # unique per run: parallel runs never meet
        self.branch, self.hq, self.lan = (self.tag + s for s in ("-br", "-hq", "-lan"))
        self.wan_branch, self.wan_hq = self.tag + "-wb", self.tag + "-wh"
        self.lan_branch, self.lan_phones = self.tag + "-lb", self.tag + "-lp"
        self.made = []
        self.procs = []
        self.wan_cut = False
        self.loss_percent = 0
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    def _create(self):
        for ns in (self.branch, self.hq, self.lan):
            sh(["ip", "netns", "add", ns])
            self.made.append(ns)
            self.ip(ns, "link", "set", "lo", "up")
        for a, b, na, nb in ((self.wan_branch, self.wan_hq, self.branch, self.hq),
                             (self.lan_branch, self.lan_phones, self.branch, self.lan)):
            self.ip(na, "link", "add", a, "type", "veth", "peer", "name", b, "netns", nb)
        self.ip(self.branch, "addr", "add", APPLIANCE + "/32", "dev", "lo")
        for ns, dev, addr in ((self.branch, self.wan_branch, BRANCH_WAN + "/30"),
                              (self.hq, self.wan_hq, HQ_WAN + "/30"),
                              (self.branch, self.lan_branch, BRANCH_LAN + "/24"),
                              (self.lan, self.lan_phones, PHONES + "/24")):
            self.ip(ns, "addr", "add", addr, "dev", dev)
            self.ip(ns, "link", "set", dev, "up")
        self.ip(self.hq, "route", "add", APPLIANCE + "/32", "via", BRANCH_WAN)
        self.ip(self.lan, "route", "add", APPLIANCE + "/32", "via", BRANCH_LAN)

    def ip(self, ns, *args):
        return sh(["ip", "-n", ns] + list(args))

    def exec_args(self, ns, argv):
        return ["ip", "netns", "exec", ns] + list(argv)

    def run(self, ns, *argv, **kw):
        return sh(self.exec_args(ns, argv), **kw)

    def cut(self):
        """The WAN cable pulled at HQ: the branch end stays up (no carrier),
        packets to HQ vanish without an ICMP error."""
        self.ip(self.hq, "link", "set", self.wan_hq, "down")
        self.wan_cut = True

    def restore(self):
        self.ip(self.hq, "link", "set", self.wan_hq, "up")
        # setting the link down removed HQ's route to the appliance with it
        self.ip(self.hq, "route", "replace", APPLIANCE + "/32", "via", BRANCH_WAN)
        self.wan_cut = False

    def loss(self, percent):
        """Drop `percent` % of the WAN's packets in each direction, at HQ's end.
        This kernel has no sch_netem (nor act_gact), so `tc netem loss` is not
        available: nftables' numgen random does the same per packet."""
        self.run(self.hq, "nft", "delete", "table", "inet", NFT_TABLE, check=False)
        self.loss_percent = percent
        if not percent:
            return
        rules = ("table inet %(t)s {\n"
                 " chain wan_in { type filter hook input priority 0; policy accept;\n"
                 "  iifname \"%(d)s\" numgen random mod 100 < %(p)d counter drop\n }\n"
                 " chain wan_out { type filter hook output priority 0; policy accept;\n"
                 "  oifname \"%(d)s\" numgen random mod 100 < %(p)d counter drop\n }\n"
                 "}\n" % {"t": NFT_TABLE, "d": self.wan_hq, "p": percent})
        r = subprocess.run(self.exec_args(self.hq, ["nft", "-f", "-"]), input=rules,
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, "nft: %s%s\n%s" % (r.stdout, r.stderr, rules)

    def dropped(self):
        """The loss table as nft lists it, with its rules' counters
        ("counter packets N bytes M")."""
        return self.run(self.hq, "nft", "list", "table", "inet", NFT_TABLE, check=False)

    def spawn(self, ns, argv, log_path, cwd=None):
        """A process inside `ns` in its own process group (so that it and
        its children can be ended together); closed by close()."""
        log = open(log_path, "ab")
        p = subprocess.Popen(self.exec_args(ns, argv), cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            kill_group(p)
        for ns in reversed(self.made):
            # deleting a namespace destroys its veth ends (and their peers)
            sh(["ip", "netns", "del", ns], check=False)
        self.made = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def kill_group(proc, sig=None):
    """End the process group this module started for proc (SIGTERM, then
    SIGKILL after a grace period; or `sig` at once)."""
    import signal
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig or signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        stop_process(proc, 5)


def udp_bound(pid, addr, port):
    """Is UDP addr:port bound in the network namespace of process pid?
    (/proc/PID/net/udp is that namespace's table.)"""
    want = "%s:%04X" % ("".join("%02X" % int(b) for b in reversed(addr.split("."))), port)
    try:
        with open("/proc/%d/net/udp" % pid) as f:
            next(f)
            return any(line.split()[1] == want for line in f)
    except OSError:
        return False


def until(what, check, timeout_s, poll_s=0.05):
    """Poll check() until it returns a true value, up to timeout_s; the
    waits between looks are bounded selects, and the deadline fails the test
    with the last value seen.  Returns (value, seconds waited)."""
    import select
    t0 = time.monotonic()
    last = None
    while True:
        last = check()
        if last:
            return last, time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError("%s: not within %.1f s; last %r" % (what, timeout_s, last))
        select.select([], [], [], poll_s)


class inside:
    """Run this thread inside namespace `ns` for the `with` block: sockets
    it creates and processes it starts (they inherit it) live there, and stay
    there after the block.  For helpers that bind 127.0.0.1 and talk to their
    child on it (tests/interop/baresip.py's ctrl_tcp): inside the namespace,
    that loopback is the namespace's.  setns(2) through ctypes: os.setns is
    Python 3.12+; CLONE_NEWNET moves only the calling thread."""
    CLONE_NEWNET = 0x40000000

    def __init__(self, ns):
        self.path = "/var/run/netns/" + ns

    def _setns(self, fd):
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, self.CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(%s): %s" % (self.path, os.strerror(e)))

    def __enter__(self):
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            self._setns(fd)
        except BaseException:
            os.close(self.home)
            raise
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc):
        try:
            self._setns(self.home)
        finally:
            os.close(self.home)
