"""Survivability benchmark on the simulated network (tests/sim/simnet.py),
the whole appliance on its virtual clock, one World of
tests/sim/analog_world.py per seeded run (peer call server SipPeer, four FXS
stations, two FXO trunks):

    .venv/bin/python bench/survivability.py [--runs N] [--seed S] [--out FILE]

Per run: settle (the stations registered with the peer), cut the WAN
(SimNetwork.partition), measure the virtual time until the local call server
is in control, wait 5 s, heal, measure the time until the peer is in
control again (the cut and the heal each at a seeded random point of the
probe cycle).  Also counted per run: REGISTER requests that reached the
local call server's registrar from the cut to 5 s after failover (a station
or phone re-registering at failover; goal 0).  The FXS stations are reached
in process in survival mode; this world has no SIP phones yet (they need the
outbound proxy), so the count covers the analog stations only.  Timers: the recommended setting
(probe 1 s, failure 3 s, window 16 s at 80 %, hold-down 10 s).

Prints min/median/p95/max of both and writes them as Markdown to
bench/results/survivability.md (or --out).  Not measured yet: the 500 shadow
bindings refreshed after failback (the outbound proxy with shadow
registrations does not exist yet; see README).
"""
import os
import random
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.sim.analog_world import World, B  # noqa: E402

TIMERS = (("probe-interval", 1), ("failure-timeout", 3), ("failback-window", 16),
          ("failback-threshold", 80), ("hold-down", 10))


def _pct(xs, p):
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[i]


def one(seed, tmp):
    """-> (cut -> local ms, restore -> peer ms, REGISTERs at the local registrar
    from the cut to 5 s after failover)."""
    extra = tuple(B + "survivability %s %d" % kv for kv in TIMERS)
    w = World(tmp, seed=seed, extra=extra)
    try:
        w.settle()
        phase = random.Random(seed)
        w.run(phase.randrange(1000))       # the cut at a random point of the probe cycle
        ctl = w.app.control
        reg = w.app.callserver.registrar
        before = reg.counters["registers"]
        w.network.partition("appliance", "peer")
        t0 = w.now()
        t1 = w.run_until(lambda: ctl.local, 20000, step=10)
        w.run(5000)
        local_regs = reg.counters["registers"] - before
        w.run(phase.randrange(1000))
        w.network.heal()
        t2 = w.now()
        t3 = w.run_until(lambda: not ctl.local, 120000, step=10)
        return t1 - t0, t3 - t2, local_regs
    finally:
        w.close()


def main(argv):
    runs, seed, out = 20, 1000, os.path.join(ROOT, "bench", "results", "survivability.md")
    i = 0
    while i < len(argv):
        if argv[i] == "--runs":
            runs = int(argv[i + 1])
            i += 1
        elif argv[i] == "--seed":
            seed = int(argv[i + 1])
            i += 1
        elif argv[i] == "--out":
            out = argv[i + 1]
            i += 1
        i += 1
    down, back, local_regs = [], [], []
    for k in range(runs):
        d, b, lr = one(seed + k, tempfile.mkdtemp(prefix="survbench"))
        down.append(d)
        back.append(b)
        local_regs.append(lr)
        print("seed %d: cut -> local %d ms, restore -> peer %d ms, local registrations %d"
              % (seed + k, d, b, lr))
    lines = ["# Survivability on the simulated network", "",
             "Timers: " + ", ".join("%s %d" % kv for kv in TIMERS) + " (seconds, %).",
             "%d seeded runs (seeds %d-%d)." % (runs, seed, seed + runs - 1), "",
             "| measure | min | median | p95 | max |", "|---|---|---|---|---|"]
    for name, xs in (("WAN cut -> local call server in control (ms)", down),
                     ("restore -> peer in control (ms)", back),
                     ("registrations at the local registrar at failover", local_regs)):
        lines.append("| %s | %d | %d | %d | %d |" % (name, min(xs), _pct(xs, 50), _pct(xs, 95),
                                                     max(xs)))
    lines += ["", "Not measured: 500 shadow bindings refreshed after failback (no outbound "
              "proxy with shadow registrations yet)."]
    text = "\n".join(lines) + "\n"
    print(text)
    d = os.path.dirname(out)
    if d and not os.path.isdir(d):
        os.makedirs(d)
    with open(out, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
