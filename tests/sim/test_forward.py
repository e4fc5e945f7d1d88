"""Call forward on the local call server (virtual clock, full SIP flows):
forward-all by code 601 and clear by 600, forward-busy (by configuration
and when the phone answers 486), forward-no-answer on its configurable
timer, forward-unreachable, Diversion (RFC 5806) and History-Info (RFC 7044)
on the forwarded INVITE, a forward loop capped, a forward to an outside
number refused by the station's class of restriction, the code-set state
surviving a reboot, `show call-server forwarding`."""
import os

from tests.sim.cs_world import CsWorld, B, password
from tests.sim.appliance import simulated


def _capture(p):
    """Every datagram the phone receives, raw."""
    seen = []
    orig = p.datagram

    def dg(data, src, seen=seen, orig=orig):
        seen.append(bytes(data))
        return orig(data, src)
    p.datagram = dg
    return seen


def _invites(seen):
    return [d.decode("latin-1") for d in seen if d.startswith(b"INVITE ")]


def _header(msg, name):
    for line in msg.split("\r\n"):
        if line.lower().startswith(name.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _dial(w, ext, number, limit=3000):
    c = w.phones[ext].call(number)
    w.run_until(lambda: c.state == "terminated", limit)
    return c


def test_forward_all_by_code_carries_diversion_and_history_info_then_clear(tmp_path):
    w = CsWorld(tmp_path, seed=141)
    try:
        w.register_all()
        got = _capture(w.phones["2003"])
        c = _dial(w, "2002", "6012003")
        assert c.status == 480, c.status            # handled code: 480 per the station manual
        out = w.cli("show call-server forwarding")
        assert "2003" in out.split("s2002")[1].split("\n")[0], out
        w.phones["2003"].ring_ms = 500
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 3000)
        inv = _invites(got)
        assert len(inv) == 1
        assert _header(inv[0], "Diversion") == \
            "<sip:2002@branch.example.com>;reason=unconditional;counter=1", inv[0]
        hi = _header(inv[0], "History-Info")
        assert hi == ("<sip:2002@branch.example.com>;index=1, "
                      "<sip:2003@branch.example.com;cause=302>;index=1.1;mp=1"), hi
        assert "To: <sip:2002@" in inv[0] or "To: sip:2002@" in inv[0], inv[0]
        assert w.cs.b2b.busy("s2003") == 1 and w.cs.b2b.busy("s2002") == 0
        w.phones["2001"].hangup(c)
        w.run_until(lambda: c.state == "terminated", 3000)
        assert _dial(w, "2002", "600").status == 480
        c = w.phones["2001"].call("2002")
        w.phones["2002"].ring_ms = 300
        w.run_until(lambda: c.state == "connected", 3000)
        assert w.cs.b2b.busy("s2002") == 1
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_forward_no_answer_after_the_configured_timeout(tmp_path):
    w = CsWorld(tmp_path, seed=142, extra=(B + "station s2002 forward-no-answer 2003",
                                          B + "station s2002 forward-no-answer-timeout 8"))
    try:
        w.register_all()
        w.phones["2002"].ring_ms = None            # rings for ever
        w.phones["2003"].ring_ms = 500
        got = _capture(w.phones["2003"])
        t0 = w.now()
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 15000)
        took = w.now() - t0
        assert 8000 <= took < 9500, took          # 8 s on 2002, then 0.5 s on 2003
        inv = _invites(got)
        assert "reason=no-answer" in _header(inv[0], "Diversion")
        assert "cause=408" in _header(inv[0], "History-Info")
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_forward_busy_by_code_604_and_when_the_phone_answers_486(tmp_path):
    w = CsWorld(tmp_path, seed=143, extra=(B + "station s2002 call-waiting disable",))
    try:
        w.register_all()
        assert _dial(w, "2002", "6042003").status == 480
        w.phones["2003"].ring_ms = 300
        w.phones["2002"].busy = True               # the phone itself says 486
        got = _capture(w.phones["2003"])
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 3000)
        assert "reason=user-busy" in _header(_invites(got)[0], "Diversion")
        # 2002 is now in no call but busy by the server's count only when in a call:
        w.phones["2001"].hangup(c)
        w.run_until(lambda: c.state == "terminated", 3000)
        w.phones["2002"].busy = False
        w.phones["2002"].ring_ms = 300
        first = w.phones["2001"].call("2002")
        w.run_until(lambda: first.state == "connected", 3000)
        second = w.phones["2003"].call("2002")     # 2002 in a call, no call waiting: forward-busy
        w.run_until(lambda: second.state in ("connected", "terminated"), 3000)
        # forward-busy leads to 2003 itself, the caller: not rung back (a loop of one)
        assert second.state == "terminated" and second.status == 486, second.status
        assert w.cs.forwarding.counters["forward_loops"] == 1
        w.phones["2001"].hangup(first)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_forward_unreachable_has_diversion(tmp_path):
    w = CsWorld(tmp_path, seed=144, sip_exts=("2001", "2003"),
                extra=(B + "station s2002 extension 2002",
                       B + "station s2002 password " + password("2002"),
                       B + "station s2002 forward-unreachable 2003"))
    try:
        w.register_all()
        w.phones["2003"].ring_ms = 300
        got = _capture(w.phones["2003"])
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 3000)
        inv = _invites(got)
        assert "reason=unavailable" in _header(inv[0], "Diversion")
        assert "cause=404" in _header(inv[0], "History-Info")
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_a_forward_loop_is_capped_and_the_last_station_rings(tmp_path):
    w = CsWorld(tmp_path, seed=145, sip_exts=("2001", "2002", "2003", "2004"))
    try:
        w.register_all()
        for ext, to in (("2002", "2003"), ("2003", "2004"), ("2004", "2002")):
            assert _dial(w, ext, "601" + to).status == 480
        w.phones["2004"].ring_ms = 300
        got = _capture(w.phones["2004"])
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 3000)
        assert w.cs.b2b.busy("s2004") == 1          # 2004 -> 2002 would close the loop
        assert w.cs.forwarding.counters["forward_loops"] == 1
        div = _header(_invites(got)[0], "Diversion")
        assert div.startswith("<sip:2003@") and "counter=2" in div, div
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=4)
    finally:
        w.close()


def test_forward_to_an_outside_number_obeys_the_class_of_restriction(tmp_path):
    w = CsWorld(tmp_path, seed=146, fxs=True, extra=(
        B + "trunk pstn fxo-port 1", B + "trunk pstn prefix 9",
        B + "station s2002 class-of-restriction internal",
        B + "station s2003 class-of-restriction national"))
    try:
        w.register_all()
        c = _dial(w, "2002", "601915551234")
        assert c.status == 403, c.status
        assert w.cs.forwarding.target(w.cs.settings.by_ext["2002"], "all") is None
        assert _dial(w, "2003", "601915551234").status == 480
        assert w.cs.forwarding.target(w.cs.settings.by_ext["2003"], "all") == "915551234"
        # the configuration changes under it: the diversion is not taken at call time
        w.cli("configure")
        w.app.config.load_file("t.conf", B + "station s2003 class-of-restriction internal\n")
        w.phones["2003"].ring_ms = 300
        c = w.phones["2001"].call("2003")
        w.run_until(lambda: c.state == "connected", 3000)
        assert w.cs.forwarding.counters["forward_restricted"] >= 1
        w.phones["2001"].hangup(c)
        w.run_until(lambda: c.state == "terminated", 3000)
    finally:
        w.close()


def test_code_set_forward_and_dnd_survive_a_reboot(tmp_path):
    w = CsWorld(tmp_path, seed=147)
    try:
        w.register_all()
        assert _dial(w, "2002", "6012003").status == 480
        assert _dial(w, "2001", "401").status == 480
    finally:
        w.close()
    state = os.path.join(str(tmp_path), "state")
    app = simulated(state, 148, args=("--config", os.path.join(str(tmp_path), "cs.conf")))
    try:
        fw = app.callserver.forwarding
        by_ext = app.callserver.settings.by_ext
        assert fw.target(by_ext["2002"], "all") == "2003"
        assert fw.dnd(by_ext["2001"]) and not fw.dnd(by_ext["2002"])
        out = app.commands.execute(app, "show call-server stations")
        assert "on" in out.split("s2001")[1].split("\n")[0], out
    finally:
        app.close()


def test_forward_code_needs_a_destination_and_refuses_an_unknown_one(tmp_path):
    w = CsWorld(tmp_path, seed=149)
    try:
        w.register_all()
        assert _dial(w, "2002", "601").status == 484
        assert _dial(w, "2002", "6017777").status == 404
        assert _dial(w, "2002", "6012002").status == 403      # itself
        w.assert_refused([B + "station s2002 forward-all 2002"], "own extension")
    finally:
        w.close()
