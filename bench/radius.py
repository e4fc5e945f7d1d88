"""Cost of RADIUS accounting per call, on the running interpreter.

    python bench/radius.py        micropython bench/radius.py
(from the repository root).  A call is a Start and a Stop from a CDR dict
(firmware/radius/records.py), each written to the journal on flash with its
fsync (a temporary directory), encoded, "sent" by the client (sans I/O) and
acknowledged with a valid Accounting-Response, then marked done in the
journal.  Prints per-call time with and without the journal's flash writes,
the bytes per record on flash and, on MicroPython, the heap kept per live
call (the service's session entry and the journal's open entry).  Writes the
table to bench/results/radius-<impl>.txt.
"""
import sys
if "." not in sys.path:
    sys.path.insert(0, ".")
import gc
import os
import struct
import time

from firmware.compat import md5
from firmware.radius import packet as P, records as R
from firmware.radius.client import Client, Server
from firmware.radius.journal import Journal
from firmware.radius.service import _REBOOT_FIELDS

MPY = sys.implementation.name == "micropython"
CALLS = 200
SECRET = b"bench-secret"


def _t():
    return time.ticks_ms() / 1000.0 if MPY else time.perf_counter()


def _cdr(i):
    return {"id": "%016x" % (0xabc0000 + i), "call_ids": ["c%d@branch" % i], "calling": "1001",
            "called": "1002", "src_kind": "station", "src": "alice", "dst_kind": "station",
            "dst": "bob", "mode": "survivable", "clock_set": True, "start": 1796212800000,
            "answer": 1796212805000, "end": 1796212865000, "duration": 65, "billsec": 60,
            "disposition": "answered", "sip_status": 200, "cause": "caller bye",
            "released_by": "caller", "original_called": "", "redirect": "", "codec": "PCMU",
            "rtp_sent": 3000, "rtp_received": 2990, "rtp_lost": 10}


def _answer(req):
    head = struct.pack(">BBH", P.ACCOUNTING_RESPONSE, req[1], 20)
    return head + md5(head + req[4:20] + SECRET).digest()


class _NoFlash(Journal):
    def _append(self, objs, sync=True):
        pass


def run(journal_cls, d):
    j = journal_cls(d, 4096)
    c = Client(j, [Server("192.0.2.10", 1813, SECRET)])
    nas = ("branch-1", "192.0.2.1")
    t0 = _t()
    for i in range(CALLS):
        cdr = _cdr(i)
        for st in (P.START, P.STOP):
            j.add((cdr["id"], st, 0), R.attributes(cdr, st, nas, 1796212866), None, 0)
            (addr, data), = c.poll(0)
            assert c.receive(_answer(data), addr, 0) is not None
    return (_t() - t0) / CALLS * 1e6, j


def main():
    d = "/tmp/branch-voice-bench-radius-%d" % (int(_t() * 1000) % 1000000)
    os.mkdir(d)
    try:
        us_flash, j = run(Journal, d)
        size = os.stat(j.path)[6]
        us_ram, _ = run(_NoFlash, d)
        rows = [("calls (Start + Stop, answered at once)", "%d" % CALLS),
                ("per call, journal with fsync", "%.0f us" % us_flash),
                ("per call, journal writes left out", "%.0f us" % us_ram),
                ("journal after %d calls (compacted when idle past 16 KB)" % CALLS, "%d bytes" % size)]
        if MPY:
            # the CallRecord is the stream's; RADIUS adds its session entry and the
            # journal's open entry (the CDR fields a reboot Stop needs)
            from firmware.cdr.record import CallRecord
            recs = []
            for i in range(50):
                r = CallRecord("%016x" % i)
                r.calling, r.called, r.src_kind, r.src = "1001", "1002", "station", "alice"
                r.dst_kind, r.dst, r.start = "station", "bob", 1796212800000 + i
                r.add_call_id("c%d@branch" % i)
                recs.append(r)
            sessions, opened = {}, {}
            gc.collect()
            before = gc.mem_alloc()
            for r in recs:
                sessions[r.id] = [r, None, 0]
                cdr = r.as_dict()
                opened[r.id] = [dict((k, cdr[k]) for k in _REBOOT_FIELDS if cdr.get(k)), 0]
            gc.collect()
            rows.append(("heap kept per live call (session + open entry)",
                         "%d bytes" % ((gc.mem_alloc() - before) // 50)))
        impl = sys.implementation.name
        out = ["RADIUS accounting cost (%s)" % impl] + ["  %-62s %s" % r for r in rows]
        text = "\n".join(out)
        print(text)
        try:
            os.mkdir("bench/results")
        except OSError:
            pass
        with open("bench/results/radius-%s.txt" % impl, "w") as f:
            f.write(text + "\n")
    finally:
        for n in os.listdir(d):
            os.remove(d + "/" + n)
        os.rmdir(d)


main()
