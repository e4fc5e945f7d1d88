"""What one analog call costs the appliance: a SIP phone calls an FXS port
through the local call server, the port answers, the phone hangs up; N
times, on the virtual clock in one process.

    .venv/bin/python bench/analog_calls.py [--calls N]

Reports, per call: SIP datagrams the appliance's transport received and sent
(what the analog gateway and the call server sent each other used to count
twice: once out, once in), SIP sessions and dialogs at the peak of a call,
wall milliseconds of simulation per call (the analog ports' 20 ms audio
frames dominate it), and the Python memory held while a call is up
(tracemalloc, CPython).  It reports numbers; it never passes or fails.
"""
import sys

sys.path.insert(0, ".")

from tests.portable import tmpdir, rmtree  # noqa: E402
from tests.sim.cs_world import CsWorld     # noqa: E402


def _ms():
    import time
    return int(time.monotonic() * 1000)


def _heap():
    import gc
    import tracemalloc
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _counters(w):
    c = w.app.sip_transports.counters
    return (c.get("udp_received", 0) + c.get("tcp_received", 0),
            c.get("udp_sent", 0) + c.get("tcp_sent", 0))


def run(calls):
    import tracemalloc
    tracemalloc.start()
    d = tmpdir("analog-bench")
    w = CsWorld(d, seed=91, sip_exts=("2001",), fxs=True)
    try:
        gw = w.app.gateway
        w.register_all()
        w.run(3000)
        w.run_until(lambda: gw.port_ready("fxs", 1), 3000)
        sim = w.app.hardware.sim
        ph = w.phones["2001"]
        rx0, tx0 = _counters(w)
        t0 = _ms()
        peak_sessions = peak_dialogs = 0
        heap_up = []
        for _ in range(calls):
            base = _heap()
            c = ph.call("1001")
            w.run_until(lambda: sim.phones[1].ringing, 5000)
            sim.phones[1].off_hook()
            w.run_until(lambda: c.state == "connected" and gw.fxs[1].state == "talk", 3000)
            ua = gw.ua
            peak_sessions = max(peak_sessions, len(ua.sessions))
            peak_dialogs = max(peak_dialogs, len(ua.dialogs))
            up = _heap()
            if base is not None and up is not None:
                heap_up.append(up - base)
            ph.hangup(c)
            w.run_until(lambda: gw.fxs[1].state != "talk", 3000)
            sim.phones[1].on_hook()
            w.run(1500)
        wall = _ms() - t0
        rx, tx = _counters(w)
        print("analog calls: %d SIP phone -> FXS calls through the local call server" % calls)
        print("  SIP datagrams per call: %.1f received, %.1f sent" % (
            (rx - rx0) / calls, (tx - tx0) / calls))
        print("  SIP sessions / dialogs during a call (peak): %d / %d" % (
            peak_sessions, peak_dialogs))
        print("  wall ms of simulation per call: %.1f" % (wall / calls))
        if heap_up:
            heap_up.sort()
            print("  memory held while a call is up (median): %d bytes" % heap_up[len(heap_up) // 2])
    finally:
        w.close()
        rmtree(d)


def main(argv):
    n = 20
    if "--calls" in argv:
        n = int(argv[argv.index("--calls") + 1])
    run(n)


main(sys.argv[1:])
