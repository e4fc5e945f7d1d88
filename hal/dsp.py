"""Small integer DSP helpers shared by drivers, simulators and tests.

- a 256-entry sine table (Q15), built lazily once (the only float math);
- ToneGen: 24-bit phase accumulators -> linear samples, no float per sample;
- goertzel(): integer Goertzel power of one frequency over a block;
- dtmf_digit(): 8-frequency Goertzel DTMF decision over a block.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

RATE = const(8000)
PHASE_BITS = const(24)
PHASE_MASK = const(0xFFFFFF)
_IDX_SHIFT = const(16)        # 24-bit phase -> 8-bit table index

_sin = None


def sin_table():
    global _sin
    if _sin is None:
        import math
        _sin = [int(32767 * math.sin(2 * math.pi * i / 256)) for i in range(256)]
    return _sin


def phase_inc(freq):
    """Phase increment per 8 kHz sample for a 24-bit accumulator."""
    return (int(freq) * (1 << PHASE_BITS) + RATE // 2) // RATE


class ToneGen:
    """Sum of up to two sines; fill(buf, enc) writes encoded samples in place.

    amp is in linear units (0..32767) per tone.
    """

    def __init__(self, freqs=(), amp=6000):
        self.set(freqs, amp)

    def set(self, freqs, amp=6000):
        self.incs = [phase_inc(f) for f in freqs]
        self.phases = [0] * len(freqs)
        self.amp = amp

    def fill(self, buf, enc, start=0, end=None):
        tab = sin_table()
        incs = self.incs
        ph = self.phases
        amp = self.amp
        n = len(incs)
        if end is None:
            end = len(buf)
        for i in range(start, end):
            acc = 0
            for k in range(n):
                acc += tab[ph[k] >> _IDX_SHIFT]
                ph[k] = (ph[k] + incs[k]) & PHASE_MASK
            buf[i] = enc((acc * amp) >> 15)
        return buf


def goertzel(samples, freq, start=0, end=None):
    """Integer Goertzel: returns power ~ (A*N/2)^2 >> 6 for a tone of amplitude A.

    samples: linear ints.  Inputs are scaled by >> 3 to keep the state small.
    """
    import math
    coeff = int(2 * math.cos(2 * math.pi * freq / RATE) * 16384)
    s1 = s2 = 0
    if end is None:
        end = len(samples)
    for i in range(start, end):
        s0 = (samples[i] >> 3) + ((coeff * s1) >> 14) - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - ((coeff * s1 * s2) >> 14)


def energy(samples, start=0, end=None):
    if end is None:
        end = len(samples)
    e = 0
    for i in range(start, end):
        x = samples[i] >> 3
        e += x * x
    return e


def tone_ratio_pct(samples, freq, start=0, end=None):
    """Share of the block's energy at freq, in percent (100 = pure tone)."""
    if end is None:
        end = len(samples)
    n = end - start
    e = energy(samples, start, end)
    if e == 0:
        return 0
    p = goertzel(samples, freq, start, end)
    return (p * 200) // (e * n)


_DTMF_ROWS = (697, 770, 852, 941)
_DTMF_COLS = (1209, 1336, 1477, 1633)
_DTMF_KEYS = ("123A", "456B", "789C", "*0#D")


def dtmf_digit(samples, min_pct=20):
    """DTMF key in a block of linear samples (>= 100 samples) or None."""
    best_r = best_c = -1
    pr = pc = 0
    for i in range(4):
        p = tone_ratio_pct(samples, _DTMF_ROWS[i])
        if p > pr:
            pr, best_r = p, i
        p = tone_ratio_pct(samples, _DTMF_COLS[i])
        if p > pc:
            pc, best_c = p, i
    if pr >= min_pct and pc >= min_pct:
        return _DTMF_KEYS[best_r][best_c]
    return None


def dtmf_freqs(digit):
    for r in range(4):
        c = _DTMF_KEYS[r].find(digit)
        if c >= 0:
            return (_DTMF_ROWS[r], _DTMF_COLS[c])
    raise ValueError("not a DTMF digit: %r" % (digit,))
