"""Run the portable test subset under the MicroPython unix port.

    micropython tools/mpytest.py [FILE ...]      (from the repository root)
    micropython tools/mpytest.py --list          the portable files, one a line

tools/test-all runs each file in its own MicroPython process, so that every
file starts from an empty heap (as the appliance does) and one file's
garbage cannot turn into another's MemoryError.
With no files it finds every tests/**/test_*.py carrying the marker line
`# portable: micropython`.  Each module is imported and each argument-less
`test_*` function called in file order.  Prints one line per failure with its
traceback, then a closing line `mpytest: N passed, N failed`; exits 1 on any
failure or when no test ran.  Runs on CPython too, for checking the runner.
"""
import sys
import os

MARKER = "# portable: micropython"


def _isdir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def _walk(top):
    out = []
    for name in sorted(os.listdir(top)):
        path = top + "/" + name
        if _isdir(path):
            if name != "__pycache__":
                out.extend(_walk(path))
        elif name.startswith("test_") and name.endswith(".py"):
            out.append(path)
    return out


def _is_portable(path):
    with open(path) as f:
        for _ in range(15):
            line = f.readline()
            if not line:
                break
            if line.strip() == MARKER:
                return True
    return False


def _module_name(path):
    if path.startswith("./"):
        path = path[2:]
    return path[:-3].replace("/", ".")


def _test_names(path):
    # MicroPython modules have no ordered __dict__; read definition order from source.
    names = []
    with open(path) as f:
        for line in f:
            if line.startswith("def test_"):
                names.append(line[4:line.index("(")])
    return names


def main(argv):
    # Run from the repository root, so that `firmware`, `sip` and `tests` import.
    if "." not in sys.path:
        sys.path.insert(0, ".")
    if argv[1:] == ["--list"]:
        for p in _walk("tests"):
            if _is_portable(p):
                print(p)
        return 0
    files = argv[1:] or [p for p in _walk("tests") if _is_portable(p)]
    passed = failed = 0
    for path in files:
        try:
            mod = __import__(_module_name(path), None, None, ["x"])
        except Exception as e:
            failed += 1
            print("FAIL import", path)
            sys.print_exception(e) if hasattr(sys, "print_exception") else _cpy_tb(e)
            continue
        for name in _test_names(path):
            fn = getattr(mod, name, None)
            if fn is None:
                continue
            try:
                fn()
                passed += 1
            except Exception as e:
                failed += 1
                print("FAIL %s::%s" % (path, name))
                sys.print_exception(e) if hasattr(sys, "print_exception") else _cpy_tb(e)
    print("mpytest: %d passed, %d failed" % (passed, failed))
    # a named file may be a fixture module without tests; the whole run must test something
    return 1 if failed or (not passed and not argv[1:]) else 0


def _cpy_tb(e):
    import traceback
    traceback.print_exception(type(e), e, e.__traceback__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
