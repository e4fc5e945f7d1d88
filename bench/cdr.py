"""Cost of call accounting: one CDR through the stream and onto flash.

    python bench/cdr.py        micropython bench/cdr.py
(from the repository root).  Measures, on a real directory under /tmp:
bytes per record on flash; records per second for encode, for append with
the default batch (fsync every 8), and for append with an fsync per record;
the boot scan (CdrLog.open) of a full default log (256 KB, 8 segments); and
on MicroPython the heap allocated per record through the stream and the
recorder.  Prints a table and writes bench/results/cdr-<impl>.txt.
"""
import sys
if "." not in sys.path:
    sys.path.insert(0, ".")
import gc
import time

from firmware.cdr import record as R
from firmware.cdr import log as L
from firmware.compat import Random
from tests.portable import tmpdir, rmtree

MPY = sys.implementation.name == "micropython"


def _now():
    return time.ticks_ms() / 1000.0 if MPY else time.perf_counter()


def _rec(i):
    r = R.CallRecord("%016x" % (0xABC000 + i))
    r.calling, r.called = "2001", "2002"
    r.src_kind, r.src, r.dst_kind, r.dst = "station", "s2001", "fxs", "2"
    r.call_ids = ["8f52311bb7335e0b374f@192.0.2.10"]
    r.start, r.answer, r.end = 1796214645000 + i, 1796214650000 + i, 1796214710000 + i
    r.clock_set = True
    r.disposition, r.sip_status, r.cause, r.released_by = "answered", 200, "caller bye", "caller"
    r.codec, r.rtp_sent, r.rtp_received, r.rtp_lost = "PCMU", 3000, 2998, 2
    return r


def _rate(n, fn):
    t0 = _now()
    for i in range(n):
        fn(i)
    dt = _now() - t0
    return n / dt if dt > 0 else float("inf")


def main():
    out = []
    size = len(R.encode(_rec(0)))
    out.append(("bytes per record on flash (typical answered call)", "%d" % size))
    recs = [_rec(i) for i in range(200)]
    out.append(("encode, records/s", "%d" % _rate(2000, lambda i: R.encode(recs[i % 200]))))
    d = tmpdir("cdrbench", Random())
    try:
        log = L.CdrLog(L.SegmentFlash(d + "/a"), batch=8)
        log.open()
        out.append(("append, batch 8 (default), records/s",
                    "%d" % _rate(2000, lambda i: log.append(recs[i % 200]))))
        log.close()
        log = L.CdrLog(L.SegmentFlash(d + "/b"), batch=1)
        log.open()
        out.append(("append, fsync every record, records/s",
                    "%d" % _rate(300, lambda i: log.append(recs[i % 200]))))
        log.close()
        full = L.CdrLog(L.SegmentFlash(d + "/a"))
        t0 = _now()
        full.open()
        out.append(("boot scan of a full log (%d records, %d KB), ms" % (
            full.counters["records"], full.bytes_used() // 1024), "%d" % ((_now() - t0) * 1000)))
        if MPY:
            from tests.unit.test_cdr_stream import _App
            from firmware.cdr.recorder import Recorder
            app = _App(d + "/c")
            Recorder(app)
            for i in range(20):          # warm up: segment files open, caches filled
                r = app.calls.setup("callserver", "2001", "2002", ("station", "s2001"),
                                    ("station", "s2002"), "cid")
                app.calls.ended(r, 486)
            gc.collect()
            before = gc.mem_alloc()
            n = 50
            for i in range(n):
                r = app.calls.setup("callserver", "2001", "2002", ("station", "s2001"),
                                    ("station", "s2002"), "cid")
                app.calls.ended(r, 486)
            gc.collect()
            out.append(("heap held per ended call after gc, bytes",
                        "%d" % ((gc.mem_alloc() - before) // n)))
    finally:
        rmtree(d)
    impl = sys.implementation.name
    lines = ["CDR cost (%s)" % impl] + ["%-58s %s" % x for x in out]
    text = "\n".join(lines)
    print(text)
    try:
        import os
        try:
            os.mkdir("bench/results")
        except OSError:
            pass
        with open("bench/results/cdr-%s.txt" % impl, "w") as f:
            f.write(text + "\n")
    except OSError:
        pass


main()
