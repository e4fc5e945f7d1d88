"""`system accounting cdr` statements: the CDR log on flash.

    set system accounting cdr log-size 256        KB of flash for the log (16..16384)
    set system accounting cdr segments 8          files it rotates over (2..64; each at most 256 KB)
    set system accounting cdr batch-size 8        records per fsync (1..256)
    set system accounting cdr batch-interval 5    seconds a record waits at most for its fsync
    set system accounting cdr syslog              a summary of each record to the syslog hosts
    set system accounting cdr disable             record nothing

Recording is on by default (under the state directory, --state).  A larger
batch spares the flash; a power cut loses at most the records of one
unsynced batch (docs/cdr.md).
"""
from firmware.config import schema as S
from firmware.cdr import log as L

BASE = "system accounting cdr "

S.register("system", S.Container("accounting", "Accounting of calls"))
S.register("system accounting", S.Container("cdr", "Call detail records on flash", children=(
    S.Leaf("log-size", S.Integer(L.MIN_LOG_BYTES // 1024, L.MAX_LOG_BYTES // 1024, "KB"),
           default=L.DEFAULT_LOG_BYTES // 1024,
           help="Flash for the CDR log; when full, the oldest segment is dropped (counted)"),
    S.Leaf("segments", S.Integer(L.MIN_SEGMENTS, L.MAX_SEGMENTS), default=L.DEFAULT_SEGMENTS,
           help="Files the log rotates over; a full log drops one segment's records at once"),
    S.Leaf("batch-size", S.Integer(1, L.MAX_BATCH, "records"), default=L.DEFAULT_BATCH,
           help="Records written before an fsync; a power cut loses at most one unsynced batch"),
    S.Leaf("batch-interval", S.Integer(1, 3600, "seconds"), default=5,
           help="Longest time a written record waits for its fsync"),
    S.Leaf("syslog", S.Flag(),
           help="Send a summary of every CDR to the system syslog hosts (RFC 5424 over UDP)"),
    S.Leaf("disable", S.Flag(), help="Record no calls"),
)))


def check(app, old, new):
    size, n = new.get(BASE + "log-size") * 1024, new.get(BASE + "segments")
    if size > n * L.MAX_SEGMENT_BYTES:
        raise S.ConfigError(BASE + "segments", n, "log-size %d KB needs at least %d segments "
                            "(a segment is at most %d KB: it is read whole)" % (
                                size // 1024, -(-size // L.MAX_SEGMENT_BYTES),
                                L.MAX_SEGMENT_BYTES // 1024))
    if new.get(BASE + "syslog") and not new.entries("system syslog host"):
        raise S.ConfigError(BASE + "syslog", None, "needs a receiver: set system syslog host ADDRESS")


def apply(app, old, new):
    if new.get(BASE + "disable"):
        rec = getattr(app, "cdr", None)
        if rec is not None:
            rec.close()
        app.cdr = None
        return
    if getattr(app, "cdr", None) is None:
        if not getattr(app, "state_dir", None) or not hasattr(app, "calls"):
            return
        from firmware.cdr.recorder import Recorder
        from firmware.cdr import commands
        try:
            app.cdr = Recorder(app)
        except OSError as e:
            app.cdr = None
            app.log.write("error", "CDR log in %s/cdr cannot be opened: %s" % (app.state_dir, e))
            return
        commands.register_commands(app.commands)
    app.cdr.configure(new.get(BASE + "log-size") * 1024, new.get(BASE + "segments"),
                      new.get(BASE + "batch-size"), new.get(BASE + "batch-interval") * 1000,
                      bool(new.get(BASE + "syslog")))


S.on_commit("cdr", apply, check=check)
