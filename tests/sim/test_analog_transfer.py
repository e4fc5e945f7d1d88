"""Call transfer from an analog phone (US conventions, RFC 5589 flows) on
the in-process appliance: three FXS stations (1001 A, 1002 B, 1003 C) whose
calls all go through the SipPeer call server.  A talks to B, flashes (B on
hold), dials C and hangs up:
  - C answered: attended transfer, REFER with Replaces; C's phone never rings
    again, B and C talk;
  - C still ringing: semi-attended (blind) transfer, CANCEL A->C and a REFER
    to B without Replaces; C rings with B's caller ID until answered;
  - the transfer target does not exist any more: the NOTIFY carries 404, A is
    rung back and reconnected to B.
Every assertion message carries the seed."""
import pytest

from tests.sim.analog_world import World, count_tone, drain


def _consult(w, c_ext):
    """A (port 1) flashes: B on hold; dials C; returns when C rings."""
    p1, p3 = w.phones[1], w.phones[3]
    p1.flash()
    w.run(800)
    assert w.fxs(1).state == "dialtone" and w.fxs(2).legs[0].remote_hold, (w.fxs(1).state, w.seed)
    n = len(p3.caller_ids)
    p1.dial_dtmf(c_ext)
    w.run_until(lambda: p3.ringing, 3000)
    w.run_until(lambda: len(p3.caller_ids) > n, 8000)
    assert p3.caller_ids[-1]["number"] == "1001", (p3.caller_ids, w.seed)


def _two_way(w, x, y, fx=1000, fy=600, ms=1000):
    """Tones both ways between ports x and y; returns (x->y, y->x) frames."""
    px, py = w.phones[x], w.phones[y]
    w.silence()
    w.run(100)
    for p in w.phones.values():
        drain(p.audio)
    w.phone_talks(x, fx)
    w.phone_talks(y, fy)
    w.run(ms)
    gy, _ = drain(py.audio)
    gx, _ = drain(px.audio)
    w.silence()
    nxy = count_tone(gy, fx)
    nyx = count_tone(gx, fy)
    assert count_tone(gy, fy) == 0 and count_tone(gx, fx) == 0, ("no echo", w.seed)
    return nxy, nyx


def _methods(w, start=0):
    # the survivability monitor's OPTIONS probes reach the peer every second:
    # the call's own requests, in order, are the rest
    return [m for m, _ in w.peer.log[start:] if m != "OPTIONS"]


def test_attended_transfer_connects_b_and_c_with_replaces(tmp_path):
    w = World(tmp_path, seed=21)
    try:
        w.settle()
        p1, p2, p3 = w.phones[1], w.phones[2], w.phones[3]
        w.call(1, "1002", 2)
        _consult(w, "1003")
        p3.off_hook()
        w.run_until(lambda: w.fxs(3).state == "talk" and w.fxs(1).state == "talk", 2000)
        rings = len(p3.caller_ids)
        ua = w.gw.ua
        c0 = dict(ua.counters)
        log0 = len(w.peer.log)
        p1.on_hook()
        w.run_until(lambda: w.fxs(1).state == "idle", 5000)
        w.run(500)
        flow = _methods(w, log0)
        print("seed %d: SIP after A's hang-up: %s" % (w.seed, " ".join(flow)))
        assert flow[0] == "REFER", (flow, w.seed)
        for m in ("REFER", "NOTIFY", "INVITE", "BYE"):
            assert m in flow, (m, flow, w.seed)
        assert flow.count("NOTIFY") == 2 and flow.count("BYE") == 2, (flow, w.seed)
        assert "CANCEL" not in flow, (flow, w.seed)
        assert ua.counters["replaces_in"] == c0["replaces_in"] + 1, (ua.counters, w.seed)
        assert ua.counters["refers_in"] == c0["refers_in"] + 1
        assert ua.counters["notifies_in"] == c0["notifies_in"] + 2
        assert w.fxs(1).transfers == 1 and w.fxs(1).transfer_failures == 0
        assert not p1.ringing and len(p3.caller_ids) == rings and not p3.ringing, w.seed
        assert not w.fxs(1).legs, (w.fxs(1).legs, w.seed)
        a2, a3 = w.fxs(2), w.fxs(3)
        assert a2.state == "talk" and a3.state == "talk", (a2.state, a3.state, w.seed)
        assert len(a2.legs) == 1 and len(a3.legs) == 1, (a2.legs, a3.legs, w.seed)
        assert a3.legs[0].number == "1002", (a3.legs[0].number, w.seed)
        assert not a2.legs[0].remote_hold and not a3.legs[0].remote_hold
        n23, n32 = _two_way(w, 2, 3)
        print("seed %d: after attended transfer 2->3 %d/50, 3->2 %d/50 frames" % (w.seed, n23, n32))
        assert n23 >= 45 and n32 >= 45, (n23, n32, w.seed)
        assert w.leaks()["dialogs"] == 2 and w.leaks()["sessions"] == 2, (w.leaks(), w.seed)
        w.run(5000)    # past REFEREE_BYE_MS: nothing else is released
        assert a2.state == "talk" and a3.state == "talk" and w.fxs(1).state == "idle"
        p2.on_hook()
        w.run(1200)
        assert a3.state == "tone", (a3.state, w.seed)
        p3.on_hook()
        w.assert_no_leaks()
    finally:
        w.close()


def test_semi_attended_transfer_while_c_rings(tmp_path):
    w = World(tmp_path, seed=22)
    try:
        w.settle()
        p1, p2, p3 = w.phones[1], w.phones[2], w.phones[3]
        w.call(1, "1002", 2)
        _consult(w, "1003")
        assert w.fxs(1).state == "calling", (w.fxs(1).state, w.seed)
        log0 = len(w.peer.log)
        n = len(p3.caller_ids)
        p1.on_hook()
        w.run(1500)
        assert w.fxs(1).state == "transferring", (w.fxs(1).state, w.seed)
        w.run_until(lambda: len(p3.caller_ids) > n, 8000)
        assert p3.caller_ids[-1]["number"] == "1002", (p3.caller_ids[-1], w.seed)
        d3 = w.app.hardware.hw.fxs[3]
        assert d3.ringing and w.fxs(3).state == "ringing", (w.fxs(3).state, w.seed)
        w.run(4000)            # C keeps ringing; A waits for the outcome
        assert d3.ringing and w.fxs(1).state == "transferring", (w.fxs(1).state, w.seed)
        p3.off_hook()
        w.run_until(lambda: w.fxs(1).state == "idle", 3000)
        w.run(500)
        flow = _methods(w, log0)
        print("seed %d: SIP after A's hang-up: %s" % (w.seed, " ".join(flow)))
        assert flow[:2] == ["CANCEL", "REFER"], (flow, w.seed)
        assert flow.count("NOTIFY") == 2 and "BYE" in flow, (flow, w.seed)
        assert w.gw.ua.counters["replaces_in"] == 0
        a2, a3 = w.fxs(2), w.fxs(3)
        assert a2.state == "talk" and a3.state == "talk", (a2.state, a3.state, w.seed)
        assert len(a2.legs) == 1 and len(a3.legs) == 1 and not w.fxs(1).legs, w.seed
        n23, n32 = _two_way(w, 2, 3)
        print("seed %d: after semi-attended transfer 2->3 %d/50, 3->2 %d/50 frames"
              % (w.seed, n23, n32))
        assert n23 >= 45 and n32 >= 45, (n23, n32, w.seed)
        p3.on_hook()
        w.run(1200)
        assert a2.state == "tone", (a2.state, w.seed)
        p2.on_hook()
        w.assert_no_leaks()
    finally:
        w.close()


def _inject(w, method, status):
    """The call server answers `status` to the next new `method` that
    carries Referred-By (an INVITE placed for a transfer) or to a REFER."""
    orig = w.peer._proxy

    def proxy(req, addr):
        if req.method == method and (method == "REFER" or req.get("referred-by")) and \
                (method == "REFER" or req.to is None or req.to.tag is None):
            w.peer._reply(req, status)
            return
        orig(req, addr)
    w.peer._proxy = proxy


@pytest.mark.parametrize("case", ["blind-target-404", "attended-refer-603"])
def test_failed_transfer_rings_a_back_and_reconnects_b(tmp_path, case):
    seed = 23 if case == "blind-target-404" else 24
    w = World(tmp_path, seed=seed)
    try:
        w.settle()
        p1, p2, p3 = w.phones[1], w.phones[2], w.phones[3]
        w.call(1, "1002", 2)
        _consult(w, "1003")
        if case == "blind-target-404":
            # C "does not exist" for B: its INVITE for the transfer gets 404
            _inject(w, "INVITE", 404)
        else:
            p3.off_hook()
            w.run_until(lambda: w.fxs(3).state == "talk" and w.fxs(1).state == "talk", 2000)
            _inject(w, "REFER", 603)
        log0 = len(w.peer.log)
        resp0 = len(w.peer.responses)
        n1 = len(p1.caller_ids)
        p1.on_hook()
        w.run_until(lambda: p1.ringing, 5000)
        w.run_until(lambda: len(p1.caller_ids) > n1, 8000)
        assert p1.caller_ids[-1]["number"] == "1002", (p1.caller_ids[-1], w.seed)
        assert w.fxs(1).transfer_failures == 1 and w.fxs(1).state == "ringing"
        assert not w.app.hardware.hw.fxs[3].ringing, (w.fxs(3).state, w.seed)
        assert w.fxs(3).state in ("idle", "tone"), (w.fxs(3).state, w.seed)
        p1.off_hook()
        w.run_until(lambda: w.fxs(1).state == "talk" and not w.fxs(2).legs[0].remote_hold, 2000)
        flow = _methods(w, log0)
        print("seed %d %s: SIP after A's hang-up: %s; responses relayed %s" % (
            w.seed, case, " ".join(flow), w.peer.responses[resp0:]))
        if case == "blind-target-404":
            assert flow[:2] == ["CANCEL", "REFER"] and flow.count("NOTIFY") == 2, (flow, w.seed)
        else:
            assert flow[0] == "REFER" and "NOTIFY" not in flow and "BYE" in flow, (flow, w.seed)
        n12, n21 = _two_way(w, 1, 2)
        print("seed %d: after the recall 1->2 %d/50, 2->1 %d/50 frames" % (w.seed, n12, n21))
        assert n12 >= 45 and n21 >= 45, (n12, n21, w.seed)
        assert len(w.fxs(2).legs) == 1 and len(w.fxs(1).legs) == 1
        p1.on_hook()
        w.run(1200)
        p2.on_hook()
        p3.on_hook()
        w.assert_no_leaks()
    finally:
        w.close()


def _conference(w):
    """A (1) talks to B (2), consults C (3), C answers, A flashes: three-way."""
    p1, p3 = w.phones[1], w.phones[3]
    w.call(1, "1002", 2)
    _consult(w, "1003")
    p3.off_hook()
    w.run_until(lambda: w.fxs(3).state == "talk" and w.fxs(1).state == "talk", 2000)
    p1.flash()
    w.run_until(lambda: w.fxs(1).state == "conference", 2000)
    w.run_until(lambda: not w.fxs(2).legs[0].remote_hold, 2000)


def test_hanging_up_a_three_way_call_transfers_the_other_two(tmp_path):
    w = World(tmp_path, seed=25)
    try:
        w.settle()
        p1, p2, p3 = w.phones[1], w.phones[2], w.phones[3]
        _conference(w)
        log0 = len(w.peer.log)
        p1.on_hook()
        w.run_until(lambda: w.fxs(1).state == "idle", 5000)
        w.run(500)
        flow = _methods(w, log0)
        assert flow[0] == "REFER" and "CANCEL" not in flow, (flow, w.seed)
        assert w.fxs(1).transfers == 1 and not w.fxs(1).legs
        assert w.fxs(2).state == "talk" and w.fxs(3).state == "talk"
        assert w.fxs(3).legs[0].number == "1002", (w.fxs(3).legs[0].number, w.seed)
        n23, n32 = _two_way(w, 2, 3)
        assert n23 >= 45 and n32 >= 45, (n23, n32, w.seed)
        p2.on_hook()
        w.run(1200)
        p3.on_hook()
        w.assert_no_leaks()
    finally:
        w.close()


def test_conference_hangup_drop_ends_both_calls(tmp_path):
    w = World(tmp_path, seed=26,
              extra=["set services convergence-services analog conference-hangup drop"])
    try:
        w.settle()
        p1, p2, p3 = w.phones[1], w.phones[2], w.phones[3]
        _conference(w)
        p1.on_hook()
        w.run_until(lambda: w.fxs(2).state == "tone" and w.fxs(3).state == "tone", 5000)
        assert w.fxs(1).transfers == 0
        p2.on_hook()
        p3.on_hook()
        w.assert_no_leaks()
    finally:
        w.close()


def test_hanging_up_with_a_call_on_hold_rings_back(tmp_path):
    w = World(tmp_path, seed=27)
    try:
        w.settle()
        p1, p2 = w.phones[1], w.phones[2]
        w.call(1, "1002", 2)
        p1.flash()
        w.run_until(lambda: w.fxs(1).state == "dialtone" and w.fxs(2).legs[0].remote_hold, 2000)
        n1 = len(p1.caller_ids)
        p1.on_hook()
        w.run_until(lambda: p1.ringing, 3000)
        w.run_until(lambda: len(p1.caller_ids) > n1, 8000)
        assert p1.caller_ids[-1]["number"] == "1002", (p1.caller_ids[-1], w.seed)
        assert w.fxs(2).state == "talk", w.fxs(2).state      # B was not dropped
        p1.off_hook()
        w.run_until(lambda: w.fxs(1).state == "talk" and not w.fxs(2).legs[0].remote_hold, 2000)
        n12, n21 = _two_way(w, 1, 2)
        assert n12 >= 45 and n21 >= 45, (n12, n21, w.seed)
        p1.on_hook()
        w.run(1200)
        p2.on_hook()
        w.assert_no_leaks()
    finally:
        w.close()
