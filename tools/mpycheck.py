"""Compile every device module with mpy-cross; any failure fails the run.

    python tools/mpycheck.py [--out DIR]

Device modules are firmware/, sip/, hal/ (without hal/linux, which is
CPython-only) and boards/.  With --out the .mpy files are kept in DIR (the
image flash.sh installs on a MicroPython board); otherwise they go to a
temporary directory.  Prints one line per failure and a closing
`mpy-cross: N passed, N failed`.
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_DIRS = ("firmware", "sip", "hal", "boards")
EXCLUDE = ("hal/linux",)


def device_modules():
    for top in DEVICE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
            rel = os.path.relpath(dirpath, ROOT)
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__"
                                 and os.path.join(rel, d) not in EXCLUDE)
            for name in sorted(filenames):
                if name.endswith(".py"):
                    yield os.path.join(rel, name)


def main(argv):
    out = None
    if "--out" in argv:
        out = os.path.join(ROOT, argv[argv.index("--out") + 1])
    tmp = tempfile.mkdtemp()
    dest_root = out or tmp
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    passed = failed = 0
    for rel in device_modules():
        dest = os.path.join(dest_root, rel[:-3] + ".mpy")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        r = subprocess.run([mpy_cross, "-o", dest, rel], cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode == 0:
            passed += 1
        else:
            failed += 1
            print("FAIL %s\n%s" % (rel, (r.stderr or r.stdout).strip()))
    print("mpy-cross: %d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
