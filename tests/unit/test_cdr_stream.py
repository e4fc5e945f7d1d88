# portable: micropython
"""The call-event stream (firmware/cdr/stream.py) and the recorder
(firmware/cdr/recorder.py) on a small in-process appliance: each record is
started, answered at most once and ended exactly once; refusals are records;
dispositions follow the SIP status; the live table is bounded; a listener
that raises does not stop the others; times are ms since boot until the
clock is set, then UTC; the recorder writes ended records to flash and
queues an RFC 5424 summary for each syslog host."""
from firmware.cdr import stream as S
from firmware.cdr.recorder import Recorder, summary_line
from firmware.compat import Random
from firmware.log import Log
from firmware.sched import Scheduler, VirtualClock
from firmware.timeofday import TimeOfDay
from firmware.voice.control import LOCAL, PEER
from tests.portable import tmpdir, rmtree, raises


class _Control:
    state = LOCAL


class _App:
    def __init__(self, state_dir=None):
        self.clock = VirtualClock()
        self.log = Log(self.clock)
        self.sched = Scheduler(self.clock, log=self.log.write)
        self.time = TimeOfDay(self.clock)
        self.rng = Random(77)
        self.control = _Control()
        self.booted_at = 0
        self.hostname = "br1"
        self.state_dir = state_dir
        self.calls = S.CallEvents(self)


class _Listener:
    def __init__(self):
        self.seen = []

    def call_started(self, rec):
        self.seen.append(("started", rec.id))

    def call_answered(self, rec):
        self.seen.append(("answered", rec.id))

    def call_ended(self, rec):
        self.seen.append(("ended", rec.id))


class _Events(_Listener):
    def call_event(self, rec, kind):
        self.seen.append((kind, rec.id))


class _Broken:
    def call_started(self, rec):
        raise RuntimeError("boom")


def test_a_call_is_started_answered_and_ended_once():
    app = _App()
    l = _Listener()
    app.calls.subscribe(_Broken())
    app.calls.subscribe(l)
    app.clock.advance_to(1000)
    rec = app.calls.setup("callserver", "2001", "2002", ("station", "s2001"), ("station", "s2002"),
                          "cid-1")
    assert rec.start == 1000 and not rec.clock_set and rec.mode == "survivable"
    assert len(rec.id) == 16 and app.calls.counters["listener_errors"] == 1
    app.clock.advance_to(3000)
    app.calls.answered(rec, "cid-2")
    app.calls.answered(rec, "cid-3")           # once only
    app.clock.advance_to(13500)
    app.calls.ended(rec, 0, "caller bye", "caller")
    app.calls.ended(rec, 500, "again", "system")   # once only
    d = rec.as_dict()
    assert d["answer"] == 3000 and d["end"] == 13500 and d["billsec"] == 10 and d["duration"] == 12
    assert d["disposition"] == "answered" and d["sip_status"] == 200 and d["cause"] == "caller bye"
    assert d["call_ids"] == ["cid-1", "cid-2"]
    assert l.seen == [("started", rec.id), ("answered", rec.id), ("ended", rec.id)]
    assert app.calls.live == []


def test_refusals_and_dispositions_from_the_status():
    app = _App()
    app.control.state = PEER
    l = _Events()
    app.calls.subscribe(l)
    r = app.calls.rejected("gateway", "1001", "1004", 486, "", ("peer", "hq"), ("fxs", 4))
    assert r.disposition == "busy" and r.cause == "Busy Here" and r.mode == "gateway"
    assert l.seen == [("started", r.id), ("rejected", r.id), ("ended", r.id)]
    r = app.calls.rejected("callserver", "2001", "2999", 404)
    assert r.disposition == "rejected" and r.cause == "Not Found" and r.released_by == "system"
    for status, disp in ((486, "busy"), (600, "busy"), (480, "no-answer"), (408, "no-answer"),
                         (487, "cancelled"), (404, "rejected"), (503, "failed"), (500, "failed")):
        rec = app.calls.setup("callserver", "1", "2")
        app.calls.ended(rec, status)
        assert rec.disposition == disp, (status, rec.disposition)


def test_redirects_keep_the_first_number_dialled():
    app = _App()
    rec = app.calls.setup("callserver", "2001", "2004")
    app.calls.redirected(rec, "forwarded", "2003")
    app.calls.redirected(rec, "transferred", "2005")
    app.calls.redirected(rec, "sideways", "9")        # not a redirect kind: ignored
    assert rec.original_called == "2004" and rec.called == "2005" and rec.redirect == "transferred"


def test_the_live_table_is_bounded_the_oldest_is_ended_as_failed():
    app = _App()
    l = _Listener()
    app.calls.subscribe(l)
    first = app.calls.setup("proxy", "1", "2")
    for i in range(S.MAX_LIVE_CALLS):
        app.calls.setup("proxy", "1", str(i))
    assert len(app.calls.live) == S.MAX_LIVE_CALLS and app.calls.counters["table_full"] == 1
    assert first.disposition == "failed" and first.cause == "record table full"
    assert ("ended", first.id) in l.seen


def test_shutdown_ends_every_live_call():
    app = _App()
    a = app.calls.setup("callserver", "1", "2")
    b = app.calls.setup("callserver", "1", "3")
    app.calls.answered(b)
    app.calls.end_all("appliance shutdown")
    assert app.calls.live == []
    assert (a.disposition, a.sip_status, b.disposition, b.sip_status) == (
        "failed", 503, "answered", 200)
    assert a.cause == "appliance shutdown" and b.released_by == "system"


def test_listeners_are_bounded():
    app = _App()
    for i in range(S.MAX_LISTENERS):
        app.calls.subscribe(_Listener())
    e = raises(ValueError, app.calls.subscribe, _Listener())
    assert "at most %d listeners" % S.MAX_LISTENERS in str(e)


def test_utc_once_the_clock_is_set_and_one_time_base_per_record():
    app = _App()
    app.clock.advance_to(5000)
    before = app.calls.setup("callserver", "1", "2")
    app.time.set(1796214645000, 6000)               # SNTP answers during the call
    app.clock.advance_to(9000)
    app.calls.ended(before, 486)
    assert not before.clock_set and before.end == 9000
    after = app.calls.setup("callserver", "1", "2")
    assert after.clock_set and after.start == 1796214645000 + 3000


def test_the_recorder_writes_ended_records_and_syslog_summaries():
    d = tmpdir("cdrrec")
    try:
        app = _App(d)
        rec = Recorder(app)
        rec.configure(16384, 4, 2, 1000, True)

        class _Syslog:
            hosts = [("192.0.2.5", 514, "local0", "info")]
            sent = []

            def sink(self, ms, level, text):
                self.sent.append((level, text))
        app.syslog = _Syslog()
        r = app.calls.setup("callserver", "2001", "2002", ("station", "s2001"), ("fxs", 1))
        app.calls.media(r, "PCMU", 500, 499, 1)
        app.calls.answered(r)
        app.clock.advance_to(2500)
        app.calls.ended(r, 0, "callee bye", "callee")
        assert [x.id for x in rec.log.records()] == [r.id]
        assert rec.log.unsynced == 1
        app.sched.run(until=4000)                    # the batch interval fsyncs it
        assert rec.log.unsynced == 0
        level, text = app.syslog.sent[0]
        assert level == "notice" and text == summary_line(r)
        assert text.startswith("CDR id=%s calling=2001 called=2002 original=- src=station:s2001 "
                               "dst=fxs:1 mode=survivable disposition=answered status=200 "
                               "duration=2 billsec=2 cause=callee_bye released-by=callee "
                               "codec=PCMU rtp-sent=500 rtp-received=499 rtp-lost=1" % r.id), text
        rec.close()
    finally:
        rmtree(d)
