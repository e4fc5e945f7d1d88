# portable: micropython
"""Software DTMF receiver (hal.dtmf): acceptance rules of ITU-T Q.24 as the
references apply them (Asterisk dsp.c: twist, relative peak, minimum
duration, inter-digit pause), measured on synthetic G.711 audio."""
import math
from hal import g711, dtmf

_ENC = g711.encoder("ulaw")
_SIL = g711.silence("ulaw")
_FREQS = {}
for _r in range(4):
    for _c in range(4):
        _FREQS[dtmf.KEYS[_r][_c]] = (dtmf.ROWS[_r], dtmf.COLS[_c])


class Signal:
    """Builds a sample stream at 8 kHz and cuts it into 160-byte G.711 frames."""

    def __init__(self, lead_ms=0):
        self.samples = [0] * (lead_ms * 8)

    def key(self, k, ms, amp_lo=6000, amp_hi=6000):
        f1, f2 = _FREQS[k]
        n0 = len(self.samples)
        for i in range(ms * 8):
            t = (n0 + i) / 8000.0
            self.samples.append(int(amp_lo * math.sin(2 * math.pi * f1 * t)
                                    + amp_hi * math.sin(2 * math.pi * f2 * t)))
        return self

    def gap(self, ms):
        self.samples.extend([0] * (ms * 8))
        return self

    def add(self, samples):
        self.samples.extend(samples)
        return self

    def frames(self):
        s = self.samples
        while len(s) % 160:
            s.append(0)
        out = []
        for i in range(0, len(s), 160):
            out.append(bytes(_ENC(x) for x in s[i:i + 160]))
        return out


def detect(sig, tail_ms=100):
    sig.gap(tail_ms)
    d = dtmf.DtmfDetector("ulaw")
    got = ""
    for f in sig.frames():
        for k in d.feed(f):
            got += k
    return got


def test_all_sixteen_keys_once_each():
    sig = Signal(lead_ms=30)
    keys = "123A456B789C*0#D"
    for k in keys:
        sig.key(k, 60).gap(60)
    assert detect(sig) == keys


def test_minimum_duration_40ms_accepted_23ms_rejected_at_any_alignment():
    for lead in range(0, 20, 3):
        for k in "5*D":
            assert detect(Signal(lead_ms=lead).key(k, 40)) == k, (lead, k)
            assert detect(Signal(lead_ms=lead).key(k, 23)) == "", (lead, k)


def test_interdigit_pause_and_short_dropout():
    # a 40 ms pause separates two presses of the same key
    for lead in (0, 5, 10, 15):
        assert detect(Signal(lead).key("9", 60).gap(40).key("9", 60)) == "99", lead
        # a 10 ms dropout inside one press does not make a second digit
        assert detect(Signal(lead).key("9", 60).gap(10).key("9", 60)) == "9", lead


def test_twist_limits():
    # high group 6 dB above the low group: accepted; 12 dB: rejected
    assert detect(Signal(10).key("9", 80, amp_lo=3000, amp_hi=6000)) == "9"
    assert detect(Signal(10).key("9", 80, amp_lo=1500, amp_hi=6000)) == ""
    # high group 3 dB below the low group: accepted; 8 dB below: rejected
    assert detect(Signal(10).key("9", 80, amp_lo=6000, amp_hi=4250)) == "9"
    assert detect(Signal(10).key("9", 80, amp_lo=6000, amp_hi=2400)) == ""


def test_level_floor():
    assert detect(Signal(10).key("1", 80, 1500, 1500)) == "1"
    assert detect(Signal(10).key("1", 80, 200, 200)) == ""


def _voice(ms, f0=118, seed=7):
    """Voiced speech stand-in: a glottal-like harmonic series of f0 with two
    moving formants, plus a vowel glide; rich in energy across 300-2000 Hz."""
    out = []
    x = seed
    for i in range(ms * 8):
        t = i / 8000.0
        f = f0 * (1 + 0.15 * math.sin(2 * math.pi * 3 * t))
        f1 = 500 + 300 * math.sin(2 * math.pi * 1.3 * t)
        f2 = 1400 + 500 * math.sin(2 * math.pi * 0.7 * t)
        s = 0.0
        for h in range(1, 18):
            fh = f * h
            a = 1.0 / (1 + ((fh - f1) / 150.0) ** 2) + 0.6 / (1 + ((fh - f2) / 200.0) ** 2)
            s += a * math.sin(2 * math.pi * fh * t)
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(int(3000 * s) + (x % 400) - 200)
    return out


def test_talk_off_speech_and_single_tones_give_no_digits():
    assert detect(Signal().add(_voice(4000))) == ""
    # one tone of each group alone is not a key
    sig = Signal()
    for f in dtmf.ROWS + dtmf.COLS:
        sig.add([int(8000 * math.sin(2 * math.pi * f * i / 8000.0)) for i in range(800)])
    assert detect(sig) == ""
    # a 1 kHz test tone (the sims' "speech") is not a key either
    sig = Signal().add([int(8000 * math.sin(2 * math.pi * 1000 * i / 8000.0)) for i in range(8000)])
    assert detect(sig) == ""


def test_digits_over_speech_still_found():
    v = _voice(600)
    sig = Signal()
    sig.add(v[:1600])
    n0 = len(sig.samples)
    sig.key("#", 80)
    for i in range(640):       # speech continues under the key, 10 dB lower
        sig.samples[n0 + i] += v[1600 + i] // 3
    sig.add(v[2240:])
    assert detect(sig) == "#"
