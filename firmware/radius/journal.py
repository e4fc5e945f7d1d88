"""The accounting backlog on flash: every record is written here before it is
sent and marked done when a server acknowledges it, so that a reboot (or a
power cut) loses nothing and the replay after it keeps the order.

One append-only file of lines, each `CRC32(8 hex) JSON\\n`:
    {"q": seq, "k": [session id, status, interim n], "a": attrs, "w": wall ms}
                                    a record queued (attrs without the delay)
    {"d": seq}                      acknowledged by a server (or dropped)
    {"o": session id, "c": cdr, "u": seconds}   a session started and not yet
                                    stopped, with its last known session time
    {"z": session id}               that session is stopped (its Stop is queued)
A line whose CRC does not match (a torn tail after a power cut) is skipped
and counted.  When nothing is pending and the file has grown past
COMPACT_BYTES, or it reaches MAX_FILE_BYTES, it is rewritten with only the
live lines (temporary file, fsync, rename: a cut leaves the old or the new).

Bounds: `limit` pending records (config backlog-size, at most MAX_BACKLOG).
When full: the oldest pending Interim-Update is dropped (the Stop that
follows carries the session time); failing that a new Start or
Interim-Update is refused; failing that (the backlog is all Starts and
Stops) a new Stop replaces the oldest pending Start.  Each drop is counted.
MAX_OPEN sessions are remembered for a reboot Stop; beyond, counted.
MAX_RECENT keys of acknowledged records refuse a second enqueue (dedupe by
session id + status type + interim number).
"""
import json
import os

from firmware.compat import const, fsync_file, fsync_dir
from firmware.radius.config import MAX_BACKLOG
MAX_OPEN = const(512)
MAX_RECENT = const(256)
COMPACT_BYTES = const(16384)
MAX_FILE_BYTES = const(1048576)
FILE = "radius-acct.log"

try:
    from binascii import crc32
except ImportError:             # pragma: no cover - both interpreters have it
    from zlib import crc32


def _line(obj):
    p = json.dumps(obj)
    return "%08x %s\n" % (crc32(p.encode()) & 0xFFFFFFFF, p)


def _parse(line):
    if len(line) < 10 or line[8] != " " or not line.endswith("\n"):
        return None
    p = line[9:-1]
    try:
        if int(line[:8], 16) != crc32(p.encode()) & 0xFFFFFFFF:
            return None
        return json.loads(p)
    except ValueError:
        return None


class Record:
    __slots__ = ("seq", "key", "attrs", "wall", "made_ms", "reloaded")

    def __init__(self, seq, key, attrs, wall, made_ms, reloaded=False):
        self.seq = seq
        self.key = key          # (session id, status, interim number)
        self.attrs = attrs
        self.wall = wall        # unix ms when made, None if the time was unknown
        self.made_ms = made_ms  # monotonic ms when made (or when loaded after a boot)
        self.reloaded = reloaded  # read from flash at boot: made before it

    @property
    def status(self):
        return self.key[1]


class Journal:
    def __init__(self, directory, limit=MAX_BACKLOG, log=None):
        self.dir = directory
        self.path = directory + "/" + FILE
        self.limit = min(limit, MAX_BACKLOG)
        self.log = log
        self.pending = []       # Records in send order
        self.open = {}          # session id -> [cdr dict, last session seconds]
        self.recent = []        # keys of acknowledged records (bounded)
        self.seq = 0
        self.size = 0
        self.dropped = 0        # records dropped by the bound
        self.duplicates = 0     # enqueues refused as already queued or sent
        self.torn = 0           # lines skipped at load (CRC)
        self.open_overflow = 0
        self.write_errors = 0

    # --- loading -----------------------------------------------------------
    def load(self, now_ms):
        """Read the file; returns the number of pending records found."""
        byseq = {}
        order = []
        try:
            f = open(self.path)
        except OSError:
            return 0
        with f:
            while True:
                line = f.readline()
                if not line:
                    break
                self.size += len(line)
                e = _parse(line)
                if e is None:
                    self.torn += 1
                    continue
                if "q" in e:
                    r = Record(e["q"], tuple(e["k"]), e["a"], e.get("w"), now_ms, True)
                    byseq[r.seq] = r
                    order.append(r.seq)
                    self.seq = max(self.seq, r.seq)
                elif "d" in e:
                    r = byseq.pop(e["d"], None)
                    if r is not None:
                        self._remember(r.key)
                elif "o" in e:
                    self.open[e["o"]] = [e["c"], e.get("u", 0)]
                elif "z" in e:
                    self.open.pop(e["z"], None)
        self.pending = [byseq[s] for s in order if s in byseq]
        if self.torn and self.log:
            self.log("warning", "radius: %d damaged line(s) skipped in %s (a cut during a write)"
                     % (self.torn, self.path))
        return len(self.pending)

    # --- writing -----------------------------------------------------------
    def _append(self, objs, sync=True):
        data = "".join(_line(o) for o in objs)
        try:
            with open(self.path, "a") as f:
                f.write(data)
                if sync:
                    fsync_file(f)
        except OSError as e:
            self.write_errors += 1
            if self.log:
                self.log("error", "radius: cannot write the accounting backlog %s: %s" % (self.path, e))
            return
        self.size += len(data)

    def _remember(self, key):
        self.recent.append(key)
        if len(self.recent) > MAX_RECENT:
            self.recent.pop(0)

    def known(self, key):
        if key in self.recent:
            return True
        for r in self.pending:
            if r.key == key:
                return True
        return False

    def add(self, key, attrs, wall, now_ms, extra=()):
        """Queue a record (written before it is sent); None when refused as a
        duplicate or by the bound, else the Record.  extra: journal lines
        written with it (session open/closed)."""
        key = tuple(key)
        if self.known(key):
            self.duplicates += 1
            return None
        out = list(extra)
        if len(self.pending) >= self.limit and not self._make_room(key[1], out):
            self.dropped += 1
            if extra:
                self._append(out)
            return None
        self.seq += 1
        r = Record(self.seq, key, attrs, wall, now_ms)
        out.append({"q": r.seq, "k": list(key), "a": attrs, "w": wall})
        self._append(out)
        self.pending.append(r)
        if self.size > MAX_FILE_BYTES:      # every server down for long: keep the file bounded
            self.compact()
        return r

    def _make_room(self, status, out):
        from firmware.radius.packet import INTERIM_UPDATE, START, STOP
        victim = None
        for r in self.pending:
            if r.status == INTERIM_UPDATE:
                victim = r
                break
        if victim is None and status == STOP:
            for r in self.pending:
                if r.status == START:
                    victim = r
                    break
        if victim is None:
            return False
        self.pending.remove(victim)
        self.dropped += 1
        out.append({"d": victim.seq})
        return True

    def done(self, rec):
        """rec was acknowledged: mark it, and compact when worth it."""
        if rec in self.pending:
            self.pending.remove(rec)
        self._remember(rec.key)
        # no fsync: a mark lost in a power cut only resends the record with its
        # Acct-Session-Id and status, which the server recognises; half the syncs
        self._append([{"d": rec.seq}], sync=False)
        if (not self.pending and self.size > COMPACT_BYTES) or self.size > MAX_FILE_BYTES:
            self.compact()

    def opened(self, sid, cdr):
        if sid in self.open:
            return []
        if len(self.open) >= MAX_OPEN:
            self.open_overflow += 1
            return []
        self.open[sid] = [cdr, 0]
        return [{"o": sid, "c": cdr, "u": 0}]

    def progressed(self, sid, seconds):
        """A session's time at an Interim-Update (the Stop after a crash uses it)."""
        o = self.open.get(sid)
        if o is None:
            return []
        o[1] = seconds
        return [{"o": sid, "c": o[0], "u": seconds}]

    def closed(self, sid):
        if self.open.pop(sid, None) is None:
            return []
        return [{"z": sid}]

    def compact(self):
        tmp = self.path + ".new"
        lines = [_line({"o": s, "c": o[0], "u": o[1]}) for s, o in self.open.items()]
        lines += [_line({"q": r.seq, "k": list(r.key), "a": r.attrs, "w": r.wall})
                  for r in self.pending]
        data = "".join(lines)
        try:
            with open(tmp, "w") as f:
                f.write(data)
                fsync_file(f)
            os.rename(tmp, self.path)
            fsync_dir(self.dir)
        except OSError as e:
            self.write_errors += 1
            if self.log:
                self.log("error", "radius: cannot compact the accounting backlog: %s" % e)
            return
        self.size = len(data)
