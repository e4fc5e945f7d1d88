"""Survivability benchmark on the simulated network (tests/sim/simnet.py),
the whole appliance on its virtual clock, one World of
tests/sim/analog_world.py per seeded run (peer call server SipPeer, four FXS
stations, two FXO trunks):

    .venv/bin/python bench/survivability.py [--runs N] [--seed S] [--out FILE]
        [--phones N] [--peer-rate R] [--outage S]

Per run: settle (the stations registered with the peer), cut the WAN
(SimNetwork.partition), measure the virtual time until the local call server
is in control, wait 5 s, heal, measure the time until the peer is in
control again (the cut and the heal each at a seeded random point of the
probe cycle).  Also counted per run: REGISTER requests that reached the
local call server's registrar from the cut to 5 s after failover (a station
or phone re-registering at failover; goal 0).  The FXS stations are reached
in process in survival mode; this world has no SIP phones (the shadow
measure below has), so the count covers the analog stations.  Timers: the recommended setting
(probe 1 s, failure 3 s, window 16 s at 80 %, hold-down 10 s).

Then, once (tests/sim/proxy_world.py, --phones N, default 500): N SIP phones
register through the outbound proxy (firmware/proxy/outbound.py) to a peer
registrar that answers at most --peer-rate REGISTERs a second (503 beyond,
default 50), the WAN is cut for --outage seconds (default 700: longer than
the phones' 600 s registrations, so every phone refreshes during survival and
holds a short local binding), then restored.  Measured from failback on, for
180 s: REGISTER requests reaching the peer per second (peak and mean,
challenged ones included), the peer's rejections (goal 0) and how many of
the phones' local bindings are shadow bindings of the peer again.

Prints min/median/p95/max and writes them as Markdown to
bench/results/survivability.md (or --out).
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


WATCH_S = 180


def shadow_refresh(seed, phones, peer_rate, outage_s):
    """-> dict: the upstream REGISTER rate after failback with `phones` SIP
    phones registered through the outbound proxy."""
    from tests.sim.proxy_world import ProxyWorld
    # at most 256 stations: two devices each (desk phone and softphone) past 250
    devices = 1 if phones <= 250 else 2
    exts = tuple(str(2000 + i) for i in range(phones // devices))
    w = ProxyWorld(seed=seed, exts=exts, peer_rate=peer_rate, devices=devices)
    try:
        phones = len(w.phones)
        keys = list(w.phones)
        batch = max(1, peer_rate // 4)         # challenged: 2 REGISTERs each, well below the rate
        for i in range(0, phones, batch):
            for k in keys[i:i + batch]:
                w.phones[k].register()
            w.run(1000)
        w.run_until(lambda: all(p.registered for p in w.phones.values()), 120000, step=500)
        reg = w.cs.registrar
        shadow_before = reg.shadow_count()
        w.run(60000)
        w.network.partition("appliance", "peer")
        w.run_until(lambda: w.app.control.local, 20000, step=10)
        w.run(outage_s * 1000)
        local = phones - reg.shadow_count()
        w.network.heal()
        t_fb = w.run_until(lambda: not w.app.control.local, 120000, step=10)
        w.run(WATCH_S * 1000)
        per_s = {}
        rejected = 0
        for t, status in w.peer.register_times:
            if t < t_fb:
                continue
            per_s[t // 1000] = per_s.get(t // 1000, 0) + 1
            if status not in (200, 401):
                rejected += 1
        counts = [per_s.get(s, 0) for s in range(t_fb // 1000, t_fb // 1000 + WATCH_S)]
        return {"phones": phones, "shadow_before": shadow_before, "local_at_failback": local,
                "shadow_after": reg.shadow_count(), "peak": max(counts),
                "mean": sum(counts) / float(len(counts)), "total": sum(counts),
                "rejected": rejected, "busiest": sorted(counts)[-5:],
                "registered": len([p for p in w.phones.values() if p.registered])}
    finally:
        w.close()


def main(argv):
    runs, seed, out = 20, 1000, os.path.join(ROOT, "bench", "results", "survivability.md")
    phones, peer_rate, outage = 500, 50, 700
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
        elif argv[i] == "--phones":
            phones = int(argv[i + 1])
            i += 1
        elif argv[i] == "--peer-rate":
            peer_rate = int(argv[i + 1])
            i += 1
        elif argv[i] == "--outage":
            outage = int(argv[i + 1])
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
    r = shadow_refresh(seed, phones, peer_rate, outage)
    print("shadow bindings after failback: %r" % (r,))
    lines += ["", "## Shadow bindings refreshed upstream after failback", "",
              "%d SIP phones (two per station past 250) registered through the outbound proxy "
              "(%d shadow bindings), "
              "WAN cut for %d s (survival-registration-expiry 120 s: local grants 60-120 s), "
              "then restored; the peer answers at most %d REGISTERs a second (503 beyond). "
              "Seed %d." % (r["phones"], r["shadow_before"], outage, peer_rate, seed), "",
              "| measure | value |", "|---|---|",
              "| phones holding a local (survival) binding at failback | %d |" % r["local_at_failback"],
              "| REGISTERs reaching the peer in the %d s after failback (challenges included) "
              "| %d |" % (WATCH_S, r["total"]),
              "| peak REGISTERs in one second | %d |" % r["peak"],
              "| mean REGISTERs per second | %.1f |" % r["mean"],
              "| the five busiest seconds | %s |" % ", ".join(str(x) for x in r["busiest"]),
              "| REGISTERs rejected by the peer | %d |" % r["rejected"],
              "| shadow bindings %d s after failback | %d of %d |" % (
                  WATCH_S, r["shadow_after"], r["phones"]),
              "| phones registered at the end | %d |" % r["registered"]]
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
