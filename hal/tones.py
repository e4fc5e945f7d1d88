"""Per-country call-progress tones and ring cadences, and the ProSLIC oscillator math.

Each tone is (freqs_hz, cadence_ms, level_dbm0).  cadence_ms alternates on/off
durations and repeats; () means continuous.  Sources: ITU-T E.180 supplement 2
(various tones used in national networks) for US, GB and DE.

ProSLIC (Si3210/Si3215) tone oscillators, as in the Si3210 datasheet and the
DAHDI/Zaptel proslic defaults (OSC1 = 0x7B30 -> 350 Hz, OSC2 = 0x7870 -> 440 Hz,
OSC1X = 0x0063 / OSC2X = 0x007D at -18 dBm0).  The oscillators run at the
chip's own rate: 8 kHz on the Si3210, 16 kHz on the Si3215 (HARDWARE.md), so
the coefficients depend on the product (OSC_RATE):

    coeff   = cos(2*pi*f / rate)
    OSCn    = round(coeff * 2**15)                              (indirect 0 / 3)
    OSCnX   = round(1/4 * sqrt((1 - coeff) / (1 + coeff)) * (2**15 - 1) * A)
                                                                (indirect 1 / 4)
    OSCnY   = 0                                                 (indirect 2 / 5)

A is the peak amplitude relative to digital full scale; a full-scale sine is
+3.17 dBm0, so A = 10 ** ((level_dbm0 - 3.17) / 20).  The ringing oscillator
runs at 1 kHz: RNGOSC = round(cos(2*pi*f/1000) * 2**15) (indirect 7) and
RNGX = round(1/4 * sqrt((1-c)/(1+c)) * 2**15 * Vpk / 96 V) (indirect 8),
RNGY = 0 (indirect 9).  Ringing per country (RING_HZ): 20 Hz in North
America, 25 Hz in GB, DE and the TBR21 countries; the register values are
DAHDI's (wctdm_set_ring_generator_mode): 20 Hz RCO 0x7EF0 / RNGX 0x0160, its
"fast ringer" 25 Hz RCO 0x7E6D / RNGX 0x01B9 (RING_PRESETS).
Coefficients are computed once when a tone is programmed, never per sample.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

DEFAULT_COUNTRY = "US"

# name -> (freqs, cadence_ms, level_dbm0)
TONES = {
    "US": {
        "dial": ((350, 440), (), -13),
        "ringback": ((440, 480), (2000, 4000), -19),
        "busy": ((480, 620), (500, 500), -24),
        "congestion": ((480, 620), (250, 250), -24),
        "call_waiting": ((440,), (300, 9700), -13),
        # message-waiting ("stutter") dial tone: dial tone interrupted 0.1 s on,
        # 0.1 s off (Telcordia GR-506-CORE, recall/stutter dial tone; ITU-T
        # E.180 suppl. 2, USA "special dial tone"); the agent plays it ~2 s
        "stutter": ((350, 440), (100, 100), -13),
    },
    "GB": {
        "dial": ((350, 440), (), -13),
        "ringback": ((400, 450), (400, 200, 400, 2000), -19),
        "busy": ((400,), (375, 375), -13),
        "congestion": ((400,), (400, 350, 225, 525), -13),
        "call_waiting": ((400,), (100, 2000), -13),
        # special dial tone (messages waiting, diversion active): 350+440 Hz,
        # 0.75 s on, 0.75 s off (BT SIN 350, "special dial tone")
        "stutter": ((350, 440), (750, 750), -13),
    },
    "DE": {
        "dial": ((425,), (), -13),
        "ringback": ((425,), (1000, 4000), -13),
        "busy": ((425,), (480, 480), -13),
        "congestion": ((425,), (240, 240), -13),
        "call_waiting": ((425,), (200, 200, 200, 5000), -13),
        # Sonderwaehlton / special dial tone: 425 Hz, 0.4 s on, 0.04 s off
        # (ETSI TR 101 041-2 / ES 201 970 "special dial tone", as used in DE)
        "stutter": ((425,), (400, 40), -13),
    },
}

RING_CADENCES = {
    "US": (2000, 4000),
    "GB": (400, 200, 400, 2000),
    "DE": (1000, 4000),
}

# ringing frequency per country (HARDWARE.md: 20 Hz US, 25 Hz GB/DE/TBR21)
RING_HZ = {"US": 20, "GB": 25, "DE": 25}
# DAHDI wctdm_set_ring_generator_mode: Hz -> (RCO, RNGX), VBATH reg 74 = 0x32
RING_PRESETS = {20: (0x7EF0, 0x0160), 25: (0x7E6D, 0x01B9)}
OSC_RATE = {"Si3210": 8000, "Si3215": 16000}

_ALIASES = {"UK": "GB", "USA": "US", "CA": "US", "GERMANY": "DE"}


def country_code(country):
    c = (country or DEFAULT_COUNTRY).upper()
    c = _ALIASES.get(c, c)
    if c not in TONES:
        raise ValueError("unknown country %r (have %s)" % (country, ", ".join(sorted(TONES))))
    return c


def tone(country, name):
    t = TONES[country_code(country)]
    if name not in t:
        raise ValueError("unknown tone %r (have %s)" % (name, ", ".join(sorted(t))))
    return t[name]


def cadence_on(cadence, elapsed_ms):
    """Is a tone with cadence (on, off, on, off ... ms; empty: steady) sounding
    elapsed_ms after it started?"""
    if not cadence:
        return True
    dt = elapsed_ms % sum(cadence)
    for i in range(len(cadence)):
        if dt < cadence[i]:
            return i % 2 == 0
        dt -= cadence[i]
    return False


def ring_cadence(country):
    return RING_CADENCES[country_code(country)]


def ring_hz(country):
    return RING_HZ[country_code(country)]


def ring_preset(country):
    """(RCO, RNGX) of the country's ringing frequency (DAHDI's values)."""
    return RING_PRESETS[ring_hz(country)]


def _amp(level_dbm0):
    return 10 ** ((level_dbm0 - 3.17) / 20.0)


def osc_coefficients(freq, level_dbm0, rate=8000):
    """(OSCn, OSCnX, OSCnY) 16-bit values for a ProSLIC tone oscillator that
    runs at rate Hz (OSC_RATE[product])."""
    import math
    c = math.cos(2 * math.pi * freq / float(rate))
    coef = int(round(c * 32768)) & 0xFFFF
    x = int(round(0.25 * math.sqrt((1 - c) / (1 + c)) * 32767 * _amp(level_dbm0)))
    return coef, x & 0xFFFF, 0


def ring_coefficients(freq=20, vpk=64):
    """(RNGOSC, RNGX, RNGY) for the ProSLIC ringing oscillator (1 kHz update)."""
    import math
    c = math.cos(2 * math.pi * freq / 1000.0)
    coef = int(round(c * 32768)) & 0xFFFF
    x = int(round(0.25 * math.sqrt((1 - c) / (1 + c)) * 32768 * vpk / 96.0))
    return coef, x & 0xFFFF, 0


def osc_frequency(coef, rate=8000):
    """Inverse of osc_coefficients: the frequency a coefficient gives at rate."""
    import math
    if coef & 0x8000:
        coef -= 0x10000
    c = coef / 32768.0
    if c > 1:
        c = 1.0
    return int(round(rate * math.acos(c) / (2 * math.pi)))


def cadence_matches(measured, expected, tol_pct=20, tol_ms=60):
    return abs(measured - expected) <= expected * tol_pct // 100 + tol_ms
