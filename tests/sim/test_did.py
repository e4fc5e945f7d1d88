"""DID lists of trunks (virtual clock): a trunk call for a DID of the list
rings its station; a DID without a station, or a trunk call for no local
destination, goes to the auto attendant; a DID can have only one owner
(commit error); an FXO trunk without a did-target sends its calls to the
attendant, else to the call server's operator, never leaving the line
ringing."""
from tests.sim.cs_world import CsWorld, B

AA = [B + "auto-attendant extension 500", B + "auto-attendant menu 1 target 2002"]
SIP_TRUNK = [B + "call-server unknown-source trunk",
             B + "trunk pstn fxo-port 1",
             B + "trunk pstn did 5550102 station 2002",
             B + "trunk pstn did 5550199"]


def _trunk_phone(w):
    """A SIP trunk on the simulated network: INVITEs without credentials."""
    p = w.net.add("carrier", "unused-secret", "branch.example.com", w.server)
    p.max_auth_tries = 0
    w.net.start()
    return p


def test_sip_trunk_did_rings_its_station_and_unassigned_goes_to_the_attendant(tmp_path):
    w = CsWorld(tmp_path, seed=181, sip_exts=("2001", "2002"), extra=AA + SIP_TRUNK)
    try:
        w.register_all()
        carrier = _trunk_phone(w)
        w.phones["2002"].ring_ms = 300
        c = carrier.call("5550102")
        w.run_until(lambda: c.state == "connected", 3000)
        assert w.cs.b2b.busy("s2002") == 1
        carrier.hangup(c)
        w.run_until(lambda: c.state == "terminated", 3000)
        c = carrier.call("5550199")                 # in the list, no station: the attendant
        w.run_until(lambda: c.state == "connected", 3000)
        assert len(w.cs.attendant.calls) == 1
        assert w.cs.b2b.counters["unassigned_did"] == 1
        carrier.hangup(c)
        w.run_until(lambda: c.state == "terminated", 3000)
        w.run(40000)
        assert w.leaks()["calls"] == 0
    finally:
        w.close()


def test_fxo_call_for_no_local_destination_goes_to_the_attendant(tmp_path):
    w = CsWorld(tmp_path, seed=182, sip_exts=("2001", "2002"), extra=AA + SIP_TRUNK)
    try:
        w.register_all()
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               "m=audio 4000 RTP/AVP 0\r\n").encode()
        leg = w.cs.local_call("5550177", sdp, None, station=None, cid=("5551234", None))
        w.run(500)
        assert leg is not None and leg.state == "confirmed", leg.state
        assert len(w.cs.attendant.calls) == 1
        leg.bye()
        w.run(1000)
        assert w.cs.attendant.calls == []
    finally:
        w.close()


def test_a_did_has_one_owner(tmp_path):
    w = CsWorld(tmp_path, seed=183, sip_exts=("2001", "2002"),
                extra=[B + "station s2001 did 5550101", B + "trunk pstn fxo-port 1"])
    try:
        w.assert_refused([B + "trunk pstn did 5550101 station 2002"],
                         "already the DID of station s2001")
        w.assert_refused([B + "trunk pstn did 5550102 station 2002",
                          B + "trunk other fxo-port 2", B + "trunk other did 5550102"],
                         "already the DID of trunk")
        w.assert_refused([B + "trunk pstn did 5550103 station 2999"],
                         "no station has this extension")
        w.assert_refused([B + "call-server operator 2999"], "no station or hunt group")
        # no did-target, attendant or operator: the commit goes on and warns
        assert "its incoming calls would ring unanswered" in w.cli("show log")
    finally:
        w.close()


def _fxo_call_reaches(w, ext):
    gw = w.app.gateway
    w.run_until(lambda: gw.port_ready("fxo", 1), 3000)
    line = w.app.hardware.sim.lines[1]
    seen = []
    w.phones[ext].on_event = lambda p, c, ev: seen.append(c) if ev == "incoming" else None
    w.phones[ext].ring_ms = 500
    line.ring(caller_id=("5551234", "PSTN Caller"))
    w.run_until(lambda: seen and seen[0].state == "connected", 15000)
    assert line.seized
    w.phones[ext].hangup(seen[0])
    w.run_until(lambda: not line.seized, 5000)


def test_fxo_trunk_without_did_target_goes_to_the_attendant_or_the_operator(tmp_path):
    w = CsWorld(tmp_path, seed=184, sip_exts=("2001", "2002"), fxs=True,
                extra=[B + "trunk pstn fxo-port 1", B + "call-server operator 2001"])
    try:
        w.register_all()
        _fxo_call_reaches(w, "2001")            # no attendant: the operator
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()
    (tmp_path / "aa").mkdir()
    w = CsWorld(tmp_path / "aa", seed=185, sip_exts=("2001", "2002"), fxs=True,
                extra=AA + [B + "trunk pstn fxo-port 1"])
    try:
        w.register_all()
        gw = w.app.gateway
        w.run_until(lambda: gw.port_ready("fxo", 1), 3000)
        w.app.hardware.sim.lines[1].ring(caller_id=("5551234", "PSTN Caller"))
        w.run_until(lambda: w.cs.attendant.calls, 15000)
        assert w.app.hardware.sim.lines[1].seized
    finally:
        w.close()
