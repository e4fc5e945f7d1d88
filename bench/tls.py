"""TLS handshake cost for SIP over TLS: the appliance's server side
(firmware/sipstack/tls.py) stepped without blocking, as the scheduler runs
it, against a client on the same interpreter over loopback TCP.

    python bench/tls.py          micropython bench/tls.py
from the repository root.  Prints, over RUNS handshakes with the test
certificates (ECDSA P-256), the whole handshake time and the longest single
server step (what one scheduler turn can be held for: it must stay well
under the watchdog's hog limit), and on MicroPython the heap a connection
holds; writes bench/results/tls-<impl>.txt.  Reports numbers, never fails.
"""
import sys
if "." not in sys.path:
    sys.path.insert(0, ".")
import gc
import os
import select
import time

from firmware.sipstack import tls
from tests.unit.test_tls import STORE, pair

MPY = sys.implementation.name == "micropython"
RUNS = 10


def _us():
    return time.ticks_us() if MPY else int(time.perf_counter() * 1e6)


def _diff(a, b):
    return time.ticks_diff(b, a) if MPY else b - a


def handshake():
    gc.collect()
    heap0 = gc.mem_alloc() if MPY else 0
    server, client, s, c = pair(tls.server_context(STORE, "server"),
                                tls.client_context(STORE, ca=("ca",)))
    poll = select.poll()
    poll.register(server.pollable, select.POLLIN)
    poll.register(client.pollable, select.POLLIN)
    t0 = _us()
    longest = 0
    server_us = 0
    got = b""
    sent = False
    for _ in range(1000):
        if not sent:
            sent = client.send(b"PING") == 4
        try:
            client.recv(16)
        except OSError:
            pass
        a = _us()
        try:
            got += server.recv(16)
        except OSError:
            pass
        step = _diff(a, _us())
        server_us += step
        longest = max(longest, step)
        if got == b"PING":
            break
        poll.poll(10)
    total = _diff(t0, _us())
    gc.collect()
    held = (gc.mem_alloc() - heap0) if MPY else None
    server.close()
    client.close()
    return total, server_us, longest, held


def main():
    rows = [handshake() for _ in range(RUNS)]
    med = sorted(r[0] for r in rows)[RUNS // 2] / 1000.0
    srv = sorted(r[1] for r in rows)[RUNS // 2] / 1000.0
    worst = max(r[2] for r in rows) / 1000.0
    held = rows[-1][3]
    impl = "%s %s" % (sys.implementation.name,
                      ".".join(str(v) for v in sys.implementation.version[:3]))
    text = ("tls on %s: %d handshakes (ECDHE-ECDSA P-256, loopback, client on the same "
            "interpreter)\n  handshake median %.1f ms (server steps %.1f ms of it); longest "
            "server step %.1f ms%s" % (
                impl, RUNS, med, srv, worst,
                "" if held is None else "; heap held by both ends of a connection %d B" % held))
    print(text)
    try:
        os.mkdir("bench/results")
    except OSError:
        pass
    with open("bench/results/tls-%s.txt" % sys.implementation.name, "w") as f:
        f.write(text + "\n")


main()
