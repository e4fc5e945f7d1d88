"""The CDR recorder: listens to the call-event stream and writes every ended
call's record to the log on flash (log.py); optionally sends a summary of
each to the remote syslog hosts (RFC 5424 over UDP, firmware/syslog.py).

    app.cdr = Recorder(app)          # built by the `system accounting cdr` commit hook
    app.cdr.configure(size, segments, batch, interval_ms, syslog)
    app.cdr.log                      # the CdrLog

A record waits at most interval_ms unsynced: the first record of a batch
wakes the sync task, which fsyncs after interval_ms unless the batch filled
first.
"""
from firmware.compat import const
from firmware.cdr.log import CdrLog, SegmentFlash

SYSLOG_LEVEL = "notice"
DEFAULT_INTERVAL_MS = const(5000)


def summary_line(rec, stamp=None):
    """One line: the syslog message of a CDR (key=value, no spaces in values)."""
    def v(x):
        x = "" if x is None else str(x)
        return x.replace(" ", "_") or "-"
    return ("CDR id=%s calling=%s called=%s original=%s src=%s:%s dst=%s:%s mode=%s "
            "disposition=%s status=%d duration=%d billsec=%d cause=%s released-by=%s%s" % (
                rec.id, v(rec.calling), v(rec.called), v(rec.original_called),
                v(rec.src_kind), v(rec.src), v(rec.dst_kind), v(rec.dst), rec.mode,
                rec.disposition, rec.sip_status, rec.duration(), rec.billsec(), v(rec.cause),
                v(rec.released_by),
                (" codec=%s rtp-sent=%d rtp-received=%d rtp-lost=%d" % (
                    rec.codec, rec.rtp_sent, rec.rtp_received, rec.rtp_lost))
                if rec.codec else ""))


class Recorder:
    def __init__(self, app):
        self.app = app
        self.log = CdrLog(SegmentFlash(app.state_dir + "/cdr"))
        self.log.open()
        self.interval_ms = DEFAULT_INTERVAL_MS
        self.syslog = False
        self.syslog_sent = 0
        self.syslog_skipped = 0      # syslog on, but no receiver configured
        self.task = None
        self.event = None
        app.calls.subscribe(self)
        sched = getattr(app, "sched", None)
        if sched is not None:
            from firmware.sched import Event
            self.event = Event(sched)
            self.task = sched.spawn(self._syncer, "cdr-sync")

    def configure(self, size, segments, batch, interval_ms, syslog):
        self.log.configure(size, segments, batch)
        self.interval_ms = interval_ms
        self.syslog = syslog

    def call_ended(self, rec):
        if not self.log.append(rec):
            self.app.log.write("error", "CDR %s not written: flash write failed" % rec.id)
        if self.log.unsynced and self.event is not None:
            self.event.set()
        if self.syslog:
            sl = getattr(self.app, "syslog", None)
            if sl is None or not sl.hosts:
                self.syslog_skipped += 1
            else:
                sl.sink(self.app.clock.now(), SYSLOG_LEVEL, summary_line(rec))
                self.syslog_sent += 1

    async def _syncer(self):
        while True:
            if not self.log.unsynced:
                self.event.clear()
                await self.event.wait()
            await self.app.sched.sleep(self.interval_ms)
            self.log.sync()

    def close(self):
        self.app.calls.unsubscribe(self)
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self.log.close()

    def statistics(self):
        out = self.log.statistics()
        out.append(("syslog summaries", "%s: sent %d, no receiver %d" % (
            "on" if self.syslog else "off", self.syslog_sent, self.syslog_skipped)))
        return out
