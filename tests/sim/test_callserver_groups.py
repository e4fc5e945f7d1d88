"""Hunt and ring groups on the call server (virtual clock): ring-all with
the first answer winning, linear hunting member by member on ring-timeout,
busy members skipped, circular hunting starting after the last member who
answered, the no-answer target and 480 when nobody answers, a trunk DID and
an analog (FXS) station as group members, the commit checks.  No call
leaves anything behind."""
from tests.sim.cs_world import CsWorld, B


def _group(name, ext, members, kind, ring_s=5, extra=()):
    lines = [B + "hunt-group %s extension %s" % (name, ext),
             B + "hunt-group %s type %s" % (name, kind),
             B + "hunt-group %s ring-timeout %d" % (name, ring_s)]
    lines += [B + "hunt-group %s member %s" % (name, m) for m in members]
    return lines + [B + "hunt-group %s %s" % (name, x) for x in extra]


def _incoming(w, ext):
    """Every call the phone was offered, ended ones included."""
    return [c for c, e in w.seen[ext] if e == "incoming"]


def _watch(w):
    w.seen = {}
    for ext, p in w.phones.items():
        w.seen[ext] = []
        p.on_event = lambda p, call, event, log=w.seen[ext]: log.append((call, event))


def test_ring_all_rings_every_member_and_the_first_answer_wins(tmp_path):
    w = CsWorld(tmp_path, seed=61, sip_exts=("2001", "2002", "2003", "2004"),
                extra=_group("sales", "600", ("2002", "2003", "2004"), "ring-all"))
    try:
        w.register_all()
        _watch(w)
        w.phones["2002"].ring_ms = None
        w.phones["2003"].ring_ms = 2000
        w.phones["2004"].ring_ms = None
        c = w.phones["2001"].call("600")
        w.run_until(lambda: c.state == "connected", 8000)
        assert [len(_incoming(w, e)) for e in ("2002", "2003", "2004")] == [1, 1, 1]
        for e in ("2002", "2004"):
            other = _incoming(w, e)[0]
            w.run_until(lambda: other.state == "terminated", 2000)
            assert other.end_reason == "cancelled_by_remote", (e, other.end_reason)
        assert w.cs.b2b.busy("s2003") == 1 and w.cs.b2b.busy("s2002") == 0
        out = w.cli("show calls")
        assert "600" in out and "connected" in out, out
        w.phones["2001"].hangup(c)
        w.run_until(lambda: _incoming(w, "2003")[0].state == "terminated", 3000)
        assert w.cs.b2b.counters["group_calls"] == 1
        w.assert_no_leaks(bindings=4)
    finally:
        w.close()


def test_linear_hunt_moves_on_after_ring_timeout_and_skips_busy_members(tmp_path):
    w = CsWorld(tmp_path, seed=62, sip_exts=("2001", "2002", "2003", "2004"),
                extra=_group("support", "601", ("2002", "2003", "2004"), "linear", ring_s=5))
    try:
        w.register_all()
        _watch(w)
        w.phones["2002"].ring_ms = None         # never answers
        w.phones["2003"].busy = True            # answers 486
        w.phones["2004"].ring_ms = 1000
        t0 = w.now()
        c = w.phones["2001"].call("601")
        w.run_until(lambda: c.state == "connected", 12000)
        first = _incoming(w, "2002")[0]
        assert first.state == "terminated" and first.end_reason == "cancelled_by_remote"
        # 2002 rang its 5 s, 2003 refused at once, 2004 answered after 1 s
        assert 6000 <= w.now() - t0 < 7500, w.now() - t0
        assert w.phones["2003"].counters["calls_in_rejected_486"] == 1
        assert len(_incoming(w, "2004")) == 1
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=4)
    finally:
        w.close()


def test_circular_hunt_starts_after_the_member_who_answered_last(tmp_path):
    w = CsWorld(tmp_path, seed=63, sip_exts=("2001", "2002", "2003"),
                extra=_group("desk", "602", ("2002", "2003"), "circular"))
    try:
        w.register_all()
        _watch(w)
        w.phones["2002"].ring_ms = 500
        w.phones["2003"].ring_ms = 500
        answered = []
        for _ in range(3):
            c = w.phones["2001"].call("602")
            w.run_until(lambda: c.state == "connected", 5000)
            answered.append([e for e in ("2002", "2003")
                             if any(x.state == "connected" for x in _incoming(w, e))])
            w.phones["2001"].hangup(c)
            w.run_until(lambda: c.state == "terminated", 3000)
            w.run(500)
        assert answered == [["2002"], ["2003"], ["2002"]], answered
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_nobody_answers_goes_to_the_no_answer_target_else_480(tmp_path):
    w = CsWorld(tmp_path, seed=64, sip_exts=("2001", "2002", "2003", "2009"),
                extra=_group("ops", "603", ("2002", "2003"), "ring-all", ring_s=5,
                             extra=("no-answer-target 2009",))
                + _group("night", "604", ("2002",), "linear", ring_s=5))
    try:
        w.register_all()
        _watch(w)
        w.phones["2002"].ring_ms = None
        w.phones["2003"].ring_ms = None
        w.phones["2009"].ring_ms = 1000
        c = w.phones["2001"].call("603")
        w.run_until(lambda: c.state == "connected", 10000)
        assert len(_incoming(w, "2009")) == 1
        assert w.cs.b2b.busy("s2009") == 1
        w.phones["2001"].hangup(c)
        w.run_until(lambda: c.state == "terminated", 3000)
        c2 = w.phones["2001"].call("604")
        w.run_until(lambda: c2.state == "terminated", 10000)
        assert c2.status == 480, (c2.status, c2.end_reason)
        w.assert_no_leaks(bindings=4)
    finally:
        w.close()


def test_all_members_busy_gives_486(tmp_path):
    w = CsWorld(tmp_path, seed=65, sip_exts=("2001", "2002", "2003"),
                extra=_group("pair", "605", ("2002", "2003"), "linear")
                + [B + "station s2002 call-waiting disable"])
    try:
        w.register_all()
        _watch(w)
        w.phones["2003"].busy = True
        busy = w.phones["2002"].call("2003")     # 2002 is now in a call attempt ...
        w.run_until(lambda: busy.state == "terminated", 3000)
        w.phones["2003"].busy = False
        w.phones["2003"].ring_ms = 500
        talk = w.phones["2002"].call("2003")     # ... and now in a call: skipped
        w.run_until(lambda: talk.state == "connected", 3000)
        w.phones["2003"].busy = True
        c = w.phones["2001"].call("605")
        w.run_until(lambda: c.state == "terminated", 5000)
        assert c.status == 486, c.status
        assert not _incoming(w, "2002") or all(
            x.remote != "2001" for x in _incoming(w, "2002"))
        w.phones["2002"].hangup(talk)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_analog_station_is_a_group_member_and_a_trunk_did_reaches_the_group(tmp_path):
    w = CsWorld(tmp_path, seed=66, sip_exts=("2001", "2002"), fxs=True,
                extra=_group("shop", "610", ("1001", "2002"), "ring-all", extra=("did 5550610",)))
    try:
        gw = w.app.gateway
        w.register_all()
        _watch(w)
        assert gw.registrations == {}    # the local call server rings ports in process
        w.run_until(lambda: gw.port_ready("fxs", 1), 3000)
        sim = w.app.hardware.sim
        w.phones["2002"].ring_ms = None
        c = w.phones["2001"].call("610")
        w.run_until(lambda: sim.phones[1].ringing, 5000)
        sim.phones[1].off_hook()
        w.run_until(lambda: c.state == "connected" and gw.fxs[1].state == "talk", 3000)
        sip_member = _incoming(w, "2002")[0]
        w.run_until(lambda: sip_member.state == "terminated", 2000)
        assert w.cs.b2b.busy("a1001") == 1
        w.phones["2001"].hangup(c)
        w.run_until(lambda: gw.fxs[1].state != "talk", 3000)
        sim.phones[1].on_hook()
        w.run(1500)
        assert w.cs.settings.group_by_did["5550610"].name == "shop"
        w.assert_no_leaks(bindings=2)
        assert gw.leaks()["rtp"] == 0
    finally:
        w.close()


def test_group_commit_checks_name_the_problem(tmp_path):
    w = CsWorld(tmp_path, seed=67, sip_exts=("2001", "2002"))
    try:
        cases = [
            (_group("g", "2001", ("2002",), "linear"), "is the extension of station s2001"),
            (_group("g", "700", ("2999",), "linear"), "member 2999: no station has this extension"),
            ([B + "hunt-group g extension 700"], "a hunt group needs at least one member"),
            (_group("g", "700", ("2002",), "linear") + _group("h", "700", ("2001",), "linear"),
             "already the extension of hunt group"),
            (_group("g", "700", ("2002",), "linear", extra=("no-answer-target 700",)),
             "is the group's own extension"),
        ]
        for lines, why in cases:
            w.assert_refused(lines, why)
        assert w.cs.settings.groups == []
    finally:
        w.close()
