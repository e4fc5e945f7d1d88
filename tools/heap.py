"""Heap helper: the MicroPython heap the appliance needs to boot.

    python tools/heap.py [--board sim] [--max-kib 4096] [--out bench/results/heap_boot.txt]

Boots `micropython -X heapsize=N -m firmware ... --exit-after-boot` for a
binary search over N (KiB), records the smallest heap that boots and the
`gc.mem_alloc()` the appliance reports after boot, and writes both to the
benchmark output.  Exits non-zero if the appliance does not boot even with
--max-kib.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def boot(heap_kib, board):
    state = tempfile.mkdtemp(prefix="heap-")
    cmd = [MICROPYTHON, "-X", "heapsize=%dk" % heap_kib, "-m", "firmware", "--board", board,
           "--state", state, "--console", "none", "--sip-host", "127.0.0.1",
           "--sip-port", str(free_port()), "--exit-after-boot"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    m = re.search(r"heap after boot: (\d+) bytes", r.stdout)
    return (r.returncode == 0 and m is not None), (int(m.group(1)) if m else None), r


def main(argv):
    board = argv[argv.index("--board") + 1] if "--board" in argv else "sim"
    hi = int(argv[argv.index("--max-kib") + 1]) if "--max-kib" in argv else 4096
    out = argv[argv.index("--out") + 1] if "--out" in argv else os.path.join(
        ROOT, "bench", "results", "heap_boot.txt")
    ok, used, r = boot(hi, board)
    if not ok:
        print("heap: the appliance does not boot with %d KiB:\n%s%s" % (hi, r.stdout, r.stderr))
        return 1
    lo = 8  # KiB known (assumed) too small
    while hi - lo > 4:  # 4 KiB resolution
        mid = (lo + hi) // 2
        ok, u, _ = boot(mid, board)
        if ok:
            hi, used = mid, u
        else:
            lo = mid
    ok, used_big, _ = boot(4096, board)
    lines = [
        "benchmark: MicroPython heap at boot (board %s)" % board,
        "smallest heap that boots: %d KiB (4 KiB resolution)" % hi,
        "gc.mem_alloc() after boot with that heap: %d bytes" % used,
        "gc.mem_alloc() after boot with a 4096 KiB heap: %d bytes" % used_big,
    ]
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
