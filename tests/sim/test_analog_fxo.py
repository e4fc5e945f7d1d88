"""FXO ports as trunks on the virtual clock: an inbound PSTN call with caller
ID reaches a station through its DID, an outbound call leaves through the
trunk prefix (the peer call server routes it back to the appliance), audio
flows both ways, and the far end's disconnect is detected by each
supervision method (battery, loop current, polarity reversal, busy tone).
Every assertion message carries the seed."""
from hal.dsp import dtmf_digit
from hal import g711
from tests.sim.analog_world import World, count_tone, drain
from tests.sim.test_analog_fxs import REORDER_CAD

_DEC = g711.ulaw_table()


def _dialled_digits(frames):
    """DTMF digits in the frames the DAA sent toward the line."""
    out = ""
    prev = None
    for f in frames:
        d = dtmf_digit([_DEC[b] for b in f])
        if d is not None and d != prev:
            out += d
        prev = d
    return out


def test_inbound_pstn_call_reaches_the_did_station_with_caller_id(tmp_path):
    w = World(tmp_path, seed=21)
    try:
        w.settle()
        line = w.lines[1]
        p2 = w.phones[2]
        t0 = w.now()
        line.ring(caller_id=("5551234", "PSTN CALLER"))
        w.run_until(lambda: w.fxo(1).state == "offering", 8000)
        t_invite = w.now() - t0
        w.run_until(lambda: p2.ringing, 3000)
        w.run_until(lambda: p2.caller_ids, 8000)
        cid = p2.caller_ids[-1]
        assert cid["number"] == "5551234" and cid["name"] == "PSTN CALLER", (cid, w.seed)
        assert not line.seized
        p2.off_hook()
        w.run_until(lambda: w.fxo(1).state == "talk", 2000)
        assert line.seized and line.answered_at is not None, w.seed
        w.run(100)
        drain(p2.audio)
        drain(line.rx)
        w.line_talks(1, 1000)
        w.phone_talks(2, 600)
        w.run(1000)
        g2, _ = drain(p2.audio)
        gl, _ = drain(line.rx)
        n_in = count_tone(g2, 1000)
        n_out = count_tone(gl, 600)
        print("seed %d: INVITE %d ms after the first ring; line->phone %d/%d, phone->line %d/%d"
              % (w.seed, t_invite, n_in, len(g2), n_out, len(gl)))
        assert n_in >= 45 and n_out >= 45, (n_in, n_out, w.seed)
        table = w.app.commands.execute(w.app, "show ports")
        row = [l for l in table.split("\n") if l.startswith("fxo 1")][0]
        assert "talk" in row and "5551234 PSTN CALLER" in row, (table, w.seed)
        w.silence()
        t1 = w.now()
        line.drop_battery()
        w.run_until(lambda: w.fxo(1).state == "idle", 2000)
        reason, at = w.fxo(1).last_disconnect
        assert reason == "battery", (reason, w.seed)
        print("seed %d: battery drop detected in %d ms" % (w.seed, at - t1))
        assert not line.seized
        w.run(500)
        d2 = w.app.hardware.hw.fxs[2]
        assert w.fxs(2).state == "tone" and d2._tone_cad == REORDER_CAD, (w.fxs(2).state, w.seed)
        p2.on_hook()
        line.restore_battery()
        w.run(1200)
        w.assert_no_leaks()
    finally:
        w.close()


def test_inbound_call_abandoned_before_answer_is_cancelled(tmp_path):
    w = World(tmp_path, seed=22)
    try:
        w.settle()
        line = w.lines[1]
        line.ring(caller_id=("5550000", "QUITTER"), count=2)
        w.run_until(lambda: w.phones[2].ringing, 10000)
        w.run_until(lambda: w.fxo(1).state == "idle", 20000)
        w.run(500)
        assert not w.phones[2].ringing and w.fxs(2).state == "idle", (w.fxs(2).state, w.seed)
        assert ("CANCEL", ) in [(m,) for m, u in w.peer.log if m == "CANCEL"], w.seed
        w.assert_no_leaks()
    finally:
        w.close()


def _outbound(w, port, number, trunk_port):
    p = w.phones[port]
    line = w.lines[trunk_port]
    drain(line.rx)
    p.off_hook()
    w.run(200)
    p.dial_dtmf(number + "#")
    w.run_until(lambda: line.seized, 4000)
    w.run_until(lambda: w.fxo(trunk_port).state in ("talk", "alerting"), 6000)
    frames, _ = drain(line.rx)
    return _dialled_digits(frames)


def _check_audio(w, port, trunk_port):
    p = w.phones[port]
    line = w.lines[trunk_port]
    w.run(100)
    drain(p.audio)
    drain(line.rx)
    w.line_talks(trunk_port, 1000)
    w.phone_talks(port, 600)
    w.run(600)
    w.silence()
    g, _ = drain(p.audio)
    gl, _ = drain(line.rx)
    n_in, n_out = count_tone(g, 1000), count_tone(gl, 600)
    assert n_in >= 25 and n_out >= 25, (n_in, n_out, w.seed)
    return n_in, n_out


def _disconnect_case(tmp_path, seed, method):
    w = World(tmp_path, seed=seed)
    try:
        w.settle()
        trunk = 2 if method == "polarity" else 1
        prefix = "8" if trunk == 2 else "9"
        digits = _outbound(w, 1, prefix + "5551234", trunk)
        assert digits == "5551234", (digits, w.seed)
        line = w.lines[trunk]
        if trunk == 2:
            # answer supervision by polarity reversal: 183 first, 200 on the reversal
            assert w.fxo(2).state == "alerting", (w.fxo(2).state, w.seed)
            assert (183, "INVITE") in w.peer.responses, w.seed
            line.reverse_polarity()
            w.run_until(lambda: w.fxo(2).state == "talk", 1000)
        w.run_until(lambda: w.fxs(1).state == "talk", 1000)
        n = _check_audio(w, 1, trunk)
        t1 = w.now()
        if method == "battery":
            line.drop_battery()
        elif method == "loop":
            line.loop_loss()
        elif method == "polarity":
            line.reverse_polarity()
        else:
            line.play_tone("busy")
        w.run_until(lambda: w.fxo(trunk).state == "idle", 5000)
        reason, at = w.fxo(trunk).last_disconnect
        assert reason == method, (reason, method, w.seed)
        print("seed %d: %s disconnect detected in %d ms; audio frames in/out %d/%d"
              % ((w.seed, method, at - t1) + n))
        assert not line.seized
        w.run(500)
        assert w.fxs(1).state == "tone", (w.fxs(1).state, w.seed)
        assert ("BYE", ) in [(m,) for m, u in w.peer.log if m == "BYE"], w.seed
        w.phones[1].on_hook()
        line.stop_tone()
        w.run(1200)
        w.assert_no_leaks()
    finally:
        w.close()


def test_outbound_call_far_end_disconnect_by_battery_drop(tmp_path):
    _disconnect_case(tmp_path, 31, "battery")


def test_outbound_call_far_end_disconnect_by_loop_current_loss(tmp_path):
    _disconnect_case(tmp_path, 32, "loop")


def test_outbound_call_far_end_disconnect_by_polarity_reversal(tmp_path):
    _disconnect_case(tmp_path, 33, "polarity")


def test_outbound_call_far_end_disconnect_by_busy_tone(tmp_path):
    _disconnect_case(tmp_path, 34, "busy")


def test_outbound_call_hung_up_by_the_station_releases_the_line(tmp_path):
    w = World(tmp_path, seed=35)
    try:
        w.settle()
        _outbound(w, 1, "95550101", 1)
        w.run_until(lambda: w.fxs(1).state == "talk", 1000)
        w.phones[1].on_hook()
        w.run(1500)
        assert not w.lines[1].seized and w.fxo(1).state == "idle", (w.fxo(1).state, w.seed)
        w.assert_no_leaks()
    finally:
        w.close()
