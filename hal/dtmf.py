"""Software DTMF receiver for ports whose chip has no DTMF decoder (the Si3215).

Fed with the G.711 frames that come from the phone; reports each key press
once.  Goertzel filters over a WINDOW-sample window advanced by HOP samples
(20 ms windows every 10 ms), with the usual acceptance rules (ITU-T Q.24,
as in Asterisk's dsp.c and spandsp):

- level: each of the two tones at least MIN_TONE_LEVEL (about -30 dBm0);
- purity / talk-off: the two tones carry at least MIN_SHARE_PCT of the
  window's energy (speech and music spread their energy; a DTMF pair does not),
  and each beats the other tones of its group by RELATIVE_PEAK (about 6 dB);
- twist: high group at most NORMAL_TWIST_DB above the low group and at most
  REVERSE_TWIST_DB below it;
- steadiness: the two halves of a window within 4.8 dB of each other, so a
  window only half covered by a key does not count;
- duration: MIN_ON_WINDOWS consecutive windows with the same key (every tone
  of 40 ms or more is accepted, none of 23 ms or less);
- pause: MIN_OFF_WINDOWS windows without a key before the next press counts
  (a 40 ms pause separates two digits; a 10 ms dropout does not).

Integer arithmetic only (the Goertzel of hal.dsp); one cos table per tone,
built once.  No allocation per frame: the window is one preallocated list.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hal import g711
from hal.dsp import goertzel, energy

WINDOW = const(160)
HOP = const(80)
MIN_ON_WINDOWS = const(3)
MIN_OFF_WINDOWS = const(4)
HALF_RATIO = const(3)           # the window halves within 4.8 dB: the key fills it
MIN_SHARE_PCT = const(75)       # share of the window energy in the two tones
RELATIVE_PEAK = const(4)        # power ratio over the next tone of the group (~6 dB)
NORMAL_TWIST = const(631)       # high/low power ratio x100 allowed: +8 dB
REVERSE_TWIST = const(40)       # ... and -4 dB (x100)
# Goertzel power (hal.dsp scaling, N = WINDOW) of one tone of amplitude ~1000
# (about -30 dBm0 in G.711): (A/8 * N/2)^2
MIN_TONE_POWER = const(100000000)
MAX_DIGITS = const(16)          # undelivered digits kept; full -> drop oldest, count

ROWS = (697, 770, 852, 941)
COLS = (1209, 1336, 1477, 1633)
KEYS = ("123A", "456B", "789C", "*0#D")


def _best(powers):
    b = 0
    for i in range(1, 4):
        if powers[i] > powers[b]:
            b = i
    second = 0
    for i in range(4):
        if i != b and powers[i] > second:
            second = powers[i]
    return b, second


def classify(win):
    """Key ('0'-'9', '*', '#', 'A'-'D') in a window of linear samples, or None."""
    n = len(win)
    h = n // 2
    e1 = energy(win, 0, h)
    e2 = energy(win, h, n)
    e = e1 + e2
    if e == 0 or e1 * HALF_RATIO < e2 or e2 * HALF_RATIO < e1:
        return None
    pr = [goertzel(win, f) for f in ROWS]
    r, r2 = _best(pr)
    if pr[r] < MIN_TONE_POWER or pr[r] < RELATIVE_PEAK * r2:
        return None
    pc = [goertzel(win, f) for f in COLS]
    c, c2 = _best(pc)
    if pc[c] < MIN_TONE_POWER or pc[c] < RELATIVE_PEAK * c2:
        return None
    lo = pr[r]
    hi = pc[c]
    if hi * 100 > lo * NORMAL_TWIST or hi * 100 < lo * REVERSE_TWIST:
        return None
    # share of the energy in the pair: a pure tone gives p * 200 // (e * n) = 100
    if (lo + hi) * 200 < MIN_SHARE_PCT * e * n:
        return None
    return KEYS[r][c]


class DtmfDetector:
    """feed(frame) -> tuple of digits completed in this frame (usually empty)."""

    def __init__(self, law="ulaw"):
        self._dec = g711.decode_table(law)
        self._win = [0] * WINDOW
        self._fill = 0              # samples in the window so far
        self._cand = None           # key seen in the last windows
        self._on = 0                # consecutive windows with _cand
        self._off = MIN_OFF_WINDOWS # consecutive windows without a key
        self._down = False          # a press was reported and not yet released
        self.digits_dropped = 0
        self.windows = 0

    def reset(self):
        self._fill = 0
        self._cand = None
        self._on = 0
        self._off = MIN_OFF_WINDOWS
        self._down = False

    def feed(self, frame):
        dec = self._dec
        win = self._win
        out = None
        for b in frame:
            win[self._fill] = dec[b]
            self._fill += 1
            if self._fill == WINDOW:
                d = self._window()
                if d is not None:
                    if out is None:
                        out = []
                    if len(out) >= MAX_DIGITS:
                        out.pop(0)
                        self.digits_dropped += 1
                    out.append(d)
                # slide by HOP: keep the newest WINDOW - HOP samples
                for i in range(WINDOW - HOP):
                    win[i] = win[i + HOP]
                self._fill = WINDOW - HOP
        return tuple(out) if out else ()

    def _window(self):
        self.windows += 1
        k = classify(self._win)
        if k is None:
            self._off += 1
            self._on = 0
            self._cand = None
            if self._off >= MIN_OFF_WINDOWS:
                self._down = False
            return None
        if k != self._cand:
            self._cand = k
            self._on = 1
        else:
            self._on += 1
        if self._on >= MIN_ON_WINDOWS and not self._down:
            self._down = True
            self._off = 0
            return k
        if self._down:
            self._off = 0
        return None
