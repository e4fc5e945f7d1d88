"""Transfer on the local call server (firmware/callserver/transfer.py), on the
virtual clock with full SIP flows: SIP phones REFER their call server leg
(blind, and attended with Replaces naming their consultation dialog),
NOTIFY sipfrag progress, the recall of an unanswered blind transfer, the
403 for a Replaces naming another station's dialog and for an INVITE with
Replaces from a stranger; and the analog phone's hook-flash transfer
through the local call server."""
from sip.headers import uri_escape, replaces_for
from tests.sim.cs_world import CsWorld, B, DOMAIN


def _connect(w, a, b_ext):
    c = w.phones[a].call(b_ext)
    w.run_until(lambda: c.state == "connected", 5000)
    inc = [x for x in w.phones[b_ext].calls if x.role == "uas" and x.state == "connected"][-1]
    return c, inc


def _refer(w, phone, c, target, replaces=None):
    """The phone REFERs its call c; returns the list of (event, status)."""
    events = []
    to = "sip:%s@%s" % (target, DOMAIN)
    if replaces is not None:
        to += "?Replaces=" + uri_escape(replaces_for(replaces))
    ok = c.session.refer(to, "sip:%s@%s" % (phone.user, DOMAIN),
                         lambda ev, st: events.append((ev, st)), phone.now())
    assert ok
    return events


def _incoming(w, ext):
    return [x for x in w.phones[ext].calls if x.role == "uas" and x.state != "terminated"]


class _Cdrs:
    def __init__(self, w):
        self.ended = []
        w.app.calls.subscribe(self)

    def call_started(self, rec):
        pass

    def call_answered(self, rec):
        pass

    def call_ended(self, rec):
        self.ended.append(rec.as_dict())


def test_blind_transfer_connects_the_transferee_to_the_target(tmp_path):
    w = CsWorld(tmp_path, seed=51)
    cdrs = _Cdrs(w)
    try:
        w.register_all()
        p1, p2, p3 = (w.phones[e] for e in ("2001", "2002", "2003"))
        c12, inc2 = _connect(w, "2001", "2002")
        p3.ring_ms = 2000
        p2.hold(inc2)                       # 2002 holds 2001, then transfers it to 2003
        w.run_until(lambda: c12.remote_held, 3000)
        events = _refer(w, p2, inc2, "2003")
        w.run_until(lambda: ("final", 200) in events, 8000)
        assert events[0] == ("accepted", 202), events
        # 2001 was re-INVITEd with 2003's media, not on hold any more
        inc3 = _incoming(w, "2003")[0]
        assert inc3.remote == "2001", inc3.remote
        w.run_until(lambda: not c12.remote_held, 3000)
        assert c12.state == "connected" and inc3.state == "connected"
        p2.hangup(inc2)                     # the transferor leaves (RFC 5589)
        w.run(2000)
        assert c12.state == "connected", c12.state
        out = w.cli("show calls")
        assert "2003" in out and "2002" not in out.split("Calls:")[1].split("\n", 1)[1], out
        assert w.cs.b2b.features("transfer").counters["completed"] == 1
        p3.hangup(inc3)
        w.run_until(lambda: c12.state == "terminated", 3000)
        # call accounting: the REFERred call's record says where it went
        got = [(r["calling"], r["called"], r["original_called"], r["redirect"])
               for r in cdrs.ended]
        assert ("2001", "2003", "2002", "transferred") in got, got
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_unanswered_blind_transfer_recalls_the_transferor(tmp_path):
    w = CsWorld(tmp_path, seed=52, extra=(B + "call-server no-answer-timeout 10",))
    try:
        w.register_all()
        p1, p2, p3 = (w.phones[e] for e in ("2001", "2002", "2003"))
        c12, inc2 = _connect(w, "2001", "2002")
        p3.ring_ms = None                   # rings until cancelled
        events = _refer(w, p2, inc2, "2003")
        w.run_until(lambda: ("accepted", 202) in events, 3000)
        p2.hangup(inc2)                     # a blind transferor hangs up at once
        w.run_until(lambda: inc2.state == "terminated", 3000)
        w.run_until(lambda: _incoming(w, "2003"), 3000)
        ringing = _incoming(w, "2003")[0]
        assert c12.state == "connected"
        p2.ring_ms = None
        t0 = w.now()
        w.run_until(lambda: _incoming(w, "2002"), 15000)
        # the target rang the station's no-answer timeout, then was cancelled
        assert 9500 <= w.now() - t0 <= 11500, w.now() - t0
        assert ringing.state == "terminated" and ringing.end_reason == "cancelled_by_remote"
        recall = _incoming(w, "2002")[0]
        assert recall.remote == "2001", recall.remote
        w.phones["2002"].answer(recall)
        w.run_until(lambda: recall.state == "connected", 3000)
        w.run(1000)
        assert c12.state == "connected"
        tc = w.cs.b2b.features("transfer").counters
        assert tc["recalls"] == 1 and tc["recalls_answered"] == 1, tc
        p1.hangup(c12)
        w.run_until(lambda: recall.state == "terminated", 3000)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_blind_transfer_failure_with_the_transferor_still_there(tmp_path):
    w = CsWorld(tmp_path, seed=53)
    try:
        w.register_all()
        p2 = w.phones["2002"]
        c12, inc2 = _connect(w, "2001", "2002")
        w.phones["2003"].busy = True
        events = _refer(w, p2, inc2, "2003")
        w.run_until(lambda: ("final", 486) in events, 5000)
        # still in the call with 2001: the phone takes it back
        assert inc2.state == "connected" and c12.state == "connected"
        events = _refer(w, p2, inc2, "2999")
        w.run_until(lambda: ("final", 404) in events, 5000)
        p2.hangup(inc2)
        w.run_until(lambda: c12.state == "terminated", 3000)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_attended_transfer_joins_transferee_and_target(tmp_path):
    w = CsWorld(tmp_path, seed=54)
    try:
        w.register_all()
        p1, p2, p3 = (w.phones[e] for e in ("2001", "2002", "2003"))
        c12, inc2 = _connect(w, "2001", "2002")
        p2.hold(inc2)
        w.run_until(lambda: c12.remote_held, 3000)
        c23, inc3 = _connect(w, "2002", "2003")     # consultation
        events = _refer(w, p2, inc2, "2003", replaces=c23.dialog)
        w.run_until(lambda: ("final", 200) in events, 5000)
        w.run_until(lambda: c23.state == "terminated", 3000)   # the consultation leg got BYE
        assert c23.end_reason == "bye_received", c23.end_reason
        assert not c12.remote_held and c12.state == "connected" and inc3.state == "connected"
        p2.hangup(inc2)
        w.run(5000)
        assert c12.state == "connected" and inc3.state == "connected"
        assert w.cs.b2b.features("transfer").counters["attended"] == 1
        out = w.cli("show calls")
        assert "Calls: 1" in out, out
        p1.hangup(c12)
        w.run_until(lambda: inc3.state == "terminated", 3000)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_semi_attended_transfer_while_the_target_still_rings(tmp_path):
    w = CsWorld(tmp_path, seed=58)
    try:
        w.register_all()
        p1, p2, p3 = (w.phones[e] for e in ("2001", "2002", "2003"))
        c12, inc2 = _connect(w, "2001", "2002")
        p2.hold(inc2)
        w.run_until(lambda: c12.remote_held, 3000)
        p3.ring_ms = None
        p3.max_calls = 2            # the new INVITE may overtake the CANCEL
        c23 = p2.call("2003")
        w.run_until(lambda: c23.state == "ringing", 3000)
        events = _refer(w, p2, inc2, "2003", replaces=c23.dialog)
        w.run_until(lambda: c23.state == "terminated", 3000)
        assert c23.status == 487, c23.status
        w.run_until(lambda: [r for r in _incoming(w, "2003") if r.remote == "2001"], 3000)
        ring = [r for r in _incoming(w, "2003") if r.remote == "2001"][0]
        p3.answer(ring)
        w.run_until(lambda: ("final", 200) in events, 5000)
        w.run_until(lambda: not c12.remote_held, 3000)
        assert ring.state == "connected" and c12.state == "connected"
        p2.hangup(inc2)
        p1.hangup(c12)
        w.run_until(lambda: ring.state == "terminated", 3000)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_a_party_replacing_its_own_leg_takes_the_call_over(tmp_path):
    # a station's phone moves its call to a new dialog (INVITE with Replaces
    # naming its own leg): allowed for a party of the call
    w = CsWorld(tmp_path, seed=60)
    try:
        w.register_all()
        c12, inc2 = _connect(w, "2001", "2002")
        n = w.phones["2002"].call("2001", headers=(("Replaces", replaces_for(inc2.dialog)),))
        w.run_until(lambda: n.state == "connected", 3000)
        w.run_until(lambda: inc2.state == "terminated", 3000)     # the old leg got BYE
        assert inc2.end_reason == "bye_received", inc2.end_reason
        assert c12.state == "connected"
        w.phones["2001"].hangup(c12)
        w.run_until(lambda: n.state == "terminated", 3000)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_replaces_naming_another_stations_dialog_is_forbidden(tmp_path):
    w = CsWorld(tmp_path, seed=55, sip_exts=("2001", "2002", "2003", "2004"))
    try:
        w.register_all()
        p2 = w.phones["2002"]
        c12, inc2 = _connect(w, "2001", "2002")
        c34, inc4 = _connect(w, "2003", "2004")
        # 2002 knows the dialog ids of 2003's call (as if sniffed): refused
        events = _refer(w, p2, inc2, "2004", replaces=c34.dialog)
        w.run_until(lambda: events and events[-1][0] == "rejected", 3000)
        assert events[-1] == ("rejected", 403), events
        assert c34.state == "connected" and c12.state == "connected"
        # an INVITE with Replaces for 2003's call from a phone of no station
        stranger = w.raw("127.0.9.9")
        d = c34.dialog
        inv = "\r\n".join([
            "INVITE sip:2004@%s SIP/2.0" % DOMAIN,
            "Via: SIP/2.0/UDP 127.0.9.9:5099;branch=z9hG4bK-str1",
            "From: <sip:9999@%s>;tag=s1" % DOMAIN, "To: <sip:2004@%s>" % DOMAIN,
            "Call-ID: stranger-1", "CSeq: 1 INVITE", "Max-Forwards: 70",
            "Contact: <sip:9999@127.0.9.9:5099>",
            "Replaces: %s" % replaces_for(d), "Content-Length: 0", "", ""])
        out = w.exchange(stranger, inv)
        assert out and out[-1].startswith(b"SIP/2.0 403"), out
        assert c34.state == "connected"
        p2.hangup(inc2)
        w.phones["2003"].hangup(c34)
        w.assert_no_leaks(bindings=4)
    finally:
        w.close()


def _analog_call_from_sip(w, ext, port):
    """SIP phone ext calls the analog station of port, which answers."""
    sim = w.app.hardware.sim
    gw = w.app.gateway
    w.run_until(lambda: gw.port_ready("fxs", port), 3000)
    c = w.phones[ext].call("100%d" % port)
    w.run_until(lambda: sim.phones[port].ringing, 5000)
    sim.phones[port].off_hook()
    w.run_until(lambda: c.state == "connected" and gw.fxs[port].state == "talk", 3000)
    return c


def _flash_and_dial(w, port, number):
    sim = w.app.hardware.sim
    sim.phones[port].flash()
    w.run(800)
    assert w.app.gateway.fxs[port].state == "dialtone", w.app.gateway.fxs[port].state
    sim.phones[port].dial_dtmf(number)


def test_analog_hook_flash_attended_transfer_through_the_local_call_server(tmp_path):
    w = CsWorld(tmp_path, seed=56, sip_exts=("2001", "2002"), fxs=True)
    try:
        w.register_all()
        sim, gw = w.app.hardware.sim, w.app.gateway
        c1 = _analog_call_from_sip(w, "2001", 1)       # B = 2001 talks to A = port 1
        w.phones["2002"].ring_ms = 1000
        _flash_and_dial(w, 1, "2002")                   # consultation with C = 2002
        w.run_until(lambda: _incoming(w, "2002") and _incoming(w, "2002")[0].state == "connected",
                    8000)
        c3 = _incoming(w, "2002")[0]
        assert c1.remote_held
        sim.phones[1].on_hook()                         # A hangs up: transfer
        w.run_until(lambda: gw.fxs[1].state == "idle", 5000)
        w.run(1000)
        assert gw.fxs[1].transfers == 1 and gw.fxs[1].transfer_failures == 0
        assert c1.state == "connected" and c3.state == "connected", (c1.state, c3.state)
        assert not c1.remote_held
        assert w.cs.b2b.features("transfer").counters["attended"] == 1
        out = w.cli("show calls")
        assert "Calls: 1" in out and "1001" not in out.split("\n", 1)[1], out
        w.phones["2001"].hangup(c1)
        w.run_until(lambda: c3.state == "terminated", 3000)
        w.assert_no_leaks(bindings=2)
        assert gw.leaks()["rtp"] == 0
    finally:
        w.close()


def test_analog_hook_flash_blind_transfer_rings_the_target(tmp_path):
    w = CsWorld(tmp_path, seed=57, sip_exts=("2001", "2002"), fxs=True)
    try:
        w.register_all()
        sim, gw = w.app.hardware.sim, w.app.gateway
        c1 = _analog_call_from_sip(w, "2001", 1)
        w.phones["2002"].ring_ms = None
        # the transfer's INVITE may reach C before the CANCEL of the
        # consultation does (the order differs between interpreters): C's
        # phone takes a second call, as desk phones do
        w.phones["2002"].max_calls = 2
        _flash_and_dial(w, 1, "2002")
        w.run_until(lambda: _incoming(w, "2002"), 8000)
        sim.phones[1].on_hook()                         # while C rings: blind
        # the consultation is cancelled, C rings again with B's call; the
        # port waits for the outcome (the final NOTIFY)
        w.run_until(lambda: [r for r in _incoming(w, "2002") if r.remote == "2001"], 5000)
        rings = _incoming(w, "2002")
        assert len(rings) == 1 and rings[0].remote == "2001", rings
        assert gw.fxs[1].state == "transferring", gw.fxs[1].state
        w.phones["2002"].answer(rings[0])
        w.run_until(lambda: rings[0].state == "connected", 3000)
        w.run_until(lambda: gw.fxs[1].state == "idle", 5000)
        w.run_until(lambda: not c1.remote_held, 3000)
        assert gw.fxs[1].transfer_failures == 0 and c1.state == "connected"
        assert w.cs.b2b.features("transfer").counters["blind"] == 1
        w.phones["2002"].hangup(rings[0])
        w.run_until(lambda: c1.state == "terminated", 3000)
        w.assert_no_leaks(bindings=2)
        assert gw.leaks()["rtp"] == 0
    finally:
        w.close()


def test_analog_transfer_refused_by_the_target_rings_the_analog_phone_back(tmp_path):
    w = CsWorld(tmp_path, seed=59, sip_exts=("2001", "2002"), fxs=True)
    try:
        w.register_all()
        sim, gw = w.app.hardware.sim, w.app.gateway
        c1 = _analog_call_from_sip(w, "2001", 1)
        p2 = w.phones["2002"]
        p2.ring_ms = None
        p2.max_calls = 2
        _flash_and_dial(w, 1, "2002")
        w.run_until(lambda: _incoming(w, "2002"), 8000)
        sim.phones[1].on_hook()                         # blind transfer while C rings
        w.run_until(lambda: [r for r in _incoming(w, "2002") if r.remote == "2001"], 5000)
        ring = [r for r in _incoming(w, "2002") if r.remote == "2001"][0]
        p2.reject(ring, 486)                            # C refuses B
        # NOTIFY 486: the port's own recall rings with B's number, off-hook resumes B
        w.run_until(lambda: sim.phones[1].ringing, 8000)
        assert gw.fxs[1].transfer_failures == 1
        sim.phones[1].off_hook()
        w.run_until(lambda: gw.fxs[1].state == "talk" and not c1.remote_held, 5000)
        assert c1.state == "connected"
        assert w.cs.b2b.features("transfer").counters["failed"] == 1
        w.phones["2001"].hangup(c1)
        w.run_until(lambda: gw.fxs[1].state != "talk", 3000)
        sim.phones[1].on_hook()
        w.assert_no_leaks(bindings=2)
        assert gw.leaks()["rtp"] == 0
    finally:
        w.close()
