# portable: micropython
"""G.711, DSP and the Bell 202 modem."""
from tests.portable import raises
from hal import g711, fsk, dsp


def test_ulaw_alaw_roundtrip():
    for x in (0, 1, -1, 100, -100, 1000, -5000, 32000, -32000):
        y = g711.ulaw_decode(g711.ulaw_encode(x))
        assert abs(y - x) <= max(4, abs(x) // 16)
        z = g711.alaw_decode(g711.alaw_encode(x))
        assert abs(z - x) <= max(16, abs(x) // 16)
    assert g711.ulaw_encode(0) == 0xFF
    assert g711.alaw_encode(0) == 0xD5


def test_mdmf_checksum_and_parse():
    m = fsk.mdmf_call("11051230", "5551234", "BOB")
    assert sum(m) & 0xFF == 0 and m[0] == 0x80 and m[1] == len(m) - 3
    r = fsk.parse(m)
    assert r["number"] == "5551234" and r["name"] == "BOB" and r["datetime"] == "11051230"
    bad = bytearray(m)
    bad[5] ^= 1
    raises(fsk.FskError, fsk.parse, bytes(bad))
    raises(fsk.FskError, fsk.mdmf_call, "123")


def test_truncation_bounds():
    m = fsk.mdmf_call(None, "1" * 40, "N" * 40)
    r = fsk.parse(m)
    assert len(r["number"]) == fsk.MAX_NUMBER and len(r["name"]) == fsk.MAX_NAME


def _loop(msg, law="ulaw"):
    mod = fsk.FskModulator(law)
    mod.load(msg)
    dem = fsk.FskDemodulator(law)
    buf = bytearray(160)
    out = []
    while mod.next_frame(buf):
        out.extend(dem.feed(buf))
    return out


def test_modem_roundtrip_mdmf_sdmf_vmwi_alaw():
    assert _loop(fsk.mdmf_call("01021234", "5551234567", "ALICE"))[0]["name"] == "ALICE"
    r = _loop(fsk.sdmf_call("01021234", "5551234567"))[0]
    assert r["number"] == "5551234567" and r["datetime"] == "01021234"
    assert _loop(fsk.mdmf_vmwi(False))[0]["vmwi"] is False
    assert _loop(fsk.mdmf_call("01021234", "42", "ALAW"), "alaw")[0]["number"] == "42"


def test_modem_with_out_of_area():
    r = _loop(fsk.mdmf_call("01021234", number_absent="O", name_absent="O"))[0]
    assert r["number_absent"] == "O" and r["name_absent"] == "O"


def test_goertzel_dtmf_and_tonegen():
    g = dsp.ToneGen(dsp.dtmf_freqs("7"), 6000)
    buf = bytearray(160)
    g.fill(buf, g711.ulaw_encode)
    lin = [g711.ulaw_decode(b) for b in buf]
    assert dsp.dtmf_digit(lin) == "7"
    g.set((1000,), 8000)
    g.fill(buf, g711.ulaw_encode)
    lin = [g711.ulaw_decode(b) for b in buf]
    assert dsp.tone_ratio_pct(lin, 1000) > 80
    assert dsp.tone_ratio_pct(lin, 480) < 10
    assert dsp.dtmf_digit(lin) is None
