"""The one call-event stream (`app.calls`): every producer of calls (the
call server's B2BUA, the analog gateway in gateway mode, the outbound proxy)
reports its calls here, and every consumer (the CDR recorder, RADIUS
accounting, syslog) subscribes.  docs/cdr.md is the reference.

Producers (one line each at the place the thing happens):
    rec = app.calls.setup(source, calling, called, src, dst, call_id=None)
                                     src/dst: (kind, name), kind in record.KINDS
    app.calls.ringing(rec)
    app.calls.answered(rec, call_id=None)
    app.calls.redirected(rec, how, new_called)   how: forwarded, transferred, parked
    app.calls.media(rec, codec, sent, received, lost)
    app.calls.ended(rec, status=0, cause="", side="", disposition=None)
    app.calls.rejected(source, calling, called, status, cause, src, dst, call_id=None)
                                     refused before the call existed (403, 404, 486, 503)
Consumers:
    app.calls.subscribe(listener)    listener.call_started(rec), .call_answered(rec),
                                     .call_ended(rec); optional .call_event(rec, kind)
                                     for ringing/forwarded/transferred/parked/rejected

Every record is ended exactly once: ended() on an ended record does nothing
(app.close() ends the live ones: end_all, "appliance shutdown"),
and a rejected call is started and ended at once.  A listener that raises
is logged and the others still run.
"""
from firmware.compat import const
from firmware.cdr.record import CallRecord, REDIRECTS

MAX_LISTENERS = const(8)      # recorder, RADIUS, syslog, ...; beyond: subscribe raises
MAX_LIVE_CALLS = const(256)   # records of calls not yet ended; beyond: the oldest is
                              # ended as failed ("record table full") and counted

# SIP status -> disposition of a call that was never answered
_BUSY = (486, 600)
_NO_ANSWER = (408, 480)
_CANCELLED = (487,)
# the cause of a refusal given without words
REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 480: "Temporarily Unavailable",
           484: "Address Incomplete", 486: "Busy Here", 488: "Not Acceptable Here",
           500: "Server Internal Error", 503: "Service Unavailable", 603: "Decline"}


def disposition_for(status, answered):
    if answered:
        return "answered"
    if status in _BUSY:
        return "busy"
    if status in _NO_ANSWER:
        return "no-answer"
    if status in _CANCELLED:
        return "cancelled"
    if status in (403, 404, 484, 603):
        return "rejected"
    return "failed"


class CallEvents:
    def __init__(self, app):
        self.app = app
        self.listeners = []
        self.live = []            # records not yet ended, oldest first
        self.counters = {"started": 0, "answered": 0, "ended": 0, "rejected": 0,
                         "table_full": 0, "listener_errors": 0}

    # -- consumers
    def subscribe(self, listener):
        if listener in self.listeners:
            return
        if len(self.listeners) >= MAX_LISTENERS:
            raise ValueError("call-event stream: at most %d listeners" % MAX_LISTENERS)
        self.listeners.append(listener)

    def unsubscribe(self, listener):
        if listener in self.listeners:
            self.listeners.remove(listener)

    def _tell(self, method, rec, kind=None):
        for l in list(self.listeners):
            fn = getattr(l, method, None)
            if fn is None:
                continue
            try:
                if kind is None:
                    fn(rec)
                else:
                    fn(rec, kind)
            except Exception as e:
                self.counters["listener_errors"] += 1
                self.app.log.write("error", "call-event listener %s: %s: %s" % (
                    method, type(e).__name__, e))

    # -- time: UTC once the clock is set, else ms since boot (flagged)
    def _now(self, rec=None):
        t = self.app.time.now()
        if rec is not None and rec.start is not None and rec.clock_set != (t is not None):
            # the clock was set (or lost) during the call: keep one time base
            # per record, from the monotonic clock
            return rec.start + self.app.clock.now() - rec.mono_start
        if t is not None:
            return t
        return self.app.clock.now() - (self.app.booted_at or 0)

    def _mode(self):
        from firmware.voice.control import PEER
        return "gateway" if self.app.control.state == PEER else "survivable"

    # -- producers
    def setup(self, source, calling, called, src=None, dst=None, call_id=None):
        rid = self.app.rng.token(8)
        rec = CallRecord(rid, source, self._mode())
        rec.mono_start = self.app.clock.now()
        rec.clock_set = self.app.time.now() is not None
        rec.start = self._now()
        rec.calling = calling or ""
        rec.called = called or ""
        if src is not None:
            rec.src_kind, rec.src = src[0], str(src[1])
        if dst is not None:
            rec.dst_kind, rec.dst = dst[0], str(dst[1])
        rec.add_call_id(call_id)
        if len(self.live) >= MAX_LIVE_CALLS:
            self.counters["table_full"] += 1
            self.ended(self.live[0], 500, "record table full", "system", "failed")
        self.live.append(rec)
        self.counters["started"] += 1
        self._tell("call_started", rec)
        return rec

    def ringing(self, rec):
        if rec is not None and rec.end is None:
            self._tell("call_event", rec, "ringing")

    def answered(self, rec, call_id=None, dst=None, at=None):
        """at: the monotonic instant of the answer, when reported late."""
        if rec is None or rec.end is not None or rec.answer is not None:
            return
        rec.add_call_id(call_id)
        if dst is not None:
            rec.dst_kind, rec.dst = dst[0], str(dst[1])
        rec.answer = self._now(rec)
        if at is not None:
            rec.answer -= max(0, self.app.clock.now() - at)
        self.counters["answered"] += 1
        self._tell("call_answered", rec)

    def redirected(self, rec, how, new_called):
        """The call goes on to another number: the first number dialled stays
        as original_called."""
        if rec is None or rec.end is not None or how not in REDIRECTS:
            return
        if not rec.original_called:
            rec.original_called = rec.called
        rec.called = new_called or ""
        rec.redirect = how
        self._tell("call_event", rec, how)

    def media(self, rec, codec, sent, received, lost):
        if rec is None:
            return
        rec.codec = codec or rec.codec
        rec.rtp_sent, rec.rtp_received, rec.rtp_lost = sent, received, lost

    def ended(self, rec, status=0, cause="", side="", disposition=None):
        if rec is None or rec.end is not None:
            return
        rec.end = self._now(rec)
        if rec.answer is not None and not status:
            status = 200
        rec.sip_status = status
        rec.cause = cause or ""
        rec.released_by = side or ""
        rec.disposition = disposition or disposition_for(status, rec.answer is not None)
        if rec in self.live:
            self.live.remove(rec)
        self.counters["ended"] += 1
        self._tell("call_ended", rec)

    def rejected(self, source, calling, called, status, cause="", src=None, dst=None,
                 call_id=None):
        rec = self.setup(source, calling, called, src, dst, call_id)
        self.counters["rejected"] += 1
        self._tell("call_event", rec, "rejected")
        # busy stays busy (a station in a call); every other refusal is "rejected"
        self.ended(rec, status, cause or REASONS.get(status, str(status)), "system",
                   "busy" if status in _BUSY else "rejected")
        return rec

    def end_all(self, cause):
        """Shutdown: every live call ends now, released by the system."""
        for rec in list(self.live):
            self.ended(rec, 0 if rec.answer is not None else 503, cause, "system")

    def statistics(self):
        out = [("calls live", len(self.live)), ("listeners", len(self.listeners))]
        for k in sorted(self.counters):
            out.append((k.replace("_", " "), self.counters[k]))
        return out
