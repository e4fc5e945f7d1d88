"""Per-call cost of the random sources (issue 12 item 1).

    python bench/rng.py        micropython bench/rng.py
(from the repository root).  Random is the simulation's seeded xorshift64*;
SystemRandom, what a running appliance uses, reads os.urandom on every call.
"""
import sys
if "." not in sys.path:
    sys.path.insert(0, ".")
import time

from firmware import compat

MPY = sys.implementation.name == "micropython"


def _now():
    return time.ticks_us() / 1e6 if MPY else time.perf_counter()


def bench(label, fn, n=20000):
    t0 = _now()
    for _ in range(n):
        fn()
    dt = _now() - t0
    print("%-34s %7.2f us/call" % (label, dt / n * 1e6))


def main():
    print("%s %s" % (sys.implementation.name, ".".join(str(x) for x in sys.implementation.version[:3])))
    for name, r in (("Random", compat.Random(1)), ("SystemRandom", compat.SystemRandom())):
        bench(name + ".token(6)   (tag)", lambda: r.token(6))
        bench(name + ".token(8)   (branch)", lambda: r.token(8))
        bench(name + ".token(16)  (key, salt)", lambda: r.token(16))
        bench(name + ".randbelow(2**31) (SSRC)", lambda: r.randbelow(0x7FFFFFFF))
        bench(name + ".random()", lambda: r.random())


main()
