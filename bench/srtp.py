"""SRTP cost per packet: one 20 ms G.711 packet (12-byte header + 160 bytes)
protected and unprotected, AES_CM_128_HMAC_SHA1_80.

    python bench/srtp.py         (libsrtp, and our engine on `cryptography`'s AES)
    micropython bench/srtp.py    (our engine on cryptolib)
from the repository root.  Prints microseconds per packet each way and, on
MicroPython, heap bytes allocated per packet and held by one session pair;
writes bench/results/srtp-<impl>.txt.  Reports numbers, never fails on speed.
"""
import sys
if "." not in sys.path:
    sys.path.insert(0, ".")
import gc
import os
import time

from firmware.media import srtp

MPY = sys.implementation.name == "micropython"
N = 2000
KEY = bytes(range(1, 31))
SUITE = "AES_CM_128_HMAC_SHA1_80"


def _clock():
    return time.ticks_us() if MPY else int(time.perf_counter() * 1e6)


def _diff(a, b):
    return time.ticks_diff(b, a) if MPY else b - a


def packet(seq):
    return bytes([0x80, 0, seq >> 8 & 0xFF, seq & 0xFF, 0, 0, 0, 0, 1, 2, 3, 4]) + bytes(160)


def engines():
    if MPY:
        return [("own (cryptolib)", lambda out: srtp.session(SUITE, KEY, out, engine="own"))]
    from tests.unit.test_srtp import _aes
    return [("libsrtp", lambda out: srtp.session(SUITE, KEY, out, engine="libsrtp")),
            ("own (cryptography AES)",
             lambda out: srtp.session(SUITE, KEY, out, engine="own", aes=_aes()))]


def measure(make):
    gc.collect()
    held0 = gc.mem_alloc() if MPY else 0
    tx, rx = make(True), make(False)
    gc.collect()
    held = (gc.mem_alloc() - held0) if MPY else None
    tp = tu = 0
    p = bytearray(packet(0))
    for i in range(N):
        p[2], p[3] = i >> 8 & 0xFF, i & 0xFF
        t0 = _clock()
        w = tx.protect(p)
        t1 = _clock()
        rx.unprotect(w)
        tu += _diff(t1, _clock())
        tp += _diff(t0, t1)
    per_pkt_heap = None
    if MPY:
        gc.collect()
        a0 = gc.mem_alloc()
        w = tx.protect(packet(N))
        rx.unprotect(w)
        per_pkt_heap = gc.mem_alloc() - a0 - len(w)
    return tp / N, tu / N, per_pkt_heap, held


def main():
    impl = "%s %s" % (sys.implementation.name, ".".join(str(v) for v in sys.implementation.version[:3]))
    lines = ["srtp on %s, %s, %d packets of 172 bytes" % (impl, SUITE, N),
             "%-24s %12s %14s %14s %14s" % ("engine", "protect us", "unprotect us",
                                          "heap B/packet", "heap B/session")]
    for name, make in engines():
        p, u, heap, held = measure(make)
        lines.append("%-24s %12.1f %14.1f %14s %14s" % (
            name, p, u, "-" if heap is None else heap, "-" if held is None else held))
    text = "\n".join(lines)
    print(text)
    try:
        os.mkdir("bench/results")
    except OSError:
        pass
    with open("bench/results/srtp-%s.txt" % sys.implementation.name, "w") as f:
        f.write(text + "\n")


main()
