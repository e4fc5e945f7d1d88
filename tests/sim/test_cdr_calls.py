"""Call accounting on the virtual clock: every call attempt the appliance
sees ends as one CDR on flash, with the disposition, SIP status, release
cause and side, the ends, the mode in control, and the media counters where
the appliance carries the RTP.  SIP to SIP (answered, busy, unknown,
unavailable, forwarded, cancelled, no answer), analog stations and lines
through the local call server (survivable mode), and the same ports in
gateway mode through the simulated peer call server.  The console's
`show cdr` filters and summary, tools/cdr on the state directory, and the
records on flash across a restart.  (The syslog summaries:
tests/unit/test_cdr_stream.py, no socket here.)"""
from tests.sim.cs_world import CsWorld, B
from tests.sim.analog_world import World
from tools import cdr as T


class Seen:
    """A listener on the call-event stream: every callback, in order."""

    def __init__(self):
        self.log = []
        self.ended = []

    def call_started(self, rec):
        self.log.append(("started", rec.id))

    def call_answered(self, rec):
        self.log.append(("answered", rec.id))

    def call_event(self, rec, kind):
        self.log.append((kind, rec.id))

    def call_ended(self, rec):
        self.log.append(("ended", rec.id))
        self.ended.append(rec.as_dict())


def _on_flash(app):
    return [r.as_dict() for r in app.cdr.log.records()]


def _check_stream(seen):
    """Each record: started first, answered at most once, ended exactly once and last."""
    ids = []
    for kind, rid in seen.log:
        if rid not in ids:
            ids.append(rid)
    for rid in ids:
        kinds = [k for k, r in seen.log if r == rid]
        assert kinds[0] == "started" and kinds[-1] == "ended", kinds
        assert kinds.count("ended") == 1 and kinds.count("answered") <= 1, kinds


def _connect(w, a, b_ext):
    c = w.phones[a].call(b_ext)
    w.run_until(lambda: c.state == "connected", 5000)
    return c


def test_sip_to_sip_calls_give_one_record_per_attempt_with_each_disposition(tmp_path):
    w = CsWorld(tmp_path, seed=151, sip_exts=("2001", "2002", "2003", "2004"),
                extra=(B + "station s2002 call-waiting disable",
                       B + "station s2004 forward-unreachable 2003",
                       B + "call-server no-answer-timeout 20"))
    seen = Seen()
    w.app.calls.subscribe(seen)
    try:
        w.register_all(("2001", "2002", "2003"))
        c = _connect(w, "2001", "2002")                      # answered
        t_answer = w.now()
        busy = w.phones["2003"].call("2002")                 # 486: refused before a call exists
        w.run_until(lambda: busy.state == "terminated", 3000)
        unknown = w.phones["2003"].call("2999")              # 404
        w.run_until(lambda: unknown.state == "terminated", 3000)
        w.run(7000)
        t_bye = w.now()
        w.phones["2002"].hangup([x for x in w.phones["2002"].calls if x.role == "uas"][0])
        w.run(2000)
        fwd = _connect(w, "2001", "2004")                    # forward-unreachable to 2003
        w.run(3000)
        w.phones["2001"].hangup(fwd)
        w.run(2000)
        w.phones["2002"].ring_ms = None
        cancel = w.phones["2001"].call("2002")               # the caller gives up
        w.run_until(lambda: cancel.state == "ringing", 3000)
        w.phones["2001"].hangup(cancel)
        w.run_until(lambda: cancel.state == "terminated", 3000)
        w.run(1000)
        ring = w.phones["2001"].call("2002")                 # rings out: 480 after 20 s
        w.run_until(lambda: ring.state == "terminated", 25000)
        w.phones["2003"].unregister()
        w.run_until(lambda: w.cs.registrar.count == 2, 3000)
        gone = w.phones["2001"].call("2003")                 # 480: nobody registered
        w.run_until(lambda: gone.state == "terminated", 3000)
        w.phones["2002"].busy = True
        w.phones["2002"].busy_status = 503                   # the phone itself fails
        bad = w.phones["2001"].call("2002")
        w.run_until(lambda: bad.state == "terminated", 3000)
        w.run(6000)                                          # past the batch interval: fsynced

        got = seen.ended
        assert [(r["calling"], r["called"], r["disposition"], r["sip_status"]) for r in got] == [
            ("2003", "2002", "busy", 486), ("2003", "2999", "rejected", 404),
            ("2001", "2002", "answered", 200), ("2001", "2003", "answered", 200),
            ("2001", "2002", "cancelled", 487), ("2001", "2002", "no-answer", 480),
            ("2001", "2003", "rejected", 480), ("2001", "2002", "failed", 503)], got
        ans = got[2]
        assert ans["src_kind"] == "station" and ans["src"] == "s2001", ans
        assert ans["dst_kind"] == "station" and ans["dst"] == "s2002", ans
        assert ans["mode"] == "survivable" and not ans["clock_set"]
        talk = ans["end"] - ans["answer"]
        assert 0 <= talk - (t_bye - t_answer) < 200 and ans["billsec"] == talk // 1000, (ans, t_bye - t_answer)
        assert ans["duration"] == (ans["end"] - ans["start"]) // 1000 >= ans["billsec"], ans
        assert ans["released_by"] == "callee" and ans["cause"].startswith("callee"), ans
        assert len(ans["call_ids"]) == 2 and c.call_id in ans["call_ids"], (ans, c.call_id)
        fw = got[3]
        assert fw["original_called"] == "2004" and fw["redirect"] == "forwarded", fw
        assert fw["released_by"] == "caller" and fw["billsec"] == 3, fw
        assert got[4]["released_by"] == "caller" and got[4]["answer"] is None
        assert got[5]["cause"] == "failed 480" and got[5]["released_by"] == "system"
        assert len(set(r["id"] for r in got)) == len(got)
        _check_stream(seen)
        # on flash, in order, and durable: the batch interval passed
        assert _on_flash(w.app) == got
        assert w.app.cdr.log.unsynced == 0
        assert w.app.calls.live == []

        out = w.cli("show cdr")
        assert len(out.split("\n")) == 1 + len(got), out
        assert "forwarded 2004" in out and "busy 486" in out, out
        out = w.cli("show cdr disposition answered")
        assert len(out.split("\n")) == 3 and "answered 200" in out, out
        out = w.cli("show cdr station s2003 last 2")
        assert len(out.split("\n")) == 3 and "2003" in out.split("\n")[1], out
        out = w.cli("show cdr number 2999")
        assert "rejected 404" in out and len(out.split("\n")) == 2, out
        assert w.cli("show cdr number 7777") == "No call records match."
        for bad, why in (("show cdr last 0", "a count 1..1000"),
                         ("show cdr disposition maybe", "one of answered, busy"),
                         ("show cdr colour red", "unknown filter 'colour'"),
                         ("show cdr station", "missing value")):
            try:
                w.cli(bad)
            except Exception as e:
                assert why in str(e), (bad, str(e))
            else:
                raise AssertionError(bad)
        comp = w.app.commands.complete if hasattr(w.app.commands, "complete") else None
        from firmware.cdr.commands import _args
        assert [x for x, _ in _args(w.app, [], "")] == ["last", "station", "number", "disposition"]
        assert [x for x, _ in _args(w.app, ["disposition"], "n")] == ["no-answer"]
        assert comp is None or comp
        s = w.cli("show cdr summary")
        assert "Call records on flash: 8" in s and "Answer-seizure ratio: 25.0% (2 of 8" in s, s
        tenths = (got[2]["billsec"] + got[3]["billsec"]) * 10 // 2
        assert "Average duration of answered calls: %d.%d s" % (tenths // 10, tenths % 10) in s, s
        assert "Records without the time of day (clock not set): 8" in s, s
        assert "Dispositions: answered 2, busy 1, no-answer 1, failed 1, cancelled 1, rejected 2" in s, s
        # the host tool reads the same records from the state directory
        assert T.read_path(str(tmp_path / "state"), print) == got
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_records_survive_a_restart_and_the_wall_clock_is_used_once_set(tmp_path):
    w = CsWorld(tmp_path, seed=152, sip_exts=("2001", "2002"))
    try:
        w.register_all()
        c = _connect(w, "2001", "2002")
        w.phones["2001"].hangup(c)
        w.run(1000)
        # the time of day arrives (SNTP): later records carry UTC
        unix = 1796214645000           # 2026-12-02 12:30:45 UTC
        w.app.time.set(unix, w.now())
        c = _connect(w, "2001", "2002")
        w.run(4000)
        w.phones["2001"].hangup(c)
        w.run(1000)
        first = _on_flash(w.app)
        assert not first[0]["clock_set"] and first[1]["clock_set"], first
        assert unix <= first[1]["start"] < unix + 10000 and first[1]["billsec"] == 4, first[1]
        assert "Busiest hour: 12:00-13:00 (1 calls)" in w.cli("show cdr summary")
        assert "2026-12-02 12:30:4" in w.cli("show cdr"), w.cli("show cdr")
        w.assert_refused(["set system accounting cdr syslog"], "needs a receiver")
        w.assert_refused(["set system accounting cdr batch-size 0"], "batch-size")
        w.assert_refused(["set system accounting cdr log-size 16384"],
                         "log-size 16384 KB needs at least 64 segments")
    finally:
        w.close()
    w = CsWorld(tmp_path, seed=153, sip_exts=("2001", "2002"))
    try:
        w.run(100)
        assert _on_flash(w.app) == first
    finally:
        w.close()


def test_analog_stations_and_lines_through_the_local_call_server(tmp_path):
    w = CsWorld(tmp_path, seed=154, sip_exts=("2001",), fxs=True,
                extra=[B + "trunk pstn fxo-port 1", B + "trunk pstn prefix 9",
                       B + "trunk pstn did-target 2001"])
    seen = Seen()
    w.app.calls.subscribe(seen)
    try:
        gw = w.app.gateway
        sim = w.app.hardware.sim
        w.register_all()
        w.run_until(lambda: gw.port_ready("fxs", 1) and gw.port_ready("fxo", 1), 3000)
        # SIP phone -> FXS station
        c = w.phones["2001"].call("1001")
        w.run_until(lambda: sim.phones[1].ringing, 5000)
        sim.phones[1].off_hook()
        w.run_until(lambda: c.state == "connected" and gw.fxs[1].state == "talk", 3000)
        w.run(2000)
        sim.phones[1].on_hook()
        w.run_until(lambda: c.state == "terminated", 3000)
        w.run(1000)
        # FXS station -> outside number on the FXO line
        sim.phones[2].off_hook()
        w.run(300)
        sim.phones[2].dial_dtmf("95550101#")
        w.run_until(lambda: sim.lines[1].seized, 6000)
        w.run_until(lambda: gw.fxo[1].state == "talk", 6000)
        w.run(2000)
        sim.phones[2].on_hook()
        w.run_until(lambda: gw.fxo[1].state == "idle", 3000)
        w.run(1000)
        # PSTN -> the trunk's DID target (a SIP phone)
        w.phones["2001"].ring_ms = 500
        sim.lines[1].ring(caller_id=("5551234", "PSTN"))
        w.run_until(lambda: gw.fxo[1].state == "talk", 10000)
        w.run(1000)
        sim.lines[1].drop_battery()
        w.run_until(lambda: gw.fxo[1].state == "idle", 3000)
        sim.lines[1].restore_battery()
        w.run(7000)
        got = seen.ended
        assert [(r["src_kind"], r["dst_kind"], r["calling"], r["called"], r["disposition"])
                for r in got] == [
            ("station", "fxs", "2001", "1001", "answered"),
            ("fxs", "fxo", "1002", "95550101", "answered"),
            ("fxo", "station", "5551234", "2001", "answered")], got
        for r in got:
            assert r["mode"] == "survivable" and r["codec"] == "PCMU", r
            assert r["rtp_sent"] >= 50, r        # the port's RTP, every 20 ms
        # the simulated SIP phone sends no RTP; the two ports talk to each other
        assert got[0]["rtp_received"] == 0 and got[2]["rtp_received"] == 0, got
        assert got[1]["rtp_received"] >= 50, got[1]
        assert got[0]["dst"] == "1" and got[0]["released_by"] == "callee", got[0]
        # the FXS station hung up, but the gateway's end_local_partner (meant
        # for port-to-port calls through a dead peer) ends the FXO leg first
        assert got[1]["src"] == "2" and got[1]["dst"] == "1" and got[1]["released_by"], got[1]
        assert got[2]["src"] == "1" and got[2]["released_by"] == "caller", got[2]
        _check_stream(seen)
        assert _on_flash(w.app) == got
        out = w.cli("show cdr station a1002")
        assert len(out.split("\n")) == 2 and "95550101" in out, out
    finally:
        w.close()


def test_gateway_mode_calls_through_the_peer(tmp_path):
    w = World(tmp_path, seed=155)
    seen = Seen()
    w.app.calls.subscribe(seen)
    try:
        w.settle()
        w.call(1, "1002", 2)                                # FXS 1 -> peer -> FXS 2
        w.run(3000)
        w.phones[1].on_hook()
        w.run(1500)
        w.phones[2].on_hook()
        w.run(1500)
        # PSTN on FXO 1 -> peer -> DID target 1002 (FXS 2)
        line = w.lines[1]
        line.ring(caller_id=("5551234", "PSTN CALLER"))
        w.run_until(lambda: w.phones[2].ringing, 8000)
        w.phones[2].off_hook()
        w.run_until(lambda: w.fxo(1).state == "talk", 2000)
        w.run(2000)
        w.phones[2].on_hook()
        w.run_until(lambda: w.fxo(1).state == "idle", 3000)
        w.run(1500)
        # dave (1004, no call waiting) is busy: the peer's INVITE gets 486 at the port
        w.call(3, "1004", 4)
        w.phones[1].off_hook()
        w.run(200)
        w.phones[1].dial_dtmf("1004")
        w.run(4000)
        w.phones[1].on_hook()
        w.phones[3].on_hook()
        w.run(1500)
        w.phones[4].on_hook()
        w.run(1500)
        # 1001 gives up while 1003 rings: both legs cancelled
        w.phones[1].off_hook()
        w.run(200)
        w.phones[1].dial_dtmf("1003")
        w.run_until(lambda: w.phones[3].ringing, 8000)
        w.phones[1].on_hook()
        w.run(7000)
        got = seen.ended
        rows = [(r["src_kind"], r["src"], r["dst_kind"], r["calling"], r["called"],
                 r["disposition"], r["sip_status"]) for r in got]
        assert all(r["mode"] == "gateway" for r in got), got
        assert ("fxs", "1", "peer", "1001", "1002", "answered", 200) in rows, rows
        assert ("peer", "hq", "fxs", "1001", "1002", "answered", 200) in rows, rows
        assert ("fxo", "1", "peer", "5551234", "1002", "answered", 200) in rows, rows
        assert [r for r in rows if r[5] == "busy" and r[6] == 486 and r[2] == "fxs"], rows
        assert [r for r in rows if r[0] == "fxs" and r[1] == "1" and r[4] == "1004"
                and r[5] == "busy"], rows
        assert rows[-2:] == [("fxs", "1", "peer", "1001", "1003", "cancelled", 487),
                             ("peer", "hq", "fxs", "1001", "1003", "cancelled", 487)] or \
            rows[-2:] == [("peer", "hq", "fxs", "1001", "1003", "cancelled", 487),
                          ("fxs", "1", "peer", "1001", "1003", "cancelled", 487)], rows
        for r in got:
            if r["disposition"] == "answered":
                assert r["codec"] == "PCMU" and r["rtp_sent"] > 50, r
                assert r["call_ids"], r
        _check_stream(seen)
        assert _on_flash(w.app) == got
        assert w.app.calls.live == []
    finally:
        w.close()


def test_transferred_by_the_attendant_and_forwarded_by_a_hunt_group(tmp_path):
    from tests.sim.test_callserver_attendant import AA, Caller
    from tests.sim.test_callserver_groups import _group
    w = CsWorld(tmp_path, seed=157, sip_exts=("2001", "2002", "2003", "2009"),
                extra=AA + _group("ops", "603", ("2003",), "ring-all", ring_s=5,
                                  extra=("no-answer-target 2009",)))
    seen = Seen()
    w.app.calls.subscribe(seen)
    try:
        w.register_all()
        w.phones["2002"].ring_ms = 1000
        caller = Caller(w, "2001")
        c = w.phones["2001"].call("500")                 # the attendant answers
        w.run_until(lambda: c.state == "connected", 3000)
        w.run(400)
        caller.rfc4733("1")                              # menu 1: 2002
        w.run_until(lambda: w.cs.attendant.calls == [] and [
            x for x in w.cs.b2b.calls if x.state == "connected"], 5000)
        w.run(2000)
        w.phones["2001"].hangup(c)
        w.run(2000)
        caller.close()
        w.phones["2003"].ring_ms = None
        w.phones["2009"].ring_ms = 1000
        g = w.phones["2001"].call("603")                 # nobody in ops answers: 2009
        w.run_until(lambda: g.state == "connected", 10000)
        w.run(1000)
        w.phones["2001"].hangup(g)
        w.run(2000)
        got = seen.ended
        assert [(r["called"], r["original_called"], r["redirect"], r["disposition"])
                for r in got] == [("2002", "500", "transferred", "answered"),
                                  ("2009", "603", "forwarded", "answered")], got
        assert got[0]["dst"] == "s2002" and got[0]["billsec"] >= 2, got[0]
        assert got[1]["dst"] == "s2009", got[1]
        kinds = [k for k, r in seen.log if r == got[0]["id"]]
        assert "transferred" in kinds, kinds
        out = w.cli("show cdr")
        assert "2002 (transferred 500)" in out and "2009 (forwarded 603)" in out, out
        w.assert_no_leaks(bindings=4)
    finally:
        w.close()
