"""Do-not-disturb on the local call server (virtual clock, full SIP flows):
40 1 turns it on (480 to the dialling phone), callers then get 486 "Do Not
Disturb" without the phone ringing, or the station's busy forward with
reason do-not-disturb; 40 0 turns it off; `show call-server stations` and
`show call-server forwarding` show it; an analog (FXS) station sets it by
dialling the code and hears the confirmation tone."""
from tests.sim.cs_world import CsWorld, B


def _dial(w, ext, number, limit=3000):
    c = w.phones[ext].call(number)
    w.run_until(lambda: c.state == "terminated", limit)
    return c


def _row(out, name):
    return [ln for ln in out.split("\n") if ln.startswith(name + " ") or (" " + name + " ") in ln][0]


def test_dnd_on_rejects_with_486_without_ringing_and_off_restores(tmp_path):
    w = CsWorld(tmp_path, seed=151)
    try:
        w.register_all()
        rung = []
        w.phones["2002"].on_event = lambda p, call, ev: rung.append(ev)
        assert _dial(w, "2002", "401").status == 480
        assert "on" in _row(w.cli("show call-server stations"), "s2002").split()
        assert _row(w.cli("show call-server forwarding"), "s2002").split()[2] == "on"
        c = _dial(w, "2001", "2002")
        assert c.status == 486, c.status
        assert "incoming" not in rung
        assert w.cs.forwarding.counters["dnd_rejected"] == 1
        assert _dial(w, "2002", "400").status == 480
        assert "off" in _row(w.cli("show call-server stations"), "s2002").split()
        w.phones["2002"].ring_ms = 300
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 3000)
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_dnd_sends_callers_to_the_busy_forward(tmp_path):
    w = CsWorld(tmp_path, seed=152, extra=(B + "station s2002 forward-busy 2003",))
    try:
        w.register_all()
        assert _dial(w, "2002", "401").status == 480
        seen = []
        orig = w.phones["2003"].datagram
        w.phones["2003"].datagram = lambda d, s: (seen.append(bytes(d)), orig(d, s))[1]
        w.phones["2003"].ring_ms = 300
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 3000)
        inv = [d for d in seen if d.startswith(b"INVITE ")][0]
        assert b"reason=do-not-disturb" in inv, inv
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_dnd_code_needs_1_or_0(tmp_path):
    w = CsWorld(tmp_path, seed=153)
    try:
        w.register_all()
        assert _dial(w, "2002", "40").status == 484
        assert _dial(w, "2002", "407").status == 404
        assert not w.cs.forwarding.dnd(w.cs.settings.by_ext["2002"])
    finally:
        w.close()


def test_analog_station_sets_dnd_and_hears_the_confirmation_tone(tmp_path):
    w = CsWorld(tmp_path, seed=154, sip_exts=("2001",), fxs=True)
    try:
        gw = w.app.gateway
        w.register_all()
        w.run_until(lambda: gw.port_ready("fxs", 1), 3000)
        sim = w.app.hardware.sim
        sim.phones[1].off_hook()
        w.run(300)
        sim.phones[1].dial_dtmf("401")
        w.run_until(lambda: gw.fxs[1].state == "tone", 15000)
        assert gw.fxs[1].last_status == 480
        heard = set()
        for _ in range(20):
            w.run(50)
            heard.add(sim.phones[1].tone())
        assert (350, 440) in heard and (480, 620) not in heard, heard   # not congestion
        sim.phones[1].on_hook()
        w.run(1000)
        assert w.cs.forwarding.dnd(w.cs.settings.by_ext["1001"])
        c = _dial(w, "2001", "1001")
        assert c.status == 486 and not sim.phones[1].ringing
        w.assert_no_leaks(bindings=1)
    finally:
        w.close()
