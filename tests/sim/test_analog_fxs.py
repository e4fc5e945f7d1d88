"""FXS ports as telephones on the virtual clock: registration, dial tone,
dialling through the dial plan, ringing with caller ID, two-way audio over
RTP, busy/reorder, hook flash (hold, consultation, three-way conference),
call waiting, and no leaks afterwards.  Every assertion message carries the
seed."""
from hal import tones
from tests.sim.analog_world import World, count_tone, drain

DIAL = (350, 440)
RINGBACK = (440, 480)
BUSY_CAD = tones.tone("US", "busy")[1]
REORDER_CAD = tones.tone("US", "congestion")[1]


def _hang_up_all(w, ports):
    for p in ports:
        w.phones[p].on_hook()
        w.run(1200)
    w.silence()


def test_station_to_station_call_with_caller_id_and_two_way_audio(tmp_path):
    w = World(tmp_path, seed=11)
    try:
        w.settle()
        p1, p2 = w.phones[1], w.phones[2]
        d1 = w.app.hardware.hw.fxs[1]
        p1.off_hook()
        w.run(200)
        assert d1.tone == DIAL and p1.tone() == DIAL, (d1.tone, w.seed)
        t0 = w.now()
        p1.dial_dtmf("1")
        w.run(200)
        assert p1.tone() == (), ("first digit stops dial tone", w.seed)
        p1.dial_dtmf("002")
        w.run_until(lambda: p2.ringing, 3000)
        ring_ms = w.now() - t0
        w.run(500)
        assert p1.tone() == RINGBACK, (p1.tone(), w.seed)
        w.run_until(lambda: p2.caller_ids, 8000)
        cid = p2.caller_ids[-1]
        assert cid["number"] == "1001" and cid["name"] == "Alice", (cid, w.seed)
        assert len(cid["datetime"]) == 8
        assert p2.fsk_outside_oht == 0
        table = w.app.commands.execute(w.app, "show ports")
        row2 = [l for l in table.split("\n") if l.startswith("fxs 2")][0]
        assert "ringing" in row2 and "1001 Alice" in row2, (table, w.seed)
        p2.off_hook()
        w.run_until(lambda: w.fxs(1).state == "talk" and w.fxs(2).state == "talk", 2000)
        assert p1.tone() == () and p2.tone() == ()
        w.run(100)
        drain(p1.audio)
        drain(p2.audio)
        w.phone_talks(1, 1000)
        w.phone_talks(2, 600)
        w.run(1000)        # 50 frames each way
        got2, lost2 = drain(p2.audio)
        got1, lost1 = drain(p1.audio)
        n21 = count_tone(got2, 1000)
        n12 = count_tone(got1, 600)
        print("seed %d: ring after %d ms; 1->2 %d/%d frames with 1 kHz, 2->1 %d/%d with 600 Hz"
              % (w.seed, ring_ms, n21, len(got2), n12, len(got1)))
        assert lost1 == 0 and lost2 == 0
        assert n21 >= 45 and count_tone(got2, 600) == 0, (n21, len(got2), w.seed)
        assert n12 >= 45 and count_tone(got1, 1000) == 0, (n12, len(got1), w.seed)
        table = w.app.commands.execute(w.app, "show ports")
        assert "talk" in table
        p1.on_hook()
        w.run(1200)               # on-hook longer than hook-flash-max (800 ms) is a hang-up
        assert w.fxs(1).state == "idle"
        d2 = w.app.hardware.hw.fxs[2]
        assert w.fxs(2).state == "tone" and d2.tone == (480, 620), (w.fxs(2).state, w.seed)
        assert d2._tone_cad == REORDER_CAD
        p2.on_hook()
        w.silence()
        w.assert_no_leaks()
    finally:
        w.close()


def test_busy_station_gives_busy_tone_and_unknown_number_reorder(tmp_path):
    w = World(tmp_path, seed=12)
    try:
        w.settle()
        p1, p4 = w.phones[1], w.phones[4]
        d1 = w.app.hardware.hw.fxs[1]
        p4.off_hook()              # dave is off-hook (dial tone): a call to him gets 486
        w.run(200)
        p1.off_hook()
        w.run(200)
        p1.dial_dtmf("1004")
        w.run_until(lambda: w.fxs(1).state == "tone", 3000)
        assert w.fxs(1).last_status == 486, (w.fxs(1).last_status, w.seed)
        assert d1.tone == (480, 620) and d1._tone_cad == BUSY_CAD, (d1.tone, d1._tone_cad, w.seed)
        assert ("486", "INVITE") in [(str(s), m) for s, m in w.peer.responses]
        p1.on_hook()
        p4.on_hook()
        w.run(1200)
        p1.off_hook()
        w.run(200)
        p1.dial_dtmf("1999")       # a complete number nobody has: the peer answers 404
        w.run_until(lambda: w.fxs(1).state == "tone", 3000)
        assert w.fxs(1).last_status == 404, (w.fxs(1).last_status, w.seed)
        assert d1._tone_cad == REORDER_CAD, (d1._tone_cad, w.seed)
        p1.on_hook()
        w.run(1200)
        p1.off_hook()
        w.run(200)
        p1.dial_dtmf("7")          # a prefix of XXXX: waits; the inter-digit timeout then reorders
        w.run(4500)
        assert w.fxs(1).state == "tone" and d1._tone_cad == REORDER_CAD, (w.fxs(1).state, w.seed)
        p1.on_hook()
        w.assert_no_leaks()
    finally:
        w.close()


def test_hook_flash_hold_consultation_and_three_way_conference(tmp_path):
    w = World(tmp_path, seed=13)
    try:
        w.settle()
        p1, p2, p3 = w.phones[1], w.phones[2], w.phones[3]
        w.call(1, "1002", 2)
        p1.flash()
        w.run(800)
        a1, a2 = w.fxs(1), w.fxs(2)
        held = [l for l in a1.legs if l.held]
        assert len(held) == 1, (a1.legs, w.seed)
        assert a2.legs[0].remote_hold, ("port 2 sees the re-INVITE sendonly", w.seed)
        assert a1.state == "dialtone" and p1.tone() == DIAL, (a1.state, w.seed)
        p1.dial_dtmf("1003")
        w.run_until(lambda: p3.ringing, 3000)
        w.run_until(lambda: p3.caller_ids, 8000)
        assert p3.caller_ids[-1]["number"] == "1001"
        p3.off_hook()
        w.run_until(lambda: w.fxs(3).state == "talk", 2000)
        assert a1.state == "talk" and len(a1.legs) == 2
        # consultation: 1 talks with 3 only, 2 is on hold
        w.run(100)
        for p in (1, 2, 3):
            drain(w.phones[p].audio)
        w.phone_talks(1, 1000)
        w.phone_talks(2, 600)
        w.phone_talks(3, 1400)
        w.run(600)
        g1, _ = drain(p1.audio)
        g2, _ = drain(p2.audio)
        g3, _ = drain(p3.audio)
        assert count_tone(g3, 1000) >= 25 and count_tone(g1, 1400) >= 25, (len(g1), len(g3), w.seed)
        assert count_tone(g2, 1000) == 0 and count_tone(g1, 600) == 0, ("held party is not heard", w.seed)
        # flash again: three-way
        p1.flash()
        w.run(800)
        assert a1.state == "conference", (a1.state, w.seed)
        assert not a2.legs[0].remote_hold
        for p in (1, 2, 3):
            drain(w.phones[p].audio)
        w.run(1000)
        g1, _ = drain(p1.audio)
        g2, _ = drain(p2.audio)
        g3, _ = drain(p3.audio)
        n = (count_tone(g1, 600, 10), count_tone(g1, 1400, 10), count_tone(g2, 1000, 10),
             count_tone(g2, 1400, 10), count_tone(g3, 1000, 10), count_tone(g3, 600, 10))
        print("seed %d: conference frames: 1 hears 600/1400 %d/%d, 2 hears 1000/1400 %d/%d, "
              "3 hears 1000/600 %d/%d (of %d/%d/%d)" % ((w.seed,) + n + (len(g1), len(g2), len(g3))))
        for x in n:
            assert x >= 40, (n, w.seed)
        # on-hook leaves the other two together (analog conference-hangup transfer,
        # the default; test_analog_transfer covers both settings)
        p1.on_hook()
        w.run_until(lambda: w.fxs(1).state == "idle", 5000)
        assert w.fxs(2).state == "talk" and w.fxs(3).state == "talk", (
            w.fxs(2).state, w.fxs(3).state, w.seed)
        _hang_up_all(w, (2, 3))
        w.assert_no_leaks()
    finally:
        w.close()


def test_call_waiting_tone_and_flash_answers_the_second_call(tmp_path):
    w = World(tmp_path, seed=14)
    try:
        w.settle()
        p1, p2, p3 = w.phones[1], w.phones[2], w.phones[3]
        w.call(1, "1002", 2)
        p3.off_hook()
        w.run(200)
        p3.dial_dtmf("1001")
        w.run(1500)
        a1 = w.fxs(1)
        assert w.app.hardware.hw.fxs[1].tone == (440,), ("call waiting tone", w.seed)
        assert [l for l in a1.legs if l.waiting], (a1.legs, w.seed)
        p1.flash()
        w.run(800)
        assert w.fxs(3).state == "talk", (w.fxs(3).state, w.seed)
        assert w.fxs(2).legs[0].remote_hold, w.seed
        p1.flash()                 # swap back to 2
        w.run(800)
        assert not w.fxs(2).legs[0].remote_hold and w.fxs(3).legs[0].remote_hold, w.seed
        _hang_up_all(w, (1, 2, 3))
        w.assert_no_leaks()
    finally:
        w.close()
