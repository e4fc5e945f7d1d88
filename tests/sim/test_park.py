"""Call park on the local call server (firmware/callserver/park.py), on the
virtual clock with full SIP flows: park by blind transfer to the lot (the
first free slot, named in the final NOTIFY's sipfrag), by park code + slot
from a phone with a call on hold (480 "Parked At ..."), and from an analog
phone by hook flash; retrieve by calling the slot or retrieve code + slot;
the recall to the parker after the recall timeout, answered or not; a full
lot, an empty slot, and the commit errors of the configuration."""
from tests.sim.cs_world import CsWorld, B, DOMAIN

PARK = (B + "call-park extension 700", B + "call-park slot-first 701",
        B + "call-park slot-last 703", B + "call-park recall-timeout 30")


def _connect(w, a, b_ext):
    c = w.phones[a].call(b_ext)
    w.run_until(lambda: c.state == "connected", 5000)
    if b_ext not in w.phones:
        return c, None
    inc = [x for x in w.phones[b_ext].calls if x.role == "uas" and x.state == "connected"][-1]
    return c, inc


def _incoming(w, ext):
    return [x for x in w.phones[ext].calls if x.role == "uas" and x.state != "terminated"]


def _sipfrags(phone):
    """Bodies of the refer NOTIFYs the phone receives."""
    out = []

    def spy(p, req):
        if req.method == "NOTIFY":
            out.append(req.body.decode())
    phone.on_request = spy
    return out


def _park_by_transfer(w, parker, inc, lot="700"):
    frags = _sipfrags(parker)
    events = []
    parker.hold(inc)
    w.run(1000)
    assert inc.session.refer("sip:%s@%s" % (lot, DOMAIN), None,
                             lambda ev, st: events.append((ev, st)), parker.now())
    w.run_until(lambda: events and events[-1][0] in ("final", "rejected"), 5000)
    return events, frags


def test_park_by_transfer_to_the_lot_and_retrieve_by_calling_the_slot(tmp_path):
    w = CsWorld(tmp_path, seed=61, extra=PARK)
    ended = []

    class Cdrs:
        def call_started(self, rec):
            pass

        def call_answered(self, rec):
            pass

        def call_ended(self, rec):
            ended.append(rec.as_dict())
    w.app.calls.subscribe(Cdrs())
    try:
        w.register_all()
        c12, inc2 = _connect(w, "2001", "2002")
        events, frags = _park_by_transfer(w, w.phones["2002"], inc2)
        assert events[-1] == ("final", 200), events
        assert frags[-1].startswith("SIP/2.0 200 Parked At 701"), frags
        w.phones["2002"].hangup(inc2)
        w.run(5000)
        assert c12.state == "connected"
        out = w.cli("show call-server parked-calls")
        assert "1 of 3 taken" in out and "701" in out and "2001" in out and "2002" in out, out
        assert w.cs.b2b.busy("s2001") == 1        # the parked phone is in a call
        c3, inc1 = _connect(w, "2003", "701")     # retrieve: call the slot
        w.run_until(lambda: not c12.remote_held, 3000)
        assert c12.state == "connected"
        assert "0 of 3 taken" in w.cli("show call-server parked-calls")
        assert w.cs.b2b.features("park").counters["retrieved"] == 1
        empty = w.phones["2002"].call("701")
        w.run_until(lambda: empty.state == "terminated", 3000)
        assert empty.status == 404, empty.status
        w.phones["2003"].hangup(c3)
        w.run_until(lambda: c12.state == "terminated", 3000)
        # the parked call's record: called 701 (parked), 2002 the number first called
        parked = [r for r in ended if r["redirect"] == "parked"]
        assert [(r["calling"], r["called"], r["original_called"]) for r in parked] == \
            [("2001", "701", "2002")], ended
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_park_code_and_retrieve_code_and_a_full_lot(tmp_path):
    w = CsWorld(tmp_path, seed=62, sip_exts=("2001", "2002", "2003", "2004", "2005"), extra=PARK)
    try:
        w.register_all()
        c12, inc2 = _connect(w, "2001", "2002")
        w.phones["2002"].hold(inc2)
        w.run(1000)
        code = w.phones["2002"].call("11702")    # park code + slot: handled, 480
        w.run_until(lambda: code.state == "terminated", 3000)
        assert code.status == 480, code.status
        w.run_until(lambda: inc2.state == "terminated", 3000)   # the parker's leg is ended
        assert c12.state == "connected"
        assert "702" in w.cli("show call-server parked-calls")
        # fill the lot: two more parks by transfer take 701 and 703
        c34, inc4 = _connect(w, "2003", "2004")
        ev, frags = _park_by_transfer(w, w.phones["2004"], inc4)
        assert ev[-1] == ("final", 200) and "Parked At 701" in frags[-1], (ev, frags)
        w.phones["2004"].hangup(inc4)
        c25, inc5 = _connect(w, "2002", "2005")
        ev, frags = _park_by_transfer(w, w.phones["2005"], inc5)
        assert ev[-1] == ("final", 200) and "Parked At 703" in frags[-1], (ev, frags)
        w.phones["2005"].hangup(inc5)
        w.run(2000)
        c45, inc5 = _connect(w, "2004", "2005")
        ev, frags = _park_by_transfer(w, w.phones["2005"], inc5)
        assert ev[-1] == ("final", 486) and "Park Lot Full" in frags[-1], (ev, frags)
        assert c45.state == "connected"           # the transferor keeps its call
        w.phones["2005"].hangup(inc5)
        w.run_until(lambda: c45.state == "terminated", 3000)
        nothing = w.phones["2004"].call("11701")  # no call on hold: nothing to park
        w.run_until(lambda: nothing.state == "terminated", 3000)
        assert nothing.status == 481, nothing.status
        r = w.phones["2004"].call("12702")        # retrieve code + slot
        w.run_until(lambda: r.state == "connected", 5000)
        w.run_until(lambda: not c12.remote_held, 3000)
        w.phones["2004"].hangup(r)
        w.run_until(lambda: c12.state == "terminated", 3000)
        w.phones["2003"].hangup(c34)
        w.phones["2002"].hangup(c25)
        w.run(3000)
        assert w.cs.b2b.features("park").counters["abandoned"] == 2
        assert "0 of 3 taken" in w.cli("show call-server parked-calls")
        w.assert_no_leaks(bindings=5)
    finally:
        w.close()


def test_unretrieved_call_rings_the_parker_after_the_recall_timeout(tmp_path):
    w = CsWorld(tmp_path, seed=63, extra=PARK)
    try:
        w.register_all()
        c12, inc2 = _connect(w, "2001", "2002")
        events, frags = _park_by_transfer(w, w.phones["2002"], inc2)
        assert events[-1] == ("final", 200), events
        w.phones["2002"].hangup(inc2)
        t0 = w.now()
        w.phones["2002"].ring_ms = None
        w.run_until(lambda: _incoming(w, "2002"), 40000)
        assert 29000 <= w.now() - t0 <= 31500, w.now() - t0
        recall = _incoming(w, "2002")[0]
        assert recall.remote == "2001", recall.remote
        assert "0 of 3 taken" in w.cli("show call-server parked-calls")
        w.phones["2002"].answer(recall)
        w.run_until(lambda: recall.state == "connected", 3000)
        w.run_until(lambda: not c12.remote_held, 3000)
        assert w.cs.b2b.features("park").counters["recalled"] == 1
        w.phones["2001"].hangup(c12)
        w.run_until(lambda: recall.state == "terminated", 3000)
        # park again; nobody answers the recall: the parked party gets BYE
        w.phones["2002"].ring_ms = 500
        c12, inc2 = _connect(w, "2001", "2002")
        w.phones["2002"].ring_ms = None
        events, frags = _park_by_transfer(w, w.phones["2002"], inc2)
        w.phones["2002"].hangup(inc2)
        w.run_until(lambda: _incoming(w, "2002"), 40000)
        w.run_until(lambda: c12.state == "terminated", 40000)
        assert c12.end_reason == "bye_received", c12.end_reason
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_analog_phone_parks_by_flash_and_park_code(tmp_path):
    w = CsWorld(tmp_path, seed=64, sip_exts=("2001", "2002"), fxs=True, extra=PARK)
    try:
        w.register_all()
        sim, gw = w.app.hardware.sim, w.app.gateway
        w.run_until(lambda: gw.port_ready("fxs", 1), 3000)
        c = w.phones["2001"].call("1001")
        w.run_until(lambda: sim.phones[1].ringing, 5000)
        sim.phones[1].off_hook()
        w.run_until(lambda: c.state == "connected" and gw.fxs[1].state == "talk", 3000)
        sim.phones[1].flash()
        w.run(800)
        sim.phones[1].dial_dtmf("11701")
        park = w.cs.b2b.features("park")
        w.run_until(lambda: "701" in park.slots, 8000)
        w.run(1000)
        assert gw.fxs[1].legs == [], gw.fxs[1].legs      # the held leg was ended
        assert gw.fxs[1].last_status == 480
        # the confirmation tone (the stutter tone's frequencies, not reorder's)
        assert tuple(gw.fxs[1].drv._tone) == (350, 440), gw.fxs[1].drv._tone
        sim.phones[1].on_hook()
        w.run(2000)
        assert gw.fxs[1].state == "idle" and c.state == "connected", (gw.fxs[1].state, c.state)
        r, inc = _connect(w, "2002", "701")
        w.run_until(lambda: not c.remote_held, 3000)
        w.phones["2002"].hangup(r)
        w.run_until(lambda: c.state == "terminated", 3000)
        w.assert_no_leaks(bindings=2)
        assert gw.leaks()["rtp"] == 0
    finally:
        w.close()


def test_park_configuration_errors(tmp_path):
    w = CsWorld(tmp_path, seed=65)
    try:
        w.assert_refused([B + "call-park extension 2001"], "is already the extension of station")
        w.assert_refused([B + "call-park extension 700", B + "call-park slot-first 701"],
                         "a slot range needs both slot-first and slot-last")
        w.assert_refused([B + "call-park extension 700", B + "call-park slot-first 709",
                          B + "call-park slot-last 701"], "is before slot-first")
        w.assert_refused([B + "call-park extension 700", B + "call-park slot-first 2000",
                          B + "call-park slot-last 2005"], "slot 2001 is already the extension")
        w.assert_refused([B + "call-park slot-first 701", B + "call-park slot-last 702"],
                         "park slots need a lot extension")
        w.assert_refused([B + "call-park extension 700", B + "call-park slot-first 701",
                          B + "call-park slot-last 799"], "more than 50 slots")
        w.assert_refused([B + "call-park extension 700", B + "call-park slot-first 01",
                          B + "call-park slot-last 02", B + "feature-codes park 20"],
                         "with slot 01 it is the extension of station s2001")
        w.assert_refused([B + "feature-codes park *8"], "already the code of park")
        assert "not configured" in w.cli("show call-server parked-calls")
    finally:
        w.close()
