"""The configuration on flash: one file per committed generation, each
self-checking, so that a power cut at any byte keeps the last commit.

Layout in <state>/config/:

    c.<GEN>        one commit: the configuration as `set` lines between a
                   header and a CRC trailer; GEN counts up from 1
    c.<GEN>.tmp    a commit being written (ignored and removed at load)

File format (UTF-8 text, at most MAX_CONFIG_BYTES):

    #gen=7 ms=120345 wall=1700000000 user=root confirm=0
    #comment=free text (optional)
    set system host-name br1
    ...
    #end len=312 crc=1a2b3c4d

`len` is the byte count before the trailer line, `crc` the CRC-32
(binascii.crc32) of those bytes.  A commit writes c.GEN.tmp, fsyncs it,
renames it to c.GEN (atomic on POSIX and littlefs), fsyncs the directory,
then removes generations older than the newest MAX_ROLLBACK + 1.  At load the
newest file whose trailer, length, CRC and header generation all check out is
the committed configuration, the next valid ones are rollback 1, 2, ...  So a
cut before the rename leaves only a .tmp (ignored); a cut after it, even one
that left the renamed file torn because the data never reached the flash,
fails the CRC and the previous generation is used; the old generations are
removed only after the new one is complete.

Every flash access goes through a small file API (FileFlash here, an
in-memory one in the tests that can cut power after any byte).
"""
import binascii

from firmware.compat import const, fsync_file, fsync_dir
from firmware.config.schema import ConfigError

MAX_CONFIG_BYTES = const(98304)   # one generation file, header and trailer included:
                                  # 256 stations with HA1 credentials take about 55 KB
MAX_ROLLBACK = const(10)          # rollback 1..MAX_ROLLBACK are kept (0 = committed)
PREFIX = "c."
TMP = ".tmp"


class FileFlash:
    """The file API over a directory; the same on both interpreters."""

    def __init__(self, path):
        self.path = path
        _mkdir(path)

    def _p(self, name):
        return self.path + "/" + name

    def listdir(self):
        import os
        return os.listdir(self.path)

    def read(self, name, limit):
        """Up to limit + 1 bytes of a file, or None if it cannot be read.
        Sized by stat: read(limit + 1) would make MicroPython allocate the
        whole bound (96 KB) for every generation it looks at."""
        import os
        try:
            size = os.stat(self._p(name))[6]
            with open(self._p(name), "rb") as f:
                return f.read(min(size, limit) + 1)
        except OSError:
            return None

    def write(self, name, data):
        """Create name with data and make it durable."""
        with open(self._p(name), "wb") as f:
            f.write(data)
            fsync_file(f)

    def rename(self, old, new):
        import os
        os.rename(self._p(old), self._p(new))

    def remove(self, name):
        import os
        try:
            os.remove(self._p(name))
        except OSError:
            pass

    def sync(self):
        fsync_dir(self.path)


def _mkdir(path):
    import os
    try:
        os.stat(path)
    except OSError:
        os.mkdir(path)


def encode(gen, text, meta):
    """The bytes of one generation file."""
    head = "#gen=%d ms=%d wall=%d user=%s confirm=%d sync=%d via=%s\n" % (
        gen, meta.get("ms", 0), meta.get("wall", 0), meta.get("user", "root"),
        meta.get("confirm", 0), 1 if meta.get("sync") else 0, meta.get("via") or "console")
    comment = meta.get("comment")
    if comment:
        head += "#comment=%s\n" % comment.replace("\n", " ")[:200]
    body = (head + text + ("\n" if text and not text.endswith("\n") else "")).encode()
    crc = binascii.crc32(body) & 0xFFFFFFFF
    return body + ("#end len=%d crc=%08x\n" % (len(body), crc)).encode()


def decode(data, gen=None):
    """(meta, text) of a generation file's bytes, or None if torn or corrupt."""
    return decode_checked(data, gen)[0]


def decode_checked(data, gen=None):
    """((meta, text), None) of a generation file's bytes, or (None, reason)
    when it is torn or corrupt; reason is a short text for the log."""
    if not data:
        return None, "empty file"
    if not data.endswith(b"\n"):
        return None, "torn: no end line"
    cut = data.rfind(b"#end ", 0, len(data) - 1)
    if cut <= 0 or data[cut - 1] != 10:
        return None, "torn: no end line"
    body = data[:cut]
    expect = "#end len=%d crc=%08x\n" % (cut, binascii.crc32(body) & 0xFFFFFFFF)
    if data[cut:] != expect.encode():
        return None, "CRC or length mismatch"
    try:
        text = body.decode()
    except UnicodeError:
        return None, "not UTF-8"
    lines = text.split("\n")
    meta = {}
    for kv in lines[0][1:].split() if lines[0].startswith("#gen=") else ():
        k, _, v = kv.partition("=")
        meta[k] = v if k in ("user", "via") else _int(v)
    if "gen" not in meta:
        return None, "no generation header"
    if gen is not None and meta["gen"] != gen:
        return None, "header names generation %d" % meta["gen"]
    rest = lines[1:]
    if rest and rest[0].startswith("#comment="):
        meta["comment"] = rest[0][9:]
        rest = rest[1:]
    return (meta, "\n".join(rest)), None


def _int(v):
    try:
        return int(v)
    except ValueError:
        return 0


class Store:
    def __init__(self, flash, max_rollback=MAX_ROLLBACK, max_bytes=MAX_CONFIG_BYTES):
        self.flash = flash
        self.max_rollback = max_rollback
        self.max_bytes = max_bytes
        self.writes = 0          # generation files written (flash wear counter)

    def _gens(self):
        """(generation numbers of c.N files newest first, leftover temp names)."""
        gens = []
        tmps = []
        for name in self.flash.listdir():
            if not name.startswith(PREFIX):
                continue
            if name.endswith(TMP):
                tmps.append(name)
                continue
            n = name[len(PREFIX):]
            if n.isdigit():
                gens.append(int(n))
        gens.sort()
        gens.reverse()
        return gens, tmps

    def read(self, gen):
        return self.read_checked(gen)[0]

    def read_checked(self, gen):
        """((meta, text), None), or (None, why generation gen is unusable)."""
        data = self.flash.read(PREFIX + str(gen), self.max_bytes)
        if data is None:
            return None, "unreadable"
        if len(data) > self.max_bytes:
            return None, "larger than %d bytes" % self.max_bytes
        return decode_checked(data, gen)

    def latest_checked(self):
        """((gen, meta, text) of the newest valid generation or None,
        [(gen, reason)] of the unusable generation files newer than it, newest
        first).  With generation files present but none valid, the list holds
        every one looked at (at most MAX_ROLLBACK + 1 of them)."""
        skipped = []
        for gen in self._gens()[0]:
            rec, why = self.read_checked(gen)
            if rec is not None:
                return (gen, rec[0], rec[1]), skipped
            skipped.append((gen, why))
            if len(skipped) > self.max_rollback:
                break
        return None, skipped

    def records(self, limit=None):
        """Valid generations newest first: [(gen, meta, text)], at most
        limit (default: all kept ones, MAX_ROLLBACK + 1)."""
        limit = self.max_rollback + 1 if limit is None else limit
        out = []
        for gen in self._gens()[0]:
            if len(out) >= limit:
                break
            rec = self.read(gen)
            if rec is not None:
                out.append((gen, rec[0], rec[1]))
        return out

    def latest(self):
        r = self.records(1)
        return r[0] if r else None

    def rollback(self, n):
        """(gen, meta, text) of rollback n (0 = committed) or None."""
        if not 0 <= n <= self.max_rollback:
            return None
        r = self.records(n + 1)
        return r[n] if len(r) > n else None

    def save(self, text, meta):
        """Write a new generation; returns its number.  ConfigError if too big;
        OSError from the flash passes through (nothing old is touched)."""
        gens, tmps = self._gens()
        gen = (gens[0] if gens else 0) + 1
        data = encode(gen, text, meta)
        if len(data) > self.max_bytes:
            raise ConfigError("", None, "configuration is %d bytes, more than the %d bytes flash allows" % (
                len(data), self.max_bytes))
        for t in tmps:
            self.flash.remove(t)
        tmp = PREFIX + str(gen) + TMP
        self.flash.write(tmp, data)
        self.flash.rename(tmp, PREFIX + str(gen))
        self.flash.sync()
        self.writes += 1
        self._prune([gen] + gens)
        return gen

    def _prune(self, gens):
        """Keep the newest MAX_ROLLBACK + 1 valid generations; drop the rest."""
        valid = 0
        for g in gens:
            if valid > self.max_rollback:
                self.flash.remove(PREFIX + str(g))
            elif self.read(g) is not None:
                valid += 1
            elif g != gens[0]:
                self.flash.remove(PREFIX + str(g))   # torn by an earlier power cut

    def cleanup(self):
        """At boot: remove temp files left by a cut."""
        for t in self._gens()[1]:
            self.flash.remove(t)
