"""Si3210/Si3215 ProSLIC model plus a virtual phone on its line.

Built from HARDWARE.md and DAHDI's wctdm.c, not from our driver: the model
keeps the chip's reset values and shows what a skipped or wrong step does.

Reset values: reg 0 = product (b5:4) | revision, b7 (daisy-chain mode) 0;
reg 8 = 0x02 (audio loopback ON), reg 11 = 0x33, reg 14 = 0x10 (DC-DC off),
reg 64 = 0 (open), reg 66 = 0x00 and reg 67 = 0x1F (automatic battery
switching on); every indirect register 0.  Reg 1 b7 reads 1 on an Si3215.

Consequences modelled:
- audio loopback: while reg 8 != 0, PCM from the host is looped back to the
  host and never reaches the phone, and the phone's voice never reaches the
  host (HARDWARE.md: every public driver clears reg 8);
- the Q7 hazard (Si3210 only): powering the DC-DC (reg 14 = 0) or the line
  (reg 64 != 0) while reg 67 is 0x1F or reg 66 is not 1 appends to `hazards`
  (DAHDI: "to prevent Q7 from accidentally turning on and burning out");
- two indirect maps (INDIRECT_MAP): the Si3210 has the DTMF detector at 0-12,
  the tone oscillators at 13-18, ringing at 19-22, gains at 26/27, the
  filters at 35-39; the Si3215 has no DTMF block and the Silicon Labs map
  13..40 -> 0..27 (oscillators 0-5, ringing 6-9, gains 13/14, filters 22-26);
- tone oscillators run at the chip's own rate (8 kHz Si3210, 16 kHz Si3215)
  as the recursion y[n] = 2c*y[n-1] - y[n-2]; VirtualPhone.listen(n) renders
  what the phone hears, VirtualPhone.tone() names the frequencies sounding;
  the ringing oscillator runs at 1 kHz (ring_log records its frequency);
- digital gains: the receive gain (indirect RX gain, 0x4000 = 0 dB) scales
  the audio that reaches the phone, the transmit gain the phone's voice;
- DTMF: only the Si3210 has a decoder, and it only works with its thresholds
  loaded (indirect 5/6 twist, 11 minimum power within range); reg 20 b0
  interrupts on key down AND key up, reg 24 b4 is the key-down bit.  Either
  way the phone's keys are real DTMF audio in its PCM toward the host;
- calibration (reg 96) with the filter registers not held at 0x8000 is
  recorded in `cal_faults`; DC-DC calibration (reg 93 b7) leaves its result
  in reg 107 (dcdc_cal_result, a fault hook when out of range);
- neon message waiting: reg 34 = 0x19 (trapezoid) with the line ringing
  lights the lamp instead of the bell (VirtualPhone.lamp).

Fault hooks: present=False (reads missing_value: 0xFF or 0x00),
never_calibrates, vbat_fails, indirect_stuck, revision, dcdc_cal_result,
dead_indirect (addresses whose writes are lost), and the bus's
fail_next/broken.  The chip wants CS to rise after every byte:
a multi-byte CS frame is counted in protocol_errors and answered with 0xFF.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hal import fsk, g711
from hal.bus import Ring
from hal.dsp import ToneGen
from hal.sim.bus import History

MAX_HISTORY = const(2048)    # register accesses kept: a full Si3210 bring-up fits

CAL_MS = const(200)
DCDC_MS = const(20)
VBAT_RAMP_MS = const(100)
VBAT_TARGET = const(0xC8)
MAX_LOG = const(32)          # phone ring log / caller-id / hazard lists; drop oldest
MAX_AUDIO = const(64)        # frames the phone keeps while off-hook; drop oldest
MAX_ONHOOK_AUDIO = const(256)  # frames the phone keeps while on-hook (caller ID); drop oldest
MAX_SCHEDULE = const(256)    # pending phone actions; extra actions are refused
MAX_LISTEN = const(16000)    # samples one listen() renders at most
UNITY_GAIN = const(0x4000)   # digital gain register value for 0 dB
KEY_TAIL_MS = const(200)     # silence the phone sends after its last key
KEY_AMP = const(5000)        # phone DTMF: per-tone amplitude (about -13 dBm0)
DTMF_POWER_MAX = const(0x0400)   # decoder minimum-power threshold above this: deaf
OUT_SCALE = const(8)         # oscillator recursion output -> linear sample

# function -> indirect address, per product (HARDWARE.md; DAHDI indirect_regs[]
# address/altaddr columns; Silicon Labs API: Si3210 13..40 -> Si3215 0..27)
INDIRECT_MAP = {
    "Si3210": {"osc1": 13, "osc2": 16, "ring": 19, "rx_gain": 26, "tx_gain": 27,
               "filters": 35, "dtmf_twist": 5, "dtmf_power": 11},
    "Si3215": {"osc1": 0, "osc2": 3, "ring": 6, "rx_gain": 13, "tx_gain": 14,
               "filters": 22, "dtmf_twist": None, "dtmf_power": None},
}
TONE_RATE = {"Si3210": 8000, "Si3215": 16000}
RING_RATE = const(1000)
DTMF_ROWS = (697, 770, 852, 941)
DTMF_COLS = (1209, 1336, 1477, 1633)
_KEYS = "123A456B789C*0#D"
_DTMF_CODE = {"D": 0, "0": 10, "*": 11, "#": 12, "A": 13, "B": 14, "C": 15}


def dtmf_code(d):
    if d in _DTMF_CODE:
        return _DTMF_CODE[d]
    return int(d)


def _signed(v):
    return v - 0x10000 if v & 0x8000 else v


def _freq(coef, rate):
    import math
    c = _signed(coef) / 32768.0
    if c > 1:
        c = 1.0
    return rate * math.acos(c) / (2 * math.pi)


class VirtualPhone:
    """The analog phone on an FXS port.  All actions start at the model's current
    time and play out as the model advances."""

    def __init__(self, model, law="ulaw", cid_standard="bell202"):
        self.model = model
        self.law = law
        self.onhook_audio = Ring(MAX_ONHOOK_AUDIO)   # raw frames heard on-hook
        self.line_log = []          # (time, linefeed) changes; drop oldest
        self.hook = 0
        self.key = None
        self._sched = []
        self.ring_log = []          # [start_ms, end_ms or None, ring Hz]
        self.caller_ids = []
        self._demod = fsk.FskDemodulator(law, standard=cid_standard)
        self.audio = Ring(MAX_AUDIO)
        self.fsk_outside_oht = 0
        self.lamp_log = []          # [start_ms, end_ms or None] of the neon lamp
        self._keys = []             # (t_on, t_off, digit) still to be sounded
        self._key_t = 0             # next 20 ms frame of key audio
        self._audio_until = 0       # key audio (tones and pauses) runs until then
        self._gen = ToneGen()
        self._cur = None            # start time of the key the generator sounds
        self._kbuf = bytearray(160)  # overwritten by each key-audio frame
        self._enc = g711.encoder(law)
        self._sil = g711.silence(law)

    # actions
    def _at(self, t, action, arg):
        if len(self._sched) >= MAX_SCHEDULE:
            raise OverflowError("phone schedule full")
        self._sched.append((t, action, arg))
        self._sched.sort(key=lambda e: e[0])

    def off_hook(self):
        self.hook = 1

    def on_hook(self):
        self.hook = 0

    def flash(self, ms=300):
        t = self.model.t
        self._at(t, "hook", 0)
        self._at(t + ms, "hook", 1)

    def dial_dtmf(self, digits, on_ms=80, off_ms=80):
        """Key digits: the tones go down the line as audio (every chip), and an
        Si3210's decoder sees them too.  Returns when the last key is released."""
        t = self.model.t
        if self._key_t >= self._audio_until:
            self._key_t = t - t % 20
        for d in digits:
            if len(self._keys) >= MAX_SCHEDULE:
                raise OverflowError("phone key schedule full")
            self._at(t, "key", dtmf_code(d))
            self._at(t + on_ms, "key", None)
            self._keys.append((t, t + on_ms, d))
            t += on_ms + off_ms
        # the line keeps carrying the (silent) microphone after the last key
        self._audio_until = t + KEY_TAIL_MS
        return t

    def pulse_dial(self, digits, break_ms=60, make_ms=40, interdigit_ms=700):
        t = self.model.t
        for d in digits:
            n = 10 if d == "0" else int(d)
            for _ in range(n):
                self._at(t, "hook", 0)
                self._at(t + break_ms, "hook", 1)
                t += break_ms + make_ms
            t += interdigit_ms
        return t

    def advance(self, now):
        s = self._sched
        while s and s[0][0] <= now:
            _, action, arg = s.pop(0)
            if action == "hook":
                self.hook = arg
            else:
                self.model._key(arg)
        self._key_audio(now)

    def _key_audio(self, now):
        """Frames of key audio (tone or the silence between keys) toward the host."""
        keys = self._keys
        while self._key_t < self._audio_until and self._key_t + 20 <= now:
            t = self._key_t
            self._key_t += 20
            while keys and keys[0][1] <= t:
                keys.pop(0)
            buf = self._kbuf
            if keys and keys[0][0] <= t:
                on, off, d = keys[0]
                if self._cur != on:         # a new key: its tones start in phase
                    self._cur = on
                    i = _KEYS.find(d)
                    self._gen.set((DTMF_ROWS[i // 4], DTMF_COLS[i % 4]), KEY_AMP)
                self._gen.fill(buf, self._enc)
                # the key is released inside this frame: silence after it
                for k in range((off - t) * 8 if off < t + 20 else 160, 160):
                    buf[k] = self._sil
            else:
                for k in range(160):
                    buf[k] = self._sil
            if self.hook:
                self.speak(buf)

    # what the phone perceives
    @property
    def ringing(self):
        return self.model.regs[64] == 4 and not self.model.neon_mode()

    @property
    def lamp(self):
        return self.model.regs[64] == 4 and self.model.neon_mode()

    @property
    def reversed(self):
        return self.model.regs[64] in (5, 6)

    def tone(self):
        """Frequencies (Hz, rounded) the tone oscillators put on the line now."""
        out = []
        m = self.model
        for coef, x, y in m.sounding():
            out.append(int(round(_freq(coef, m.tone_rate))))
        return tuple(sorted(out))

    def listen(self, n):
        """n linear samples at 8 kHz of what the tone oscillators put on the
        line, from their current coefficients, at the chip's own rate."""
        m = self.model
        n = min(n, MAX_LISTEN)
        out = [0] * n
        step = m.tone_rate // 8000
        for coef, x, y in m.sounding():
            c2 = _signed(coef) * 2
            # state kept with 8 extra fraction bits, rounded: the chip's
            # accumulators are wider than the 16-bit registers
            y1 = _signed(x) << 8
            y2 = _signed(y) << 8
            for i in range(n):
                for _ in range(step):
                    y0 = ((c2 * y1 + 16384) >> 15) - y2
                    y2 = y1
                    y1 = y0
                out[i] += (y1 * OUT_SCALE) >> 8
        return out

    def _linefeed(self, old, new, now):
        if old != new:
            if len(self.line_log) >= MAX_LOG:
                self.line_log.pop(0)
            self.line_log.append((now, new))
        m = self.model
        neon = m.neon_mode()
        if new == 4 and old != 4:
            log = self.lamp_log if neon else self.ring_log
            if len(log) >= MAX_LOG:
                log.pop(0)
            log.append([now, None, round(m.ring_frequency(), 1)])
        elif old == 4 and new != 4:
            for log in (self.ring_log, self.lamp_log):
                if log and log[-1][1] is None:
                    log[-1][1] = now

    def pcm_in(self, chan, frame):
        """A frame the host sent toward the line (after the chip's loopback and gain)."""
        if self.hook:
            self.audio.push(frame)
            return
        self.onhook_audio.push(frame)
        if self.model.regs[64] not in (2, 6):
            self.fsk_outside_oht += 1
        for msg in self._demod.feed(frame):
            if len(self.caller_ids) >= MAX_LOG:
                self.caller_ids.pop(0)
            self.caller_ids.append(msg)

    def speak(self, frame):
        self.model._from_phone(frame)


class Si3210Model:
    def __init__(self, now=None, product="Si3215", present=True, missing_value=0xFF,
                 never_calibrates=False, vbat_fails=False, indirect_busy_reads=1,
                 indirect_stuck=False, pcm=None, pcm_chan=0, law="ulaw",
                 cal_ms=CAL_MS, vbat_ramp_ms=VBAT_RAMP_MS, revision=5,
                 dcdc_cal_result=0x08, dead_indirect=(), country="US"):
        self.now = now
        self.t = now() if now else 0
        self.product = product
        self.present = present
        self.missing_value = missing_value
        self.never_calibrates = never_calibrates
        self.vbat_fails = vbat_fails
        self.indirect_busy_reads = indirect_busy_reads
        self.indirect_stuck = indirect_stuck
        self.cal_ms = cal_ms
        self.vbat_ramp_ms = vbat_ramp_ms
        self.dcdc_cal_result = dcdc_cal_result
        self.dead_indirect = dead_indirect      # fault hook: writes there are lost
        self.map = INDIRECT_MAP[product]
        self.tone_rate = TONE_RATE[product]
        self.history = History(MAX_HISTORY)
        self.protocol_errors = 0
        self.hazards = []           # (time, text) of unsafe power-ups (Si3210)
        self.cal_faults = []        # (time, text) of calibrations with live filters
        self.looped_frames = 0      # host frames the loopback returned to the host
        self.regs = bytearray(128)
        self.ind = [0] * 256
        self._pending = None
        self._busy = 0
        self._ida_written = False
        self._t14 = None
        self._t93 = None
        self._t96 = None
        self._gain_cache = {}
        self.regs[0] = (revision & 0x0F) | (0x10 if product == "Si3215" else 0)
        self.regs[8] = 0x02
        self.regs[11] = 0x33
        self.regs[14] = 0x10
        self.regs[67] = 0x1F
        # a phone bought in the country: its caller-ID receiver speaks the
        # country's modulation (Bell 202 or V.23)
        self.phone = VirtualPhone(self, law, fsk.cid_style(country)[0])
        self.law = law
        self.pcm = pcm
        self.pcm_chan = pcm_chan
        if pcm is not None:
            pcm.attach(pcm_chan, self._to_phone)

    # ---- physical side ------------------------------------------------------------
    def advance(self, now):
        if now < self.t:
            return
        self.t = now
        self.phone.advance(now)
        r = self.regs
        if self._t14 is not None:
            if self.vbat_fails:
                r[82] = 0x20
            else:
                dt = now - self._t14
                r[82] = VBAT_TARGET if dt >= self.vbat_ramp_ms else VBAT_TARGET * dt // self.vbat_ramp_ms
        if self._t93 is not None and now - self._t93 >= DCDC_MS:
            r[93] &= 0x7F
            r[107] = self.dcdc_cal_result
            self._t93 = None
        if self._t96 is not None and not self.never_calibrates and now - self._t96 >= self.cal_ms:
            r[96] = 0
            r[97] = 0
            self._t96 = None

    @property
    def loopback(self):
        return self.regs[8] != 0

    def neon_mode(self):
        return (self.regs[34] & 0x18) == 0x18

    def ring_frequency(self):
        return _freq(self.ind[self.map["ring"] + 1], RING_RATE)

    def sounding(self):
        """(coef, x, y) of each tone oscillator enabled and routed to the line."""
        out = []
        r = self.regs
        for ctl, base in ((32, self.map["osc1"]), (33, self.map["osc2"])):
            if r[ctl] & 0x06 == 0x06 and (self.ind[base + 1] or self.ind[base + 2]):
                out.append((self.ind[base], self.ind[base + 1], self.ind[base + 2]))
        return out

    def _gain_table(self, value):
        t = self._gain_cache.get(value)
        if t is None:
            if len(self._gain_cache) > 8:
                self._gain_cache = {}
            dec = g711.decode_table(self.law)
            enc = g711.encoder(self.law)
            t = bytes(enc(dec[b] * value // UNITY_GAIN) for b in range(256))
            self._gain_cache[value] = t
        return t

    def _apply_gain(self, frame, value):
        if value == UNITY_GAIN:
            return bytes(frame)
        t = self._gain_table(value)
        return bytes(t[b] for b in frame)

    def _to_phone(self, chan, frame):
        """The host wrote a frame toward the line."""
        if self.loopback:
            self.looped_frames += 1
            if self.pcm is not None:
                self.pcm.inject(self.pcm_chan, frame)
            return
        self.phone.pcm_in(chan, self._apply_gain(frame, self.ind[self.map["rx_gain"]]))

    def _from_phone(self, frame):
        """The phone's voice toward the host."""
        if self.pcm is None or self.loopback:
            return
        self.pcm.inject(self.pcm_chan, self._apply_gain(frame, self.ind[self.map["tx_gain"]]))

    def decoder_ok(self):
        """The Si3210's DTMF decoder works only with its thresholds loaded."""
        tw = self.map["dtmf_twist"]
        if tw is None:
            return False
        p = self.ind[self.map["dtmf_power"]]
        return 0 < p <= DTMF_POWER_MAX and self.ind[tw] != 0 and self.ind[tw + 1] != 0

    def _key(self, code):
        if not self.decoder_ok():
            return
        r = self.regs
        if code is None:
            if r[24] & 0x10:
                r[24] &= 0x0F           # key up: b4 clears, and it interrupts too
                r[20] |= 0x01
        else:
            r[24] = 0x10 | code
            r[20] |= 0x01

    def _check_hazard(self, what):
        if self.product != "Si3210":
            return
        r = self.regs
        if r[67] == 0x1F or r[66] != 1:
            if len(self.hazards) >= MAX_LOG:
                self.hazards.pop(0)
            self.hazards.append((self.t, "%s with reg 67 = 0x%02x, reg 66 = 0x%02x: Q7 may turn on"
                                 % (what, r[67], r[66])))

    # ---- SPI --------------------------------------------------------------------------
    def spi_frame(self, frame):
        if not self.present:
            return bytes((self.missing_value,)) * len(frame)
        if len(frame) != 1:
            self.protocol_errors += 1
            self._pending = None
            return b"\xff" * len(frame)
        b = frame[0]
        p = self._pending
        if p is None:
            self._pending = b
            return b"\x00"
        self._pending = None
        reg = p & 0x7F
        if p & 0x80:
            v = self._read(reg)
            self.history.add(("r", reg, v))
            return bytes((v,))
        self.history.add(("w", reg, b))
        self._write(reg, b)
        return b"\x00"

    def _read(self, reg):
        r = self.regs
        if reg == 1:
            return r[1] | (0x80 if self.product == "Si3215" else 0)
        if reg == 31:
            if self.indirect_stuck:
                return 1
            if self._busy > 0:
                self._busy -= 1
                return 1
            return 0
        if reg == 68:
            return (r[68] & 0xFE) | (1 if self.phone.hook else 0)
        return r[reg]

    def _write(self, reg, v):
        r = self.regs
        if reg in (18, 19, 20):
            r[reg] &= ~v & 0xFF
            return
        if reg == 0:
            r[0] = (r[0] & 0x7F) | (v & 0x80)      # only the daisy-chain bit is writable
            return
        if reg == 64:
            old = r[64]
            r[64] = v & 0x07
            if v & 0x07:
                self._check_hazard("linefeed %d" % (v & 0x07))
            self.phone._linefeed(old, v & 0x07, self.t)
            return
        if reg in (11, 31, 68, 82):
            return          # read-only
        r[reg] = v
        if reg == 14:
            self._t14 = self.t if v == 0 else None
            if v:
                r[82] = 0
            else:
                self._check_hazard("DC-DC powered up")
        elif reg == 93 and v & 0x80:
            self._t93 = self.t
        elif reg == 96 and v:
            self._t96 = self.t
            f = self.map["filters"]
            live = [a for a in range(f, f + 5) if self.ind[a] != 0x8000]
            if live:
                if len(self.cal_faults) >= MAX_LOG:
                    self.cal_faults.pop(0)
                self.cal_faults.append((self.t, "calibration with filter registers %s not held at 0x8000"
                                        % (live,)))
        elif reg == 29:
            self._ida_written = True
        elif reg == 30:
            if self._ida_written:
                val = r[28] | (r[29] << 8)
                if v not in self.dead_indirect:
                    self.ind[v] = val
                self.history.add(("iw", v, val))
                self._ida_written = False
            else:
                val = self.ind[v]
                r[28] = val & 0xFF
                r[29] = val >> 8
                self.history.add(("ir", v, val))
            self._busy = self.indirect_busy_reads


MAX_CHAIN = const(8)


class DaisyChain:
    """Several ProSLIC models on one chip select.

    Until daisy-chain mode is on (reg 0 b7 set in every module) the modules
    all read the same byte stream as plain [register][value] accesses: a
    broadcast write of reg 0 = 0x80 is how a driver turns the mode on, and
    any other byte (a channel-select byte sent too early: 1 << 6 = 0x40 is a
    write of reg 64, the linefeed) is misread by every module and counted in
    bytes_before_daisy.  In daisy-chain mode every access is the
    channel-select byte (exactly one bit: 1 << position) and then the chip's
    own two bytes, sent to that model.  A select byte naming no chip, or
    several, is a protocol error (answered 0xFF until the access ends)."""

    def __init__(self):
        self.models = []
        self._target = None        # model index, -1 for a bad select, None: expecting one
        self._left = 0
        self.protocol_errors = 0
        self.selects = {}          # select byte -> accesses that began with it
        self.bytes_before_daisy = 0
        self._bcast = None         # first byte of a broadcast pair, or None

    def add(self, position, model):
        if position >= MAX_CHAIN:
            raise ValueError("daisy chain position %d beyond %d" % (position, MAX_CHAIN - 1))
        while len(self.models) <= position:
            self.models.append(None)
        self.models[position] = model

    def advance(self, now):
        for m in self.models:
            if m is not None:
                m.advance(now)

    def daisy_mode(self):
        for m in self.models:
            if m is not None and not m.regs[0] & 0x80:
                return False
        return True

    def spi_frame(self, frame):
        if len(frame) != 1:
            self.protocol_errors += 1
            self._target = None
            return b"\xff" * len(frame)
        b = frame[0]
        if self._target is None and not self.daisy_mode():
            # every module reads the byte as part of a plain access
            first = self._bcast
            if first is None:
                self._bcast = b
            else:
                self._bcast = None
                if not (first == 0x00 and b & 0x80):
                    self.bytes_before_daisy += 2
            out = b"\xff"
            for m in self.models:
                if m is not None:
                    out = m.spi_frame(frame)
            return out
        if self._target is None:
            idx = -1
            for i in range(len(self.models)):
                if b == (1 << i) and self.models[i] is not None:
                    idx = i
            if idx < 0:
                self.protocol_errors += 1
            self.selects[b] = self.selects.get(b, 0) + 1
            self._target = idx
            self._left = 2
            return b"\x00"
        t = self._target
        self._left -= 1
        if self._left == 0:
            self._target = None
        if t < 0:
            return b"\xff"
        return self.models[t].spi_frame(frame)
