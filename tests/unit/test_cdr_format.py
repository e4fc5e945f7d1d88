"""The CDR layout is defined once with construct (tools/cdrformat.py) and
written on the device with struct (firmware/cdr/record.py, log.py): records
built by either parse with the other, byte for byte; tools/cdr turns a log
directory, a segment and a raw flash image into Master.csv rows and JSON."""
import csv
import io
import json
import subprocess
import sys

from firmware.cdr import record as R
from firmware.cdr import log as L
from firmware.compat import Random
from tools import cdrformat as F
from tools import cdr as T
from tests.unit.test_cdr_log import CutFlash


def _random_record(rng, i):
    r = R.CallRecord(rng.token(8))
    r.mode = R.MODES[rng.randbelow(2)]
    r.clock_set = bool(rng.randbelow(2))
    r.call_ids = [rng.token(10) + "@h" for _ in range(rng.randbelow(R.MAX_CALL_IDS + 1))]
    r.calling = str(rng.randbelow(10 ** 6))
    r.called = str(rng.randbelow(10 ** 11))
    r.original_called = "" if rng.randbelow(2) else str(rng.randbelow(1000))
    r.src_kind = R.KINDS[rng.randbelow(len(R.KINDS))]
    r.src = "s%d" % i
    r.dst_kind = R.KINDS[rng.randbelow(len(R.KINDS))]
    r.dst = "\u00e9t\u00e9 %d" % i
    r.start = rng.randbelow(1 << 42)
    r.answer = None if rng.randbelow(2) else r.start + rng.randbelow(60000)
    r.end = (r.answer or r.start) + rng.randbelow(10 ** 7)
    r.disposition = R.DISPOSITIONS[rng.randbelow(len(R.DISPOSITIONS))]
    r.sip_status = 100 + rng.randbelow(600)
    r.cause = "callee bye" if rng.randbelow(2) else ""
    r.released_by = R.SIDES[rng.randbelow(len(R.SIDES))]
    r.redirect = R.REDIRECTS[rng.randbelow(len(R.REDIRECTS))]
    r.codec = ("PCMU", "PCMA", "")[rng.randbelow(3)]
    r.rtp_sent, r.rtp_received, r.rtp_lost = (rng.randbelow(1 << 32) for _ in range(3))
    return r


def test_struct_and_construct_agree_both_ways():
    rng = Random(1515)
    assert F.DISPOSITIONS == R.DISPOSITIONS and F.MODES == R.MODES and F.SIDES == R.SIDES
    assert F.KINDS == R.KINDS and F.REDIRECTS == R.REDIRECTS
    for i in range(300):
        r = _random_record(rng, i)
        dev = R.encode(r)
        d, end = F.parse_frame(dev)
        assert end == len(dev) and d == r.as_dict()
        host = F.build(r.as_dict())
        assert host == dev
        back, _ = R.decode(host)
        assert back.as_dict() == r.as_dict()
    for seq, dropped in ((1, 0), (7, 3), (2 ** 32 - 1, 12345)):
        assert F.SEGMENT_HEADER.build(dict(seq=seq, dropped=dropped)) == L.seg_header(seq, dropped)
        assert L.parse_seg_header(F.SEGMENT_HEADER.build(dict(seq=seq, dropped=dropped))) == (seq, dropped)
    assert F.SEGMENT_HEADER.sizeof() == L.SEG_HEADER


def _log_dir(tmp_path, n):
    d = str(tmp_path / "state" / "cdr")
    log = L.CdrLog(L.SegmentFlash(d), size=16384, segments=4, batch=4)
    log.open()
    rng = Random(7)
    recs = [_random_record(rng, i) for i in range(n)]
    for r in recs:
        log.append(r)
    log.close()
    return d, log, recs


def test_tools_cdr_reads_a_directory_a_segment_and_a_torn_tail(tmp_path):
    d, log, recs = _log_dir(tmp_path, 30)
    kept = [r.as_dict() for r in recs[log.dropped:]]
    assert T.read_path(str(tmp_path / "state"), print) == kept
    assert T.read_path(d, print) == kept
    seg = d + "/" + L.seg_name(log.segs[-1][0])
    with open(seg, "ab") as f:
        f.write(b"CR\x01\x00")
    warned = []
    assert T.read_path(seg, warned.append) == kept[-log.segs[-1][2]:]
    assert "torn or damaged tail of 4 bytes" in warned[0], warned


def test_tools_cdr_carves_a_flash_image(tmp_path):
    fl = CutFlash()
    log = L.CdrLog(fl, size=16384, segments=4, batch=4)
    log.open()
    rng = Random(9)
    recs = [_random_record(rng, i) for i in range(40)]
    for r in recs:
        log.append(r)
    log.close()
    # an image: the segments in scrambled order between erased flash, plus junk
    names = sorted(fl.files, reverse=True)
    img = b"\xff" * 100 + b"CR junk".join(fl.files[n] + b"\xff" * 37 for n in names) + b"CDRS\x01"
    p = tmp_path / "flash.img"
    p.write_bytes(img)
    got = T.read_path(str(p), print)
    assert got == [r.as_dict() for r in recs[log.dropped:]]


def test_master_csv_columns_and_json_from_the_command_line(tmp_path):
    d, log, recs = _log_dir(tmp_path, 5)
    out = subprocess.run([sys.executable, "tools/cdr.py", "--header", d], capture_output=True,
                         text=True, check=True).stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert tuple(rows[0]) == T.COLUMNS and len(rows) == 6
    for row, r in zip(rows[1:], recs):
        assert len(row) == 18
        assert row[1] == r.calling and row[2] == r.called and row[3] == r.mode
        assert row[16] == r.id and row[12] == str(r.duration()) and row[13] == str(r.billsec())
        assert row[14] == T.ASTERISK[r.disposition]
        assert "disposition=%s" % r.disposition in row[17]
        if r.clock_set:
            assert len(row[9]) == 19 and row[9][4] == "-"
        else:
            assert row[9] == "" and "uptime-start-ms=%d" % r.start in row[17]
    js = subprocess.run([sys.executable, "tools/cdr.py", "--format", "json", d],
                        capture_output=True, text=True, check=True).stdout
    assert json.loads(js) == [r.as_dict() for r in recs]
    bad = subprocess.run([sys.executable, "tools/cdr.py", str(tmp_path)], capture_output=True,
                         text=True)
    assert bad.returncode == 1 and "no CDR segments" in bad.stderr
