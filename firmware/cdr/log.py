"""The CDR log on flash: append-only, bounded, crash-safe.

    log = CdrLog(SegmentFlash(state_dir + "/cdr"), size=262144, segments=8, batch=8)
    log.open()                 # boot: check every segment, cut a torn tail, count
    log.append(rec)            # frame it (record.encode) and write it; fsync every
                               # `batch` records (and on sync())
    log.sync()                 # make every record written so far durable
    log.records()              # every readable record, oldest first (a generator)
    log.counters               # records, dropped, torn_tails, torn_bytes, corrupt, ...

The log is `segments` files cdr-NNNNNNNN.log (N: a sequence number that only
grows), each at most size // segments bytes.  A record that does not fit in
the newest segment starts a new one; when that makes one segment too many,
the oldest is removed and its records are counted as dropped (the count is
kept in each new segment's header, so it survives a reboot).

Each segment starts with a header (magic "CDRS", version, sequence, records
dropped before it, CRC-32 of those), written and fsynced before any record.
Each record is a frame with a version, a length and a CRC (record.py).

Power cut: records are written as they come and fsynced in batches, so a
cut loses at most the records since the last fsync; any prefix of those may
have reached the flash, the last one torn.  On boot, open() reads the newest
segment frame by frame and cuts it after the last intact frame (torn_tails,
torn_bytes); a bad frame inside an older segment skips that segment's rest
(corrupt).  tests/unit/test_cdr_log.py cuts at every byte of a batch.
"""
import struct
from binascii import crc32

from firmware.compat import const, fsync_file, mkdirs
from firmware.config.store import FileFlash
from firmware.cdr import record as R

SEG_MAGIC = b"CDRS"
SEG_VERSION = const(1)
SEG_HEADER = const(17)             # magic 4, version 1, seq 4, dropped 4, crc 4
MIN_LOG_BYTES = const(16384)
MAX_LOG_BYTES = const(16777216)
MIN_SEGMENTS = const(2)
MAX_SEGMENTS = const(64)
MAX_BATCH = const(256)
MAX_SEGMENT_BYTES = const(262144)  # one segment is read whole (boot, show cdr): RAM bound
DEFAULT_LOG_BYTES = const(262144)  # about 2500 records of 100 bytes
DEFAULT_SEGMENTS = const(8)
DEFAULT_BATCH = const(8)


def seg_name(seq):
    return "cdr-%08d.log" % seq


def seg_seq(name):
    if len(name) != 16 or not name.startswith("cdr-") or not name.endswith(".log"):
        return None
    try:
        return int(name[4:12])
    except ValueError:
        return None


def seg_header(seq, dropped):
    body = SEG_MAGIC + struct.pack(">BII", SEG_VERSION, seq, dropped)
    return body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


def parse_seg_header(buf):
    """(seq, dropped) or None."""
    if len(buf) < SEG_HEADER or buf[:4] != SEG_MAGIC:
        return None
    body = bytes(buf[:SEG_HEADER - 4])
    if struct.unpack(">I", bytes(buf[SEG_HEADER - 4:SEG_HEADER]))[0] != crc32(body) & 0xFFFFFFFF:
        return None
    v, seq, dropped = struct.unpack(">BII", body[4:])
    if v != SEG_VERSION:
        return None
    return seq, dropped


def scan(buf, pos=SEG_HEADER):
    """(records, end of the last intact frame, error or None) of one segment."""
    out = []
    err = None
    while pos < len(buf):
        try:
            rec, nxt = R.decode(buf, pos)
        except R.RecordError as e:
            err = str(e)
            break
        out.append(rec)
        pos = nxt
    return out, pos, err


class SegmentFlash(FileFlash):
    """FileFlash plus appending to one open file and its fsync."""

    def __init__(self, path):
        mkdirs(path)            # the state directory may not exist yet (tools, tests)
        FileFlash.__init__(self, path)
        self._name = None
        self._f = None

    def append(self, name, data):
        if self._name != name:
            self.close()
            self._f = open(self._p(name), "ab")
            self._name = name
        self._f.write(data)
        self._f.flush()         # to the OS now; durable at fsync

    def fsync(self):
        if self._f is not None:
            fsync_file(self._f)

    def close(self):
        if self._f is not None:
            try:
                self._f.close()
            except OSError:
                pass
        self._f = None
        self._name = None

    def size(self, name):
        import os
        try:
            return os.stat(self._p(name))[6]
        except OSError:
            return None


class CdrLog:
    def __init__(self, flash, size=DEFAULT_LOG_BYTES, segments=DEFAULT_SEGMENTS,
                 batch=DEFAULT_BATCH):
        self.flash = flash
        self.configure(size, segments, batch)
        self.segs = []           # [seq, bytes, records] oldest first
        self.dropped = 0
        self.unsynced = 0
        self.counters = {"records": 0, "written": 0, "syncs": 0, "torn_tails": 0,
                         "torn_bytes": 0, "corrupt": 0, "write_errors": 0}

    def configure(self, size, segments, batch):
        self.size = max(MIN_LOG_BYTES, min(MAX_LOG_BYTES, size))
        segments = max(segments, -(-self.size // MAX_SEGMENT_BYTES))   # never a segment too big to read
        self.max_segments = max(MIN_SEGMENTS, min(MAX_SEGMENTS, segments))
        self.batch = max(1, min(MAX_BATCH, batch))
        self.seg_bytes = self.size // self.max_segments

    # -- boot
    def open(self):
        seqs = []
        for n in self.flash.listdir():
            q = seg_seq(n)
            if q is not None:
                seqs.append(q)
            elif n.endswith(".tmp"):
                self.flash.remove(n)          # a cut during a repair
        seqs.sort()
        self.segs = []
        self.dropped = 0
        limit = self.seg_bytes + R.MAX_PAYLOAD
        for i in range(len(seqs)):
            q = seqs[i]
            name = seg_name(q)
            buf = self.flash.read(name, limit) or b""
            h = parse_seg_header(buf)
            newest = i == len(seqs) - 1
            if h is None or h[0] != q:
                # a torn header: only the newest segment can have one (it is
                # fsynced before any record is written to it); else corrupt
                self.counters["torn_tails" if newest else "corrupt"] += 1
                self.flash.remove(name)
                continue
            recs, end, err = scan(buf)
            if err is not None:
                if newest:
                    self.counters["torn_tails"] += 1
                    self.counters["torn_bytes"] += len(buf) - end
                    self._cut(name, buf[:end])
                else:
                    self.counters["corrupt"] += 1
            self.dropped = h[1]
            self.segs.append([q, end, len(recs)])
        while len(self.segs) > self.max_segments:
            # a cut between a new segment's header and the removal: its
            # header already counts these records as dropped
            self.flash.remove(seg_name(self.segs.pop(0)[0]))
        self.flash.sync()
        self.counters["records"] = sum(s[2] for s in self.segs)

    def _cut(self, name, data):
        """Replace a segment by its intact prefix (write temp, fsync, rename)."""
        self.flash.close()
        self.flash.write(name + ".tmp", bytes(data))
        self.flash.rename(name + ".tmp", name)
        self.flash.sync()

    # -- writing
    def _new_segment(self):
        seq = self.segs[-1][0] + 1 if self.segs else 1
        dropped = self.dropped
        gone = 0
        if len(self.segs) >= self.max_segments:
            gone = self.segs[0][2]
            dropped += gone
        self.flash.close()
        self.flash.append(seg_name(seq), seg_header(seq, dropped))
        self.flash.fsync()
        self.flash.sync()
        self.segs.append([seq, SEG_HEADER, 0])
        if gone or len(self.segs) > self.max_segments:
            old = self.segs.pop(0)
            self.flash.remove(seg_name(old[0]))
            self.flash.sync()
            self.counters["records"] -= old[2]
        self.dropped = dropped

    def append(self, rec):
        """Write one record; False (counted) when the flash refused it."""
        frame = R.encode(rec)
        try:
            if not self.segs or self.segs[-1][1] + len(frame) > self.seg_bytes:
                if self.segs:
                    self.sync()
                self._new_segment()
            seg = self.segs[-1]
            self.flash.append(seg_name(seg[0]), frame)
        except OSError:
            self.counters["write_errors"] += 1
            self.flash.close()
            return False
        seg[1] += len(frame)
        seg[2] += 1
        self.counters["records"] += 1
        self.counters["written"] += 1
        self.unsynced += 1
        if self.unsynced >= self.batch:
            self.sync()
        return True

    def sync(self):
        if not self.unsynced:
            return
        try:
            self.flash.fsync()
        except OSError:
            self.counters["write_errors"] += 1
            return
        self.unsynced = 0
        self.counters["syncs"] += 1

    def close(self):
        self.sync()
        self.flash.close()

    # -- reading
    def records(self):
        """Every intact record, oldest first; reads one segment at a time."""
        limit = self.seg_bytes + R.MAX_PAYLOAD
        for seg in list(self.segs):
            buf = self.flash.read(seg_name(seg[0]), limit) or b""
            if parse_seg_header(buf) is None:
                continue
            recs, end, err = scan(buf[:seg[1]])
            for r in recs:
                yield r

    def bytes_used(self):
        return sum(s[1] for s in self.segs)

    def statistics(self):
        out = [("segments", "%d of %d, %d bytes each" % (len(self.segs), self.max_segments,
                                                         self.seg_bytes)),
               ("bytes used", "%d of %d" % (self.bytes_used(), self.size)),
               ("dropped (oldest, log full)", self.dropped),
               ("unsynced", "%d (batch %d)" % (self.unsynced, self.batch))]
        for k in sorted(self.counters):
            out.append((k.replace("_", " "), self.counters[k]))
        return out
