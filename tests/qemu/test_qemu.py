"""The QEMU tier: the firmware image on arm64 (Debian's kernel, busybox and
CPython 3.11 under qemu-system-aarch64 -M virt), as a technician meets it.

One appliance VM (module fixture) with an ext4 flash disk:
  1. boots from the factory image into slot a; the time to "SIP ready" (the
     boot line, then a SIP OPTIONS answered through the forwarded port) is
     reported in bench/results/qemu.txt;
  2. over the emulated serial port (pyserial on QEMU's pty): a root password
     and two stations are configured and committed;
  3. two SIPp phones (Debian sip-tester) register through the forwarded UDP
     port and one calls the other; `show calls` on the console lists the
     call while it is up and none after;
  4. the power is cut (QEMU killed) right after a commit completes, and
     again in the middle of a commit (as soon as the guest's first write of
     it reaches the disk image): each next boot asks for the login and
     has the committed configuration (the cut-short commit either whole or
     not at all), and `show system software` shows slot a;
  5. A/B: a new image from the host (9p share, /mnt/host) goes into slot b
     with `request system software add`; after `request system reboot` the
     boot loader runs slot b, which reaches running and becomes active, with
     the configuration kept.
SIPp's Contact names 10.0.2.2, the host as the guest sees it (QEMU's user
network maps it to the host's 127.0.0.1); all traffic stays on loopback.
"""
import os
import re
import select
import socket
import time

import pytest

from tests.interop import sipprun
from tests.qemu.vm import Vm
from tools import mkimage, qemu_image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build", "qemu-test")
RESULTS = os.path.join(ROOT, "bench", "results", "qemu.txt")
DOMAIN = "branch.example.com"
P = "set services convergence-services "
ROOT_PW = "Branch-Root-1"


def _scenarios(tmp):
    """The interop scenarios with the guest-visible host address in Contact."""
    out = {}
    for name in ("reg_station", "uac_call", "uas_call"):
        with open(os.path.join(sipprun.SCENARIOS, name + ".xml")) as f:
            text = f.read()
        text = re.sub(r"(Contact: <sip:[^@]+@)\[local_ip\]", r"\g<1>10.0.2.2", text)
        path = os.path.join(tmp, name + ".xml")
        with open(path, "w") as f:
            f.write(text)
        out[name] = path
    return out


def sip_options(port, timeout):
    """Seconds until an OPTIONS to 127.0.0.1:port gets a SIP response (retransmitted
    every 500 ms, as a UDP client does); AssertionError at the deadline."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    me = s.getsockname()[1]
    t0 = time.monotonic()
    try:
        n = 0
        while time.monotonic() - t0 < timeout:
            n += 1
            msg = ("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKqemu%d;rport\r\n"
                   "Max-Forwards: 70\r\nFrom: <sip:probe@%s>;tag=q%d\r\nTo: <sip:%s>\r\n"
                   "Call-ID: qemu-probe-%d\r\nCSeq: %d OPTIONS\r\nContent-Length: 0\r\n\r\n"
                   % (DOMAIN, me, n, DOMAIN, n, DOMAIN, n, n)).encode()
            s.sendto(msg, ("127.0.0.1", port))
            s.settimeout(0.5)
            try:
                data, _ = s.recvfrom(4096)
            except socket.timeout:
                continue
            if data.startswith(b"SIP/2.0 ") and b"qemu-probe-" in data:
                return time.monotonic() - t0
        raise AssertionError("no answer to OPTIONS on 127.0.0.1:%d within %ss" % (port, timeout))
    finally:
        s.close()


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("qemu"))
    os.chmod(tmp, 0o777)
    report = {}
    t = time.monotonic()
    img = os.path.join(BUILD, "firmware-cpython.img")
    mkimage.build(img, "cpython", ["sim"], quiet=True)
    qemu_image.build(BUILD, img)
    report["build_s"] = time.monotonic() - t
    report["image_bytes"] = os.path.getsize(img)
    report["initramfs_bytes"] = os.path.getsize(os.path.join(BUILD, "initramfs.gz"))
    disk = os.path.join(tmp, "flash.img")
    qemu_image.make_state_disk(disk)
    state = {"tmp": tmp, "disk": disk, "report": report, "port": sipprun.free_udp_port(),
             "scenarios": _scenarios(tmp), "vm": None}
    yield state
    if state["vm"] is not None:
        state["vm"].close()
    lines = ["benchmark: the appliance on arm64 under qemu-system-aarch64 -M virt (TCG)"]
    for k in sorted(report):
        v = report[k]
        lines.append("%s: %s" % (k, ("%.1f" % v) if isinstance(v, float) else v))
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))


def _boot(rig, what, share=None):
    vm = Vm(BUILD, rig["disk"], rig["port"], share=share)
    rig["vm"] = vm
    boot_line_s = vm.start()
    ready = boot_line_s + sip_options(rig["port"], 60)
    rig["report"]["%s_boot_line_s" % what] = boot_line_s
    rig["report"]["%s_sip_ready_s" % what] = ready
    return vm


def test_boot_configure_and_commit_over_the_serial_port(rig):
    vm = _boot(rig, "first")
    assert b"boot: factory image 0.1.0 installed in slot a" in vm.log, vm.log[-2000:]
    vm.prompt()
    assert "Firmware: branch-voice" in vm.command("show version")
    assert "Runtime: cpython 3.11" in vm.command("show version")
    vm.command("configure")
    for line in ("set system root-authentication plain-text-password " + ROOT_PW,
                 P + "sip domain " + DOMAIN,
                 P + "station s1001 extension 1001", P + "station s1001 password Secret-1001",
                 # SIPp's uac_call.xml answers no digest challenge: the caller is
                 # trusted by its registered source (docs/security.md)
                 P + "station s1001 caller-authentication registered-source",
                 P + "station s1002 extension 1002", P + "station s1002 password Secret-1002",
                 P + "station s2102 extension 2102", P + "station s2102 password Secret-2102"):
        out = vm.command(line)
        assert "error" not in out.lower(), (line, out)
    out = vm.command("commit", timeout=120)
    assert "commit complete" in out, out
    vm.command("exit")
    sw = vm.command("show system software")
    assert re.search(r"a\s+active,booted\s+0\.1\.0\s+cpython", sw), sw


def test_two_sipp_phones_register_and_call_through_the_forwarded_port(rig):
    vm, tmp, sc = rig["vm"], rig["tmp"], rig["scenarios"]
    target = "127.0.0.1:%d" % rig["port"]
    uac_port, uas_port = sipprun.free_udp_port(), sipprun.free_udp_port()
    # phone 1 is station 1001; phone 2 answers for 1002 (the caller hangs up)
    # and 2102 (uas_call.xml hangs up on 21xx): uac_call.xml picks one at random
    for exts, port in ((["1001"], uac_port), (["1002", "2102"], uas_port)):
        csv = sipprun.users_csv(os.path.join(tmp, "u%d.csv" % port), exts)
        r = sipprun.run("reg_station", target, tmp, local_port=port, inf=csv, calls=len(exts),
                        users=1, domain=DOMAIN, timeout_s=60, scenario_path=sc["reg_station"])
        assert r.rc == 0 and r.successful == len(exts), r.describe()
    regs = vm.command("show sip registrations")
    for st in ("s1001", "s1002", "s2102"):
        assert st in regs, regs
    assert "10.0.2.2:%d" % uac_port in regs, regs
    calls = sipprun.calls_csv(os.path.join(tmp, "calls.csv"), ["1001"], ["1002"], ["2102"])
    uas = sipprun.start("uas_call", target, tmp, local_port=uas_port, calls=1, duration_ms=15000,
                        domain=DOMAIN, timeout_s=120, scenario_path=sc["uas_call"])
    try:
        uac = sipprun.Sipp("uac_call", target, tmp, local_port=uac_port, calls=1, users=1, inf=calls,
                           duration_ms=15000, domain=DOMAIN, timeout_s=120, scenario_path=sc["uac_call"])
        # while the call is up (15 s of talk), the console lists it
        deadline = time.monotonic() + 60
        while True:
            out = vm.command("show calls")
            if out.strip().startswith("Calls: 1 "):
                break
            assert time.monotonic() < deadline, "the call never showed up:\n" + out
            assert uac.proc.poll() is None, "SIPp UAC ended before the call was up:\n" + out
        assert "1001" in out and ("1002" in out or "2102" in out), out
        ru = uac.wait()
        rs = uas.wait(60)
    finally:
        uas.stop()
    assert ru.rc == 0 and ru.successful == 1, ru.describe()
    assert rs.rc == 0 and rs.successful == 1, rs.describe()
    out = vm.command("show calls")
    assert out.strip().splitlines()[0].startswith("Calls: 0 "), out


def _config(vm):
    return vm.command("show configuration | display set | no-more")


def test_power_cut_after_and_during_a_commit_keeps_the_configuration(rig):
    vm = rig["vm"]
    vm.command("configure")
    vm.command(P + "station s1003 extension 1003")
    vm.command(P + "station s1003 password Secret-1003")
    assert "commit complete" in vm.command("commit", timeout=120)
    vm.power_cut()                      # right after the commit answered
    vm = _boot(rig, "second")
    vm.login("root", ROOT_PW)
    cfg = _config(vm)
    for ext in ("1001", "1002", "2102", "1003"):
        assert P + "station s%s extension %s" % (ext, ext) in cfg, cfg
    # now cut in the middle of a commit: "commit" is typed, and the power
    # goes as soon as the guest's first write reaches the flash disk (its
    # file changes), before the commit can answer
    vm.command("configure")
    vm.command(P + "station s1004 extension 1004")
    vm.command(P + "station s1004 password Secret-1004")
    mark = len(vm.log)
    before = os.stat(rig["disk"]).st_mtime_ns
    vm.port.write(b"commit\r")
    deadline = time.monotonic() + 30
    wrote = False
    while time.monotonic() < deadline and b"commit complete" not in vm.log[mark:]:
        if os.stat(rig["disk"]).st_mtime_ns != before:
            wrote = True
            break
        if vm.port.in_waiting:
            vm.log += vm.port.read(vm.port.in_waiting)
        select.select([vm.port.fileno()], [], [], 0.002)   # serial output or 2 ms
    vm.power_cut()
    rig["report"]["cut_mid_commit_during_disk_write"] = wrote
    answered = b"commit complete" in vm.log[mark:]
    vm = _boot(rig, "third")
    vm.login("root", ROOT_PW)
    cfg = _config(vm)
    for ext in ("1001", "1002", "1003"):
        assert P + "station s%s extension %s" % (ext, ext) in cfg, cfg
    has_new = (P + "station s1004 extension 1004") in cfg
    assert has_new or not answered, "a commit that answered 'commit complete' was lost:\n" + cfg
    rig["report"]["cut_mid_commit_kept_new"] = has_new
    sw = vm.command("show system software")
    assert re.search(r"a\s+active,booted\s+0\.1\.0", sw), sw
    vm.close()
    rig["vm"] = None


def test_software_add_and_reboot_runs_the_new_slot(rig):
    share = os.path.join(rig["tmp"], "share")
    os.makedirs(share, exist_ok=True)
    mkimage.build(os.path.join(share, "fw-next.img"), "cpython", ["sim"], "0.1.1-qemu", quiet=True)
    vm = _boot(rig, "fourth", share=share)
    vm.login("root", ROOT_PW)
    out = vm.command("request system software add /mnt/host/fw-next.img", timeout=120)
    assert "Installed 0.1.1-qemu (cpython" in out and "in slot b." in out, out
    sw = vm.command("show system software")
    assert re.search(r"b\s+trial\s+0\.1\.1-qemu", sw), sw
    t0 = time.monotonic()
    vm.port.write(b"request system reboot\r")
    vm.read_until(re.compile(rb"Reboot the system \? \[yes,no\] \(no\) "), 30)
    vm.port.write(b"yes\r")
    vm.read_until(re.compile(rb"boot: trying slot b \(0\.1\.1-qemu\), boot 1 of 1"), 60)
    vm.read_until(re.compile(rb"branch-voice 0\.1\.1-qemu booted on board sim: SIP port 5060"), 240)
    rig["report"]["slot_b_first_boot_s"] = time.monotonic() - t0
    vm.login("root", ROOT_PW)
    assert "Firmware: branch-voice 0.1.1-qemu" in vm.command("show version")
    sw = vm.command("show system software")
    assert re.search(r"b\s+active,booted\s+0\.1\.1-qemu", sw), sw
    assert "slot b reached running and is now the active slot" in sw, sw
    assert P + "station s1001 extension 1001" in _config(vm)
    vm.close()
    rig["vm"] = None
