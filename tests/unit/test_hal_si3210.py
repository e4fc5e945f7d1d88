# portable: micropython
"""Si3210/Si3215 driver against the simulated ProSLIC and a virtual phone."""
from tests.portable import raises
from hal.sim.bus import SimClock, SimSPI, SimPCM
from hal.sim.si3210 import Si3210Model
from hal.drivers import si3210
from hal.drivers.si3210 import Si3210
from hal import tones, g711
from hal import sim


def make(clock=None, pcm=True, country="US", **model_kw):
    clock = clock or SimClock()
    p = SimPCM(8) if pcm else None
    m = Si3210Model(clock, pcm=p, pcm_chan=0, **model_kw)
    spi = SimSPI(m, clock, cs_per_byte=True)
    d = Si3210(spi, p, 0, country=country, name="fxs 1", chip="Si3215")
    return clock, m, d


def up(**kw):
    clock, m, d = make(**kw)
    d.init(clock, clock.sleep)
    return clock, m, d


def run(clock, d, ms, step=10):
    return sim.run(d, ms, step, now=clock)


def kinds(evs):
    return [e[0] for e in evs]


def _bringup_order(product):
    """DAHDI wctdm_init_proslic order, on the model's history."""
    clock, m, d = up(product=product)
    h = m.history
    assert d.ready and d.product == product
    i0 = h.index(("r", 0, m.regs[0] & 0x7F))
    i8 = h.index(("r", 8, 0x02))
    i64 = h.index(("r", 64, 0x00))
    i11 = h.index(("r", 11, 0x33))
    i30 = h.index(("w", 30, 0x00))
    ioff = h.index(("w", 14, 0x10))
    osc1 = 13 if product == "Si3210" else 0
    iind = h.index(("iw", osc1, 0x7B30))
    iloop = h.index(("w", 8, 0x00))
    i108 = h.index(("w", 108, 0xEB))
    filt = 35 if product == "Si3210" else 22
    ihold = h.index(("iw", filt + 1, 0x8000), i108)   # 35 is 0x8000 in the table itself
    i14 = h.index(("w", 14, 0x00))
    ivbat = h.index(("r", 82, 0xC8))
    i71 = h.index(("w", 71, 0x01))
    i93 = h.index(("w", 93, 0x19))
    i97 = h.index(("w", 97, 0x1F))
    i96 = h.index(("w", 96, 0x5F))
    i96done = h.index(("r", 96, 0x00), i96)
    idcdc = h.index(("w", 93, 0x99))
    i107 = h.index(("r", 107, 0x08))
    ipcm = h.index(("w", 1, 0x28))
    i18 = h.index(("w", 18, 0xFF), ipcm)
    i73 = h.index(("w", 73, 0x04))
    ilf = h.index(("w", 64, 1))
    assert 0 <= i0 < i8 < i64 < i11 < i30 < ioff < iind < iloop < i108 < ihold < i14, h.items[:40]
    assert i14 < ivbat < i71 < i93 < i97 < i96 < i96done < idcdc < i107 < ipcm < i18 < i73 < ilf
    # indirect table read back after loading, filters restored after calibration
    assert 0 <= h.index(("ir", osc1, 0x7B30)) < iloop
    restore = h.index(("iw", filt + 1, 0x0320), i107)
    assert i107 < restore < ipcm
    if product == "Si3210":
        i67 = h.index(("w", 67, 0x07))
        i66 = h.index(("w", 66, 0x01))
        assert i108 < i67 < i66 < i14
    else:
        assert h.index(("w", 67, 0x07)) < 0 and h.index(("w", 66, 0x01)) < 0
    assert m.regs[64] == 1 and m.regs[8] == 0 and m.regs[73] == 0x04 and m.regs[108] == 0xEB
    assert m.hazards == [] and m.cal_faults == []


def test_bringup_sequence_on_history():
    _bringup_order("Si3215")
    _bringup_order("Si3210")


def test_indirect_write_read_roundtrip():
    clock, m, d = up()
    d.write_indirect(40, 0x1234)
    assert m.ind[40] == 0x1234
    assert d.read_indirect(40) == 0x1234


def test_no_chip():
    for missing in (0x00, 0xFF):
        clock, m, d = make(present=False, missing_value=missing)
        e = raises(si3210.NotDetected, d.init, clock, clock.sleep)
        assert "Si3215 not detected" in str(e) and ("0x%02x" % missing) in str(e)


def test_calibration_timeout_typed_error():
    clock, m, d = make(never_calibrates=True)
    e = raises(si3210.CalibrationError, d.init, clock, clock.sleep)
    assert "reg 96" in str(e)
    assert 2000 <= clock.t < 3000


def test_vbat_never_ramps():
    clock, m, d = make(vbat_fails=True)
    raises(si3210.PowerUpError, d.init, clock, clock.sleep)


def test_indirect_stuck():
    clock, m, d = make(indirect_stuck=True)
    raises(si3210.IndirectTimeout, d.init, clock, clock.sleep)


def test_spi_error_raises_oserror():
    clock, m, d = up()
    d.spi.fail_next(1)
    raises(OSError, d.poll, clock.t + 10)
    assert d.poll(clock.t + 20) == ()


def test_hook_off_on_with_debounce():
    clock, m, d = up()
    m.phone.off_hook()
    evs = run(clock, d, 10)
    assert evs == []          # still debouncing
    evs = run(clock, d, 30)
    assert kinds(evs) == ["hook_off"]
    m.phone.on_hook()
    evs = run(clock, d, 500)
    assert evs == []          # could still be a flash
    evs = run(clock, d, 400)
    assert kinds(evs) == ["hook_on"]


def test_short_glitch_is_debounced():
    clock, m, d = up()
    m.phone.off_hook()
    clock.t += 5
    d.poll(clock.t)
    m.phone.on_hook()
    assert run(clock, d, 100) == []


def test_flash_vs_hangup():
    clock, m, d = up()
    m.phone.off_hook()
    run(clock, d, 100)
    m.phone.flash(300)
    assert kinds(run(clock, d, 600)) == ["flash"]
    m.phone.flash(1200)        # too long: hang up then off-hook again
    assert kinds(run(clock, d, 1500)) == ["hook_on", "hook_off"]


def test_pulse_dialing():
    clock, m, d = up()
    m.phone.off_hook()
    run(clock, d, 100)
    m.phone.pulse_dial("305")
    evs = run(clock, d, 4000, step=5)
    assert [e for e in evs if e[0] == "pulse_digit"] == [
        ("pulse_digit", "3"), ("pulse_digit", "0"), ("pulse_digit", "5")]
    assert "flash" not in kinds(evs) and "hook_on" not in kinds(evs)


def test_dtmf_digits_one_per_key_down():
    clock, m, d = up()
    m.phone.off_hook()
    run(clock, d, 100)
    m.phone.dial_dtmf("12*#0D", on_ms=120, off_ms=80)
    evs = run(clock, d, 2000)
    assert "".join(e[1] for e in evs if e[0] == "digit") == "12*#0D"


def test_tones_program_oscillators():
    for product, rate, osc1 in (("Si3215", 16000, 0), ("Si3210", 8000, 13)):
        clock, m, d = up(product=product)
        m.phone.off_hook()
        run(clock, d, 50)
        d.play_tone("dial", clock.t)
        assert m.phone.tone() == (350, 440), product
        c, x, y = tones.osc_coefficients(350, -13, rate)
        assert m.ind[osc1] == c and m.ind[osc1 + 1] == x and m.ind[osc1 + 2] == 0
        d.play_tone("busy", clock.t)
        assert m.phone.tone() == (480, 620)
        run(clock, d, 500)
        assert m.phone.tone() == ()       # cadence off half
        run(clock, d, 500)
        assert m.phone.tone() == (480, 620)
        d.stop_tone()
        assert m.phone.tone() == ()


def test_country_tones():
    clock, m, d = up(country="DE")
    d.play_tone("dial", clock.t)
    assert m.phone.tone() == (425,)
    clock, m, d = up(country="UK")
    d.play_tone("busy", clock.t)
    assert m.phone.tone() == (400,)


def test_ring_cadence_and_caller_id():
    clock, m, d = up()
    d.ring(clock.t, caller_id={"datetime": "03151405", "number": "6175551212",
                               "name": "JOHN DOE"})
    evs = run(clock, d, 12500, step=20)
    log = m.phone.ring_log
    assert len(log) == 3
    assert log[0][1] - log[0][0] == 2000
    assert log[1][0] - log[0][1] == 4000
    assert m.phone.caller_ids == [{"type": 0x80, "datetime": "03151405",
                                   "number": "6175551212", "name": "JOHN DOE"}]
    assert m.phone.fsk_outside_oht == 0
    assert ("cid_sent", "cid") in evs
    # answer: ring trip stops ringing and reports off-hook
    m.phone.off_hook()
    evs = run(clock, d, 100)
    assert kinds(evs) == ["hook_off"] and not d.ringing and m.regs[64] == 1


def test_private_caller_id_and_ring_count():
    clock, m, d = up()
    d.ring(clock.t, caller_id={"datetime": "01010000", "number_absent": "P",
                               "name_absent": "P"}, count=2)
    evs = run(clock, d, 14000, step=20)
    assert ("ring_done", None) in evs
    assert len(m.phone.ring_log) == 2
    cid = m.phone.caller_ids[0]
    assert cid["number_absent"] == "P" and "number" not in cid


def test_vmwi_on_hook_no_ring():
    clock, m, d = up()
    d.send_vmwi(True, clock.t)
    evs = run(clock, d, 1500, step=20)
    assert ("cid_sent", "vmwi") in evs
    assert m.phone.caller_ids[-1]["vmwi"] is True
    assert m.phone.ring_log == []
    assert m.regs[64] == 1


def test_polarity_reversal():
    clock, m, d = up()
    d.set_reversal(True)
    assert m.regs[64] == 5 and m.phone.reversed
    d.set_reversal(False)
    assert m.regs[64] == 1


def test_cannot_ring_off_hook_phone():
    clock, m, d = up()
    m.phone.off_hook()
    run(clock, d, 50)
    raises(si3210.StateError, d.ring, clock.t)


def test_pcm_frames_to_and_from_phone():
    clock, m, d = up()
    m.phone.off_hook()
    run(clock, d, 50)
    # receive gain: DAHDI's RECV_DIGITAL_GAIN 0x2000 is 6 dB below unity (0x4000)
    dec = g711.ulaw_table()
    d.write_frame(bytes((g711.ulaw_encode(8000),)) * 160)
    got = dec[m.phone.audio.pop()[0]]
    assert 3700 <= got <= 4300, got
    # transmit gain 0x4000: the phone's voice reaches the host unchanged
    m.phone.speak(b"\x11" * 160)
    assert d.read_frame() == b"\x11" * 160
    assert d.read_frame() is None


def test_multi_byte_cs_frame_is_protocol_error():
    clock, m, d = up()
    d.spi.cs_per_byte = False
    d.read(8)
    assert m.protocol_errors == 1


def test_daisy_chained_slics_share_a_chip_select_with_a_channel_select_byte():
    from hal.builder import build
    board = {"name": "chain", "law": "ulaw", "pcm": {"kind": "sim", "channels": 4},
             "fxs": tuple({"port": i + 1, "chip": "si3215", "spi": 0, "cs": 0, "chain": i,
                           "pcm_chan": i} for i in range(3))}
    hw = build(board, "sim")
    assert sorted(hw.fxs) == [1, 2, 3] and not hw.faults, hw.faults
    w = hw.sim
    chain = w.chains[(0, 0)]
    assert chain.protocol_errors == 0
    assert sorted(chain.selects) == [1, 2, 4] and min(chain.selects.values()) > 50
    # each module saw only its own bring-up, and each was calibrated
    for port in (1, 2, 3):
        m = w.slics[port]
        assert (14, 0x10) in m.history.writes(), port
        assert hw.fxs[port].product == "Si3215"
    before = [len(w.slics[p].history.writes()) for p in (1, 2, 3)]
    hw.fxs[2].write(64, 2)         # one write to port 2 reaches its module only
    after = [len(w.slics[p].history.writes()) for p in (1, 2, 3)]
    assert after[1] == before[1] + 1 and after[0] == before[0] and after[2] == before[2]
    assert w.slics[2].history.writes()[-1] == (64, 2) and w.slics[2].regs[64] == 2


def test_daisy_chain_select_naming_no_module_is_a_protocol_error():
    from hal.sim.si3210 import DaisyChain
    clock = SimClock()
    chain = DaisyChain()
    chain.add(0, Si3210Model(clock))
    spi = SimSPI(chain, clock, cs_per_byte=True)
    d = Si3210(spi, None, 0, chain=2)            # nothing at position 2
    d.enable_daisy_chain()
    assert chain.daisy_mode() and chain.bytes_before_daisy == 0
    assert d.read(0) == 0xFF and chain.protocol_errors == 1
    assert raises(ValueError, chain.add, 8, Si3210Model(clock))
