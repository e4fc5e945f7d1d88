# portable: micropython
"""The CDR log on flash (firmware/cdr/log.py): frames with version, length
and CRC; rotation over segments with the oldest dropped and counted (the
count survives a reboot); fsync in batches; and the power cut: a simulated
flash keeps only what was fsynced plus any prefix of what was written after,
and the test cuts at every byte of a batch: every record up to the last
fsync is intact, the torn tail is detected, cut off and counted on boot, and
the log appends cleanly after it.  Also on a real directory."""
from firmware.cdr import log as L
from firmware.cdr import record as R
from firmware.compat import Random
from tests.portable import tmpdir, rmtree


class CutFlash:
    """A flash in RAM that knows what was fsynced: cut(k) is the state after
    a power cut when k bytes written since the last fsync reached the chip
    (in write order, across files), the rest lost."""

    def __init__(self):
        self.durable = {}        # name -> bytes fsynced
        self.files = {}          # name -> bytes written (the OS's view)
        self.pending = []        # (name, bytes) written since the file's fsync, in order
        self.cur = None
        self.fsyncs = 0

    # the FileFlash API
    def listdir(self):
        return list(self.files)

    def read(self, name, limit):
        d = self.files.get(name)
        return None if d is None else d[:limit + 1]

    def write(self, name, data):
        self.files[name] = bytes(data)
        self.durable[name] = bytes(data)

    def rename(self, old, new):
        self.files[new] = self.files.pop(old)
        self.durable[new] = self.durable.pop(old)

    def remove(self, name):
        self.files.pop(name, None)
        self.durable.pop(name, None)
        self.pending = [p for p in self.pending if p[0] != name]

    def sync(self):
        pass

    # SegmentFlash's additions
    def append(self, name, data):
        self.cur = name
        self.files[name] = self.files.get(name, b"") + data
        self.durable.setdefault(name, b"")
        self.pending.append((name, bytes(data)))

    def fsync(self):
        name = self.cur
        if name is None:
            return
        self.durable[name] = self.files[name]
        self.pending = [p for p in self.pending if p[0] != name]
        self.fsyncs += 1

    def close(self):
        self.cur = None

    def unsynced_bytes(self):
        return sum(len(p[1]) for p in self.pending)

    def cut(self, k):
        """A new flash: the durable bytes plus the first k unsynced bytes."""
        f = CutFlash()
        f.files = dict(self.durable)
        for name, data in self.pending:
            if k <= 0:
                break
            take = data[:k]
            f.files[name] = f.files.get(name, b"") + take
            k -= len(take)
        f.durable = dict(f.files)
        return f


def _rec(i, rng=None):
    r = R.CallRecord("%016x" % (0x1000 + i))
    r.calling = "20%02d" % (i % 100)
    r.called = "30%02d" % ((i * 7) % 100)
    r.start = 1000 * i
    r.end = 1000 * i + 500 + (rng.randbelow(100000) if rng else 0)
    r.disposition = R.DISPOSITIONS[i % len(R.DISPOSITIONS)]
    r.sip_status = 200
    r.cause = "caller bye" * (1 + (rng.randbelow(4) if rng else 0))
    r.call_ids = ["cid-%d@host" % i]
    return r


def _ids(log):
    return [r.id for r in log.records()]


def test_records_round_trip_with_version_length_and_crc():
    r = _rec(3)
    r.original_called = "3999"
    r.codec = "PCMA"
    r.rtp_sent, r.rtp_received, r.rtp_lost = 500, 498, 2
    r.clock_set = True
    b = R.encode(r)
    assert b[:2] == b"CR" and b[2] == R.VERSION
    assert (b[3] << 8 | b[4]) == len(b) - R.HEADER
    back, end = R.decode(b)
    assert end == len(b) and back.as_dict() == r.as_dict()
    for i in range(len(b)):             # every flipped byte is caught
        bad = bytearray(b)
        bad[i] ^= 0x40
        try:
            R.decode(bytes(bad))
        except R.RecordError:
            continue
        raise AssertionError("a flipped byte %d was not detected" % i)
    for n in range(len(b)):             # and every torn frame
        try:
            R.decode(b[:n])
        except R.RecordError:
            continue
        raise AssertionError("a frame torn at %d was not detected" % n)


def test_long_texts_are_cut_at_a_character_boundary():
    r = _rec(1)
    r.cause = "\u00e9" * 300
    back = R.decode(R.encode(r))[0]
    assert len(back.cause.encode()) <= R.MAX_TEXT and back.cause == "\u00e9" * len(back.cause)


def test_segments_rotate_and_the_oldest_is_dropped_and_counted_across_a_reboot():
    fl = CutFlash()
    log = L.CdrLog(fl, size=16384, segments=4, batch=4)
    log.open()
    n = 400
    for i in range(n):
        assert log.append(_rec(i))
    log.close()
    segs = sorted(x for x in fl.files if L.seg_seq(x) is not None)
    assert len(segs) == 4, segs
    for s in segs:
        assert len(fl.files[s]) <= log.seg_bytes
    kept = _ids(log)
    assert log.dropped + len(kept) == n and log.dropped > 0
    assert kept == ["%016x" % (0x1000 + i) for i in range(log.dropped, n)]
    assert log.bytes_used() <= log.size
    again = L.CdrLog(fl, size=16384, segments=4, batch=4)
    again.open()
    assert again.dropped == log.dropped and _ids(again) == kept
    assert again.counters["records"] == len(kept)


def test_fsync_happens_once_per_batch():
    fl = CutFlash()
    log = L.CdrLog(fl, size=65536, segments=4, batch=5)
    log.open()
    base = fl.fsyncs
    for i in range(23):
        log.append(_rec(i))
    assert fl.fsyncs - base == 1 + 4      # the new segment's header, then 20 records
    assert log.unsynced == 3
    log.sync()
    assert log.unsynced == 0 and fl.fsyncs - base == 6


def test_power_cut_at_every_byte_of_a_batch():
    rng = Random(15)
    fl = CutFlash()
    log = L.CdrLog(fl, size=16384, segments=4, batch=6)
    log.open()
    for i in range(60):                    # rotates: the cut also meets older segments
        log.append(_rec(i, rng))
    log.sync()
    durable = _ids(log)
    batch = [_rec(100 + i, rng) for i in range(5)]   # one short of a batch: unsynced
    for r in batch:
        log.append(r)
    assert log.unsynced == 5
    frames = [len(R.encode(r)) for r in batch]
    total = fl.unsynced_bytes()
    assert total == sum(frames)
    for k in range(total + 1):
        cut = fl.cut(k)
        boot = L.CdrLog(cut, size=16384, segments=4, batch=6)
        boot.open()
        ids = _ids(boot)
        whole, used = 0, 0
        while whole < len(frames) and used + frames[whole] <= k:
            used += frames[whole]
            whole += 1
        assert ids == durable + [r.id for r in batch[:whole]], (k, len(ids))
        torn = k - used
        assert boot.counters["torn_tails"] == (1 if torn else 0), k
        assert boot.counters["torn_bytes"] == torn, (k, boot.counters)
        # the tail was cut off: a new record follows the intact ones
        boot.append(_rec(999))
        boot.sync()
        again = L.CdrLog(cut, size=16384, segments=4, batch=6)
        again.open()
        assert _ids(again) == ids + [_rec(999).id] and again.counters["torn_tails"] == 0, k


def test_power_cut_while_a_new_segment_is_made():
    fl = CutFlash()
    log = L.CdrLog(fl, size=16384, segments=2, batch=1)
    log.open()
    i = 0
    while len(log.segs) < 2:
        log.append(_rec(i))
        i += 1
    before = _ids(log)
    # a header torn at every byte: the segment is discarded, nothing else lost
    seq = log.segs[-1][0] + 1
    head = L.seg_header(seq, 0)
    for k in range(len(head)):
        cut = fl.cut(0)
        cut.files[L.seg_name(seq)] = head[:k]
        boot = L.CdrLog(cut, size=16384, segments=2, batch=1)
        boot.open()
        assert _ids(boot) == _ids(log) and L.seg_name(seq) not in cut.files, k
    assert before == _ids(log)


def test_a_damaged_older_segment_skips_its_rest_and_is_counted():
    fl = CutFlash()
    log = L.CdrLog(fl, size=16384, segments=4, batch=1)
    log.open()
    for i in range(120):
        log.append(_rec(i))
    before = _ids(log)
    first = L.seg_name(log.segs[0][0])
    data = bytearray(fl.files[first])
    data[L.SEG_HEADER + 40] ^= 0xFF        # inside the first record
    fl.files[first] = bytes(data)
    fl.durable[first] = bytes(data)
    boot = L.CdrLog(fl, size=16384, segments=4, batch=1)
    boot.open()
    assert boot.counters["corrupt"] == 1 and boot.counters["torn_tails"] == 0
    assert _ids(boot) == before[log.segs[0][2]:]


def test_on_a_real_directory():
    d = tmpdir("cdrlog")
    try:
        log = L.CdrLog(L.SegmentFlash(d), size=16384, segments=4, batch=3)
        log.open()
        for i in range(10):
            log.append(_rec(i))
        log.close()
        seg = d + "/" + L.seg_name(1)
        with open(seg, "ab") as f:           # a torn record after the last one
            f.write(R.encode(_rec(11))[:20])
        boot = L.CdrLog(L.SegmentFlash(d), size=16384, segments=4, batch=3)
        boot.open()
        assert _ids(boot) == _ids(log) and boot.counters["torn_bytes"] == 20
        boot.append(_rec(12))
        boot.close()
        again = L.CdrLog(L.SegmentFlash(d), size=16384, segments=4, batch=3)
        again.open()
        assert len(_ids(again)) == 11 and again.counters["torn_tails"] == 0
        again.close()
    finally:
        rmtree(d)
