"""The feature-code framework (virtual clock, SIP phones): a handled code is
answered 480 Temporarily Unavailable; codes are configurable; a number that
is a local destination as dialled wins over a code; argument rules give
484/404; a failing handler gives 500 and the call server goes on; a code
without a handler is routed as before; commit checks on the code table;
`show call-server feature-codes`."""
from firmware.callserver import features
from tests.sim.cs_world import CsWorld, B, password


def _dial(w, ext, number, limit=3000):
    c = w.phones[ext].call(number)
    w.run_until(lambda: c.state == "terminated", limit)
    return c


def test_handled_code_gets_480_and_codes_are_configurable(tmp_path):
    w = CsWorld(tmp_path, seed=161, extra=(B + "feature-codes dnd *77",))
    try:
        w.register_all()
        c = _dial(w, "2002", "*771")
        assert c.status == 480, c.status
        assert w.cs.forwarding.dnd(w.cs.settings.by_ext["2002"])
        assert _dial(w, "2002", "401").status == 404      # 40 is no code any more
        assert w.cs.features.counters["handled"] == 1
        out = w.cli("show call-server feature-codes")
        line = [ln for ln in out.split("\n") if ln.startswith("dnd")][0]
        assert "*77" in line and "handled" in line, out
        assert "Feature codes" in w.cli("show sip statistics")
    finally:
        w.close()


def test_a_local_destination_wins_over_a_code(tmp_path):
    w = CsWorld(tmp_path, seed=162, sip_exts=("2001", "401"))
    try:
        w.register_all()
        w.phones["401"].ring_ms = 300
        c = w.phones["2001"].call("401")          # station 401, not DND on
        w.run_until(lambda: c.state == "connected", 3000)
        assert not w.cs.forwarding.dnd(w.cs.settings.by_ext["2001"])
        w.phones["2001"].hangup(c)
        out = w.cli("show call-server feature-codes")
        assert "shadowed" not in out       # 40 itself is no destination
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_a_failing_handler_gets_500_and_a_code_without_one_is_routed(tmp_path):
    w = CsWorld(tmp_path, seed=163)
    saved = features._HANDLERS.get("conference")

    def broken(fc):
        raise ValueError("boom")
    try:
        w.register_all()
        features.register("conference", broken)
        c = _dial(w, "2002", "46")
        assert c.status == 500, c.status
        assert w.cs.features.counters["errors"] == 1
        assert "feature conference" in w.cli("show log")
        features._HANDLERS.pop("conference")
        assert _dial(w, "2002", "46").status == 404   # not intercepted: routed, no such number
        # the call server still works
        w.phones["2003"].ring_ms = 300
        c = w.phones["2001"].call("2003")
        w.run_until(lambda: c.state == "connected", 3000)
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=3)
    finally:
        if saved is not None:
            features._HANDLERS["conference"] = saved
        else:
            features._HANDLERS.pop("conference", None)
        w.close()


def test_route_to_continues_as_an_ordinary_call(tmp_path):
    w = CsWorld(tmp_path, seed=164)
    saved = features._HANDLERS.get("retrieve")

    def retrieve(fc):           # as park's retrieve does: 12 + slot -> the slot's number
        fc.route_to("200" + fc.arg)
        return features.TAKEN
    try:
        w.register_all()
        features.register("retrieve", retrieve, features.ARG_DIGITS)
        w.phones["2003"].ring_ms = 300
        c = w.phones["2001"].call("123")
        w.run_until(lambda: c.state == "connected", 3000)
        assert w.cs.b2b.busy("s2003") == 1
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=3)
    finally:
        if saved is not None:
            features._HANDLERS["retrieve"] = saved
        else:
            features._HANDLERS.pop("retrieve", None)
        w.close()


def test_commit_refuses_a_duplicate_or_shadowing_code(tmp_path):
    w = CsWorld(tmp_path, seed=165)
    try:
        w.assert_refused([B + "feature-codes park 46"], "already the code of")
        w.assert_refused([B + "feature-codes dnd 6"], "could never be dialled")
        w.assert_refused([B + "feature-codes dnd 4x"], "4x")
    finally:
        w.close()


def test_trunk_callers_cannot_use_feature_codes(tmp_path):
    w = CsWorld(tmp_path, seed=166, extra=(B + "call-server unknown-source trunk",))
    try:
        w.register_all()
        from firmware.voice.handover import local_pair
        # an FXO line's call (no station) to 401: routed, never a code
        leg = w.cs.local_call("401", None, None, station=None, cid=("5551234", None))
        w.run(500)
        assert leg is not None and leg.state == "terminated" and leg.final_status == 404, (
            leg.state, getattr(leg, "final_status", None))
        assert w.cs.features.counters["dialled"] == 0
        assert local_pair is not None
    finally:
        w.close()
