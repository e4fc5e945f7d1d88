# portable: micropython
"""ProSLIC fidelity: the Si3210/Si3215 driver against the independent model
(hal/sim/si3210.py, built from HARDWARE.md and DAHDI wctdm.c), measuring the
physical result on each chip type: the tone frequencies in the line audio,
the ringing frequency, speech reaching the phone, DTMF keyed on the phone
arriving as digits once each, the Q7 hazard, daisy chains and neon lamps.
Reference values are checked against the driver's, with the source named."""
import math
from tests.portable import raises
from hal.sim.bus import SimClock, SimSPI, SimPCM
from hal.sim.si3210 import Si3210Model, DaisyChain
from hal.drivers import si3210
from hal.drivers.si3210 import Si3210
from hal import tones, g711, dsp
from hal import sim

PRODUCTS = ("Si3210", "Si3215")


def make(product, country="US", pcm=True, **kw):
    clock = SimClock()
    p = SimPCM(8) if pcm else None
    m = Si3210Model(clock, product=product, pcm=p, pcm_chan=0, **kw)
    spi = SimSPI(m, clock, cs_per_byte=True)
    dkw = {}
    for k in ("dtmf", "vmwi"):
        if k in kw:
            dkw[k] = kw.pop(k)
    d = Si3210(spi, p, 0, country=country, name="fxs 1", chip=product, **dkw)
    return clock, m, d


def up(product, country="US", **kw):
    drv_kw = {}
    for k in ("dtmf", "vmwi"):
        if k in kw:
            drv_kw[k] = kw.pop(k)
    clock = SimClock()
    p = SimPCM(8)
    m = Si3210Model(clock, product=product, pcm=p, pcm_chan=0, **kw)
    spi = SimSPI(m, clock, cs_per_byte=True)
    d = Si3210(spi, p, 0, country=country, name="fxs 1", chip=product, **drv_kw)
    d.init(clock, clock.sleep)
    return clock, m, d


def run(clock, d, ms, step=10):
    return sim.run(d, ms, step, now=clock)


# ---- measuring ---------------------------------------------------------------------

def _power(samples, f):
    """Goertzel power at f (float) over the samples, 8 kHz."""
    w = 2 * math.pi * f / 8000.0
    c = 2 * math.cos(w)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + c * s1 - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - c * s1 * s2


def peaks(samples, lo=200, hi=1800, step=10, n=2):
    """Frequencies (Hz) of the n strongest spectral peaks: a coarse scan, then
    a 1 Hz refinement around each."""
    scan = []
    f = lo
    while f <= hi:
        scan.append((_power(samples, f), f))
        f += step
    found = []
    for p, f in sorted(scan, reverse=True):
        if any(abs(f - g) < 40 for g in found):
            continue
        found.append(f)
        if len(found) == n:
            break
    out = []
    for f0 in found:
        best = max((_power(samples, f0 + d), f0 + d) for d in range(-step, step + 1))
        out.append(best[1])
    return sorted(out)


def level(frames):
    dec = g711.ulaw_table()
    lin = []
    for f in frames:
        lin.extend(dec[b] for b in f)
    return (dsp.energy(lin) * 64 // max(1, len(lin))) ** 0.5


# ---- audio loopback, gains, speech reaching the phone ---------------------------

def test_speech_from_the_far_end_reaches_the_phone_on_each_chip():
    gen = dsp.ToneGen((1000,), 8000)
    enc = g711.encoder("ulaw")
    buf = bytearray(160)
    for product in PRODUCTS:
        clock, m, d = up(product)
        assert not m.loopback, product
        m.phone.off_hook()
        run(clock, d, 60)
        for _ in range(10):
            d.write_frame(gen.fill(buf, enc))
        heard = [m.phone.audio.pop() for _ in range(10)]
        assert None not in heard, product
        # DAHDI's RECV_DIGITAL_GAIN 0x2000: 6 dB below the 0x4000 unity
        ratio = level(heard) / (8000 / 2 ** 0.5)
        assert 0.42 <= ratio <= 0.58, (product, ratio)
        assert dsp.tone_ratio_pct([g711.ulaw_table()[b] for b in heard[5]], 1000) > 80
        # and the phone's voice reaches the host
        m.phone.speak(gen.fill(buf, enc))
        assert d.read_frame() is not None, product


def test_model_keeps_audio_looped_back_until_reg8_is_cleared():
    for product in PRODUCTS:
        clock = SimClock()
        p = SimPCM(8)
        m = Si3210Model(clock, product=product, pcm=p, pcm_chan=0)
        assert m.regs[8] == 0x02 and m.loopback
        m.phone.off_hook()
        p.write_frame(0, b"\x55" * 160)
        assert len(m.phone.audio) == 0 and p.read_frame(0) == b"\x55" * 160
        assert m.looped_frames == 1
        m.phone.speak(b"\x11" * 160)
        assert p.read_frame(0) is None


# ---- the Q7 battery-switch hazard (Si3210) ----------------------------------------

def test_bringup_flags_no_hazard_on_either_chip():
    for product in PRODUCTS:
        for country in ("US", "GB", "DE"):
            clock, m, d = up(product, country)
            assert m.hazards == [] and m.cal_faults == [], (product, m.hazards, m.cal_faults)
            if product == "Si3210":
                assert m.regs[67] == 0x07 and m.regs[66] == 0x01
            # ring, tone and idle again: still safe
            d.ring(clock.t, count=1)
            run(clock, d, 6500, step=50)
            assert m.hazards == [], product


def test_model_flags_a_power_up_with_reset_battery_control():
    clock = SimClock()
    m = Si3210Model(clock, product="Si3210")
    spi = SimSPI(m, clock, cs_per_byte=True)
    raw = Si3210(spi, None, 0)
    raw.write(14, 0)                      # DC-DC on with reg 67 = 0x1F, reg 66 = 0
    assert len(m.hazards) == 1 and "reg 67 = 0x1f" in m.hazards[0][1]
    raw.write(67, 0x07)
    raw.write(66, 0x01)
    raw.write(64, 1)
    assert len(m.hazards) == 1
    # the Si3215 has no such switch: no hazard
    m2 = Si3210Model(clock, product="Si3215")
    Si3210(SimSPI(m2, clock, cs_per_byte=True), None, 0).write(14, 0)
    assert m2.hazards == []


# ---- per-product indirect maps and oscillators -----------------------------------

CASES = (
    ("US", "dial", (350, 440)), ("US", "ringback", (440, 480)), ("US", "busy", (480, 620)),
    ("GB", "busy", (400,)), ("DE", "dial", (425,)),
)


def test_tone_frequencies_measured_in_the_line_audio_on_each_chip():
    for product in PRODUCTS:
        for country, name, want in CASES:
            clock, m, d = up(product, country)
            m.phone.off_hook()
            run(clock, d, 50)
            d.play_tone(name, clock.t)
            got = peaks(m.phone.listen(2000), n=len(want))
            assert len(got) == len(want), (product, name, got)
            for g, w in zip(got, want):
                assert abs(g - w) <= 3, (product, country, name, got, want)


def test_ringing_frequency_per_country_on_each_chip():
    for product in PRODUCTS:
        for country, hz in (("US", 20), ("GB", 25), ("DE", 25)):
            clock, m, d = up(product, country)
            d.ring(clock.t, count=1)
            run(clock, d, 300)
            f = m.phone.ring_log[0][2]
            assert abs(f - hz) <= 0.6, (product, country, f)


def test_si3210_dtmf_thresholds_survive_bringup():
    clock, m, d = up("Si3210")
    assert m.decoder_ok()
    assert m.ind[11] == 0x00E5 and m.ind[5] == 0x0202 and m.ind[6] == 0x0202


# ---- DTMF keyed on the phone: digits once each ------------------------------------

def test_dtmf_from_the_phone_arrives_once_per_key_on_each_chip():
    for product in PRODUCTS:
        clock, m, d = up(product)
        m.phone.off_hook()
        run(clock, d, 100)
        m.phone.dial_dtmf("159#*0D7", on_ms=100, off_ms=100)
        evs = run(clock, d, 2000)
        digits = "".join(e[1] for e in evs if e[0] == "digit")
        assert digits == "159#*0D7", (product, digits)
        assert d.soft_dtmf == (product == "Si3215")


def test_si3210_decoder_release_interrupt_is_not_a_second_digit():
    clock, m, d = up("Si3210")
    m.phone.off_hook()
    run(clock, d, 100)
    m.phone.dial_dtmf("33", on_ms=150, off_ms=150)
    evs = run(clock, d, 1000)
    assert [e for e in evs if e[0] == "digit"] == [("digit", "3"), ("digit", "3")]


def test_soft_dtmf_can_be_chosen_on_a_si3210():
    clock, m, d = up("Si3210", dtmf="soft")
    m.phone.off_hook()
    run(clock, d, 100)
    m.phone.dial_dtmf("42", on_ms=80, off_ms=80)
    evs = run(clock, d, 600)
    assert "".join(e[1] for e in evs if e[0] == "digit") == "42"
    assert m.regs[23] == 0        # the chip's DTMF interrupt left off


# ---- minor bring-up items --------------------------------------------------------

def test_revision_and_sanity_checks():
    clock, m, d = make("Si3210", revision=1)
    e = raises(si3210.NotDetected, d.init, clock, clock.sleep)
    assert "too old" in str(e)
    clock, m, d = make("Si3215")
    m.regs[64] = 1                # linefeed not open after reset: insane (DAHDI)
    e = raises(si3210.InsaneError, d.init, clock, clock.sleep)
    assert "reg 64" in str(e)


def test_indirect_read_back_catches_a_lost_write():
    clock, m, d = make("Si3215", dead_indirect=(13,))
    e = raises(si3210.IndirectVerifyError, d.init, clock, clock.sleep)
    assert "indirect 13" in str(e)


def test_dcdc_calibration_result_out_of_range_is_replaced():
    clock, m, d = make("Si3210", dcdc_cal_result=0x1F)
    d.init(clock, clock.sleep)
    assert d.dcdc_cal_fixed == 0x1F and m.regs[107] == 0x08
    clock, m, d = up("Si3210")
    assert d.dcdc_cal_fixed is None and ("w", 107, 0x08) not in m.history.items


def test_indirect_poll_limit_follows_dahdi():
    assert si3210.MAX_INDIRECT_POLLS == 6000     # DAHDI wctdm.c wait_access: MAX 6000
    clock = SimClock()
    m = Si3210Model(clock, product="Si3215", indirect_stuck=True)
    d = Si3210(SimSPI(m, clock, cs_per_byte=True), None, 0, indirect_polls=40)
    m.history.clear()
    raises(si3210.IndirectTimeout, d.write_indirect, 0, 1)
    assert len([e for e in m.history if e[:2] == ("r", 31)]) == 40


def test_filters_held_at_0x8000_during_calibration_then_restored():
    for product, filt in (("Si3210", 35), ("Si3215", 22)):
        clock, m, d = up(product)
        h = m.history
        i96 = h.index(("w", 96, 0x5F))
        for k in range(5):
            assert h.index(("iw", filt + k, 0x8000)) < i96 or k == 0
        assert [m.ind[filt + k] for k in range(5)] == [0x8000, 0x0320, 0x008C, 0x0100, 0x0010]


# ---- neon message waiting -------------------------------------------------------

def test_neon_vmwi_lights_the_lamp_without_ringing():
    for product in PRODUCTS:
        clock, m, d = up(product, vmwi="neon")
        d.send_vmwi(True, clock.t)
        run(clock, d, 100)
        assert m.phone.lamp and not m.phone.ringing and d.lamp
        assert m.regs[34] == 0x19 and m.regs[74] == 0x3F and m.phone.ring_log == []
        assert m.hazards == []
        # a call interrupts the lamp and rings normally, then the lamp returns
        d.ring(clock.t, count=1)
        run(clock, d, 200)
        assert m.phone.ringing and m.regs[34] == 0x00
        run(clock, d, 6000, step=50)
        assert m.phone.lamp
        d.send_vmwi(False, clock.t)
        assert not m.phone.lamp and m.regs[64] == 1 and m.regs[34] == 0


# ---- daisy chains --------------------------------------------------------------

def test_daisy_chain_mode_is_enabled_before_any_select_byte():
    from hal.builder import build
    board = {"name": "chain", "law": "ulaw", "pcm": {"kind": "sim", "channels": 8},
             "fxs": tuple({"port": i + 1, "chip": "si3210", "spi": 0, "cs": 0, "chain": i,
                           "pcm_chan": i} for i in range(7))}
    hw = build(board, "sim")
    assert sorted(hw.fxs) == list(range(1, 8)) and not hw.faults, hw.faults
    chain = hw.sim.chains[(0, 0)]
    assert chain.daisy_mode() and chain.bytes_before_daisy == 0 and chain.protocol_errors == 0
    for port in range(1, 8):
        m = hw.sim.slics[port]
        assert m.regs[64] == 1 and m.hazards == [], port
        # the only reg 64 writes each module saw are its own driver's
        assert [v for r, v in m.history.writes() if r == 64] == [1], port


def test_model_misreads_a_select_byte_sent_before_daisy_chain_mode():
    clock = SimClock()
    chain = DaisyChain()
    ms = [Si3210Model(clock, product="Si3210") for _ in range(7)]
    for i in range(7):
        chain.add(i, ms[i])
    spi = SimSPI(chain, clock, cs_per_byte=True)
    d = Si3210(spi, None, 0, chain=6, chain_group={"daisy": True})   # wrongly assumed on
    d.read(0)                      # select 0x40 is read as "write reg 64"
    assert chain.bytes_before_daisy == 2
    for m in ms:
        assert ("w", 64, 0x80) in m.history.items


# ---- reference values as test vectors -------------------------------------------

def test_reference_vectors_tone_coefficients():
    # DAHDI wctdm.c indirect_regs[]: OSC1 0x7B30 / OSC1X 0x0063 (350 Hz), OSC2 0x7870 /
    # OSC2X 0x007D (440 Hz): the Si3210's 8 kHz oscillators at -18 dBm0.  DAHDI's
    # coefficients sit within 2 LSB of round(cos(2 pi f / 8000) * 2^15) (0x7B32,
    # 0x7871): 0.04 Hz; the amplitudes match exactly.
    for f, coef, x in ((350, 0x7B30, 0x0063), (440, 0x7870, 0x007D)):
        c, cx, cy = tones.osc_coefficients(f, -18, 8000)
        assert abs(c - coef) <= 2 and cx == x and cy == 0, (f, c, cx)
    # HARDWARE.md, Si3215 16 kHz oscillators: 350 Hz about 0x7ED0, 440 Hz about 0x7E20
    assert abs(tones.osc_coefficients(350, -18, 16000)[0] - 0x7ED0) <= 0x10
    assert abs(tones.osc_coefficients(440, -18, 16000)[0] - 0x7E20) <= 0x10
    # the driver programs the product's rate
    for product, rate, osc1 in (("Si3210", 8000, 13), ("Si3215", 16000, 0)):
        clock, m, d = up(product)
        d.play_tone("dial", clock.t)
        assert d.osc_rate == rate
        assert m.ind[osc1] == tones.osc_coefficients(350, -13, rate)[0]


def test_reference_vectors_ringing_and_maps():
    # DAHDI wctdm_set_ring_generator_mode: 20 Hz RCO 0x7EF0 / RNGX 0x0160; fast
    # (25 Hz) ringer RCO 0x7E6D / RNGX 0x01B9; neon 0x009F / 0x7BEF / RNGY 0x3E8
    assert tones.RING_PRESETS[20] == (0x7EF0, 0x0160)
    assert tones.RING_PRESETS[25] == (0x7E6D, 0x01B9)
    assert si3210.NEON_RING[:3] == (0x03E8, 0x7BEF, 0x009F)
    for product, rco in (("Si3210", 20), ("Si3215", 7)):
        clock, m, d = up(product, "GB")
        assert m.ind[rco] == 0x7E6D and m.ind[rco + 1] == 0x01B9, product
    # DAHDI indirect_regs[] altaddr column (Si3210 address -> Si3215 address)
    alt = ((13, 0), (16, 3), (19, 6), (20, 7), (26, 13), (27, 14), (29, 16), (35, 22),
           (40, 27), (41, 64), (42, None), (43, 66), (0, None), (12, None), (23, None),
           (25, None))
    for a, b in alt:
        assert si3210.si3215_addr(a) == b, (a, b)
    # DAHDI indirect_regs[] values (a sample): gains 26/27, filters 35-39, DTMF 11
    table = dict(si3210.INDIRECT_DEFAULTS)
    assert table[26] == 0x2000 and table[27] == 0x4000 and table[11] == 0x00E5
    assert [table[35 + k] for k in range(5)] == [0x8000, 0x0320, 0x008C, 0x0100, 0x0010]


def test_reference_register_values_written():
    # DAHDI wctdm_init_proslic / wctdm_proslic_init: reg 8 = 0, 108 = 0xEB, 73 = 0x04,
    # 67 = 0x07 and 66 = 1 (Si3210), 92 = 0xFF, 93 = 0x19, 71 = (23 - 20) / 3
    clock, m, d = up("Si3210")
    w = dict(m.history.writes())
    assert w[8] == 0 and w[108] == 0xEB and w[73] == 0x04 and w[67] == 0x07 and w[66] == 1
    assert w[92] == 0xFF and (93, 0x19) in m.history.writes() and w[71] == 1
    assert (48, 0xE0) in m.history.writes() and (51, 0x05) in m.history.writes()
