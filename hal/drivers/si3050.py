"""Silicon Labs Si3050 + Si3018/19 voice DAA (FXO) driver.

Register facts: HARDWARE.md; bring-up follows DAHDI wctdm.c wctdm_init_voicedaa
(sanity reg 2 == 0x03, software reset reg 1 = 0x80, PCM reg 33, country regs
16/26/30/31 from fxo_modes[], timeslots 34-37, ISO-cap reg 6 = 0, poll reg 11
high nibble, on-hook line monitor reg 5 = 0x08).

SPI: write [0x20|cid, reg, value], read [0x60|cid, reg, x]; CS rises after every
byte as in DAHDI (board setting cs_per_byte; one frame per access is unverified).

Non-blocking core: start_init(now)/poll_init(now) (init(now_fn, sleep_ms)
wraps them); poll(now) -> events (kind, value):
    ring (validated ring count), ring_end (caller gave up), caller_id (dict),
    answer (polarity reversal after dialling, when answer_polarity), polarity,
    disconnect (reason: 'battery' | 'loop' | 'polarity' | 'busy' | 'congestion'),
    dial_done, line ('down' when the line voltage is lost on-hook, 'up' when
    it returns).

Supervision timing follows the references (HARDWARE.md; DAHDI wctdm.c,
xpp card_fxo.c): the loop current (reg 28) is ignored for loop_settle_ms
(650) after seizing, then must stay below LOOP_MIN for loop_debounce_ms; a
polarity reversal counts only after the new sign holds polarity_debounce_ms
(DAHDI 64 ms, xpp 200 ms; a board setting); |line voltage| below
BATTERY_LOW_V for BATTERY_MS means battery lost, watched on-hook too, and a
ring is counted only while the line has voltage.

Caller ID as the country sends it (fsk.cid_style): Bell 202 (US) or V.23 (DE)
between the first and second ring; in the UK (ETSI prior to ringing) V.23
before the first ring, announced by a line reversal: an on-hook reversal
(debounced like the off-hook ones) opens a PRE_CID_WINDOW_MS receive window,
and the message is reported right after the first ring it precedes.
seize(now) / release(now), dial(digits, now), read_frame()/write_frame(frame).
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hal import fsk, tones, g711
from hal.dsp import ToneGen, dtmf_freqs, tone_ratio_pct

_CTL_WRITE = const(0x20)
_CTL_READ = const(0x60)

_REG_CTL1 = const(1)
_REG_ID = const(2)
_REG_IRQ_MASK = const(3)
_REG_IRQ_SRC = const(4)
_REG_DAA_CTL = const(5)
_REG_CTL2 = const(6)
_REG_LSREV = const(11)
_REG_INT_CTL = const(16)
_REG_DC_TERM = const(26)
_REG_LOOP_I = const(28)
_REG_LINE_V = const(29)
_REG_ACIM = const(30)
_REG_MISC = const(31)
_REG_PCM = const(33)
_REG_TXS_LO = const(34)
_REG_TXS_HI = const(35)
_REG_RXS_LO = const(36)
_REG_RXS_HI = const(37)

_RESET = const(0x80)
_ONHOOK_MON = const(0x08)
_OFFHOOK = const(0x09)
_RING_BITS = const(0x60)

ISO_TIMEOUT_MS = const(2000)
RESET_WAIT_MS = const(100)
RING_DEBOUNCE_MS = const(60)      # ring bits absent this long = ring off (20 Hz gaps)
RING_MIN_MS = const(150)          # shorter bursts are spurious
CID_WINDOW_MS = const(5000)       # listen for FSK this long after the first ring
PRE_CID_WINDOW_MS = const(3000)   # ... and this long after an on-hook line reversal
PRE_CID_VALID_MS = const(10000)   # a pre-ring message belongs to a ring this soon
BATTERY_LOW_V = const(3)
BATTERY_MS = const(64)
LOOP_MIN = const(3)
LOOP_SETTLE_MS = const(650)       # DAHDI/xpp: reg 28 settles after seizure; ignore it
POLARITY_DEBOUNCE_MS = const(64)  # DAHDI POLARITY_DEBOUNCE (xpp: 200)
MAX_DIAL = const(32)              # longer dial strings are refused (DialError)
MAX_EVENTS = const(16)            # full -> drop oldest, count
RX_FRAMES = const(16)             # voice frames buffered for read_frame(); full -> drop oldest
MAX_FRAMES_PER_POLL = const(16)

EV_RING = "ring"
EV_RING_END = "ring_end"
EV_CALLER_ID = "caller_id"
EV_ANSWER = "answer"
EV_POLARITY = "polarity"
EV_DISCONNECT = "disconnect"
EV_DIAL_DONE = "dial_done"
EV_LINE = "line"

_NO_EVENTS = ()

# wctdm fxo_modes[]: ohs, ohs2, rz, rt, ilim, dcv, mini, acim
COUNTRY_MODES = {
    "US": (0, 0, 0, 1, 0, 3, 0, 0),     # "FCC"
    "GB": (0, 1, 0, 0, 1, 3, 0, 5),     # "UK"
    "DE": (0, 1, 0, 0, 1, 3, 0, 3),     # "GERMANY" (as AUSTRIA); TBR21 would be acim 2
    "TBR21": (0, 0, 0, 0, 1, 3, 0, 2),
}


class DaaError(Exception):
    pass


class NotDetected(DaaError):
    pass


class IsoLinkError(DaaError):
    pass


class DialError(DaaError):
    pass


class StateError(DaaError):
    pass


def country_regs(country):
    """(reg16, reg26, reg30, reg31) as wctdm_init_voicedaa computes them."""
    key = country.upper() if country else "US"
    if key not in COUNTRY_MODES:
        key = tones.country_code(key)
    ohs, ohs2, rz, rt, ilim, dcv, mini, acim = COUNTRY_MODES[key]
    reg16 = (ohs << 6) | (rz << 1) | rt
    reg26 = (dcv << 6) | (mini << 4) | (ilim << 1)
    reg30 = acim
    reg31 = 0xA3 | (ohs2 << 3)
    return reg16, reg26, reg30, reg31


_I_IDLE = const(0)
_I_RESET = const(1)
_I_ISO = const(2)
_I_READY = const(3)


class Si3050:
    SPI_CS_PER_BYTE = True       # DAHDI; one frame per access is the board setting cs_per_byte=False

    def __init__(self, spi, cid=0, pcm=None, pcm_chan=0, timeslot=None, country="US",
                 law="ulaw", name="fxo", ring_cadences=None,
                 supervision=("battery", "loop", "busy"), answer_polarity=False,
                 loop_debounce_ms=200, busy_cycles=2, dtmf_on_ms=100, dtmf_off_ms=100,
                 loop_settle_ms=LOOP_SETTLE_MS, polarity_debounce_ms=POLARITY_DEBOUNCE_MS):
        self.spi = spi
        self.cid = cid
        self.pcm = pcm
        self.pcm_chan = pcm_chan
        self.timeslot = pcm_chan if timeslot is None else timeslot
        self.country = tones.country_code(country)
        self.law = law
        self.name = name
        self.ring_cadences = ring_cadences or (tones.ring_cadence(self.country),)
        self.supervision = supervision
        self.answer_polarity = answer_polarity
        self.loop_debounce_ms = loop_debounce_ms
        self.loop_settle_ms = loop_settle_ms
        self.polarity_debounce_ms = polarity_debounce_ms
        self.busy_cycles = busy_cycles
        self.dtmf_on_ms = dtmf_on_ms
        self.dtmf_off_ms = dtmf_off_ms
        self._tx = bytearray(3)
        self._rx = bytearray(3)
        self._istate = _I_IDLE
        self._it0 = 0
        self._events = []
        self.events_dropped = 0
        self.off_hook = False
        # ring detection
        self._ring_raw_at = None     # last time ring bits were seen
        self._ring_on = False
        self._ring_start = 0
        self._ring_end = 0
        self._rings = 0
        self._cid_until = 0
        self._demod = None
        # supervision
        self._low_v_since = None
        self._low_i_since = None
        self._sign = 0
        self._new_sign = 0           # a sign seen, not yet held long enough
        self._new_sign_at = 0
        self._answered = False
        self._seize_at = 0
        self.cid_standard = fsk.cid_style(self.country)[0]
        self._pre_cid = None         # (message, time) decoded before the first ring
        self._onhook_sign = 0
        self._onhook_new = 0
        self._onhook_new_at = 0
        self.line_up = True          # on-hook line voltage present
        self._onhook_low_since = None
        self._onhook_ok_since = None
        busy = tones.tone(self.country, "busy")
        cong = tones.tone(self.country, "congestion")
        self._busy_freqs = busy[0]
        self._busy_cad = busy[1]
        self._cong_cad = cong[1]
        self._lin = [0] * 160        # overwritten by every analysed frame
        self._tone_on = False
        self._tone_t = 0
        self._tone_on_ms = 0
        self._busy_n = 0
        self._cong_n = 0
        # voice and dialling
        self._rxq = []
        self.frames_dropped = 0
        self._dial = ""
        self._dial_t0 = 0
        self._dial_sent = 0
        self._dial_gen = ToneGen()
        self._dial_digit = -1
        self._fbuf = bytearray(160)  # overwritten by every DTMF frame rendered
        self._enc = g711.encoder(law)
        self._dec = g711.decode_table(law)
        self._sil = g711.silence(law)

    # ---- register access -----------------------------------------------------------
    def read(self, reg):
        tx = self._tx
        tx[0] = _CTL_READ | self.cid
        tx[1] = reg
        tx[2] = 0
        self.spi.write_readinto(tx, self._rx)
        return self._rx[2]

    def write(self, reg, value):
        tx = self._tx
        tx[0] = _CTL_WRITE | self.cid
        tx[1] = reg
        tx[2] = value & 0xFF
        self.spi.write_readinto(tx, self._rx)

    # ---- bring-up --------------------------------------------------------------------
    def detect(self):
        v = self.read(_REG_ID)
        if v != 0x03:
            raise NotDetected("%s: Si3050 not detected (reg 2 = 0x%02x, want 0x03)" % (self.name, v))
        return "Si3050"

    def start_init(self, now):
        self.detect()
        self.write(_REG_CTL1, _RESET)
        self._istate = _I_RESET
        self._it0 = now
        return False

    def poll_init(self, now):
        st = self._istate
        if st == _I_READY:
            return True
        if st == _I_RESET:
            if now - self._it0 < RESET_WAIT_MS:
                return False
            self.write(_REG_PCM, 0x20 if self.law == "alaw" else 0x28)
            r16, r26, r30, r31 = country_regs(self.country)
            self.write(_REG_INT_CTL, r16)
            self.write(_REG_DC_TERM, r26)
            self.write(_REG_ACIM, r30)
            self.write(_REG_MISC, r31)
            start = self.timeslot * 8
            self.write(_REG_TXS_LO, start & 0xFF)
            self.write(_REG_TXS_HI, (start >> 8) & 0x03)
            self.write(_REG_RXS_LO, start & 0xFF)
            self.write(_REG_RXS_HI, (start >> 8) & 0x03)
            self.write(_REG_CTL2, 0x00)             # power up line side (ISO-cap)
            self._istate = _I_ISO
            self._it0 = now
            return False
        if st == _I_ISO:
            v = self.read(_REG_LSREV)
            if v & 0xF0:
                self.write(_REG_DAA_CTL, _ONHOOK_MON)
                self.write(_REG_IRQ_MASK, 0x81)     # ring + polarity reversal
                self.write(_REG_IRQ_SRC, 0x00)
                v = self.line_voltage()          # the idle polarity, to see a reversal
                self._onhook_sign = 1 if v > 0 else (-1 if v < 0 else 0)
                self._istate = _I_READY
                return True
            if now - self._it0 > ISO_TIMEOUT_MS:
                self._istate = _I_IDLE
                raise IsoLinkError("%s: ISO-cap link not up (reg 11 = 0x%02x after %d ms)"
                                   % (self.name, v, now - self._it0))
            return False
        raise StateError("%s: poll_init before start_init" % self.name)

    def init(self, now_fn, sleep_ms, step_ms=10):
        self.start_init(now_fn())
        while not self.poll_init(now_fn()):
            sleep_ms(step_ms)
        return True

    @property
    def ready(self):
        return self._istate == _I_READY

    # ---- line control ---------------------------------------------------------------
    def seize(self, now):
        self.write(_REG_DAA_CTL, _OFFHOOK)
        self.off_hook = True
        self._seize_at = now
        self._answered = False
        self._low_v_since = None
        self._low_i_since = None
        self._sign = 0
        self._new_sign = 0
        self._reset_busy(now)
        self._demod = None
        self._rxq = []

    def release(self, now=None):
        self.write(_REG_DAA_CTL, _ONHOOK_MON)
        self.off_hook = False
        self._dial = ""
        self._rxq = []

    def _emit(self, kind, value=None):
        ev = self._events
        if len(ev) >= MAX_EVENTS:
            ev.pop(0)
            self.events_dropped += 1
        ev.append((kind, value))

    def line_voltage(self):
        v = self.read(_REG_LINE_V)
        return v - 256 if v > 127 else v

    def loop_current(self):
        return self.read(_REG_LOOP_I)

    # ---- poll -----------------------------------------------------------------------
    def poll(self, now):
        if self.off_hook:
            self._poll_offhook(now)
        else:
            self._poll_line(now)
            self._poll_ring(now)
        if not self._events:
            return _NO_EVENTS
        out = tuple(self._events)
        self._events = []
        return out

    def _cad_match(self, dur, on):
        for cad in self.ring_cadences:
            for i in range(0 if on else 1, len(cad), 2):
                if tones.cadence_matches(dur, cad[i]):
                    return True
        return False

    def _max_off(self):
        m = 0
        for cad in self.ring_cadences:
            for i in range(1, len(cad), 2):
                if cad[i] > m:
                    m = cad[i]
        return m

    def _poll_line(self, now):
        """On-hook: the line voltage tells a lost line (HARDWARE.md: watched
        on-hook as well as off-hook)."""
        v = self.line_voltage()
        low = -BATTERY_LOW_V < v < BATTERY_LOW_V
        if not low and not self._ring_on and not self._rings:
            # an on-hook line reversal announces caller ID before ringing
            s = 1 if v > 0 else -1
            if not self._onhook_sign:
                self._onhook_sign = s
            elif s == self._onhook_sign:
                self._onhook_new = 0
            elif s != self._onhook_new:
                self._onhook_new = s
                self._onhook_new_at = now
            elif now - self._onhook_new_at >= self.polarity_debounce_ms:
                self._onhook_sign = s
                self._onhook_new = 0
                if self._demod is None:
                    self._demod = fsk.FskDemodulator(self.law, standard=self.cid_standard)
                    self._cid_until = now + PRE_CID_WINDOW_MS
                    self._drain()
        if low:
            self._onhook_ok_since = None
            if self._onhook_low_since is None:
                self._onhook_low_since = now
            elif self.line_up and now - self._onhook_low_since >= BATTERY_MS:
                self.line_up = False
                self._emit(EV_LINE, "down")
        else:
            self._onhook_low_since = None
            if self._onhook_ok_since is None:
                self._onhook_ok_since = now
            elif not self.line_up and now - self._onhook_ok_since >= BATTERY_MS:
                self.line_up = True
                self._emit(EV_LINE, "up")

    def _poll_ring(self, now):
        bits = self.read(_REG_DAA_CTL) & _RING_BITS
        if not self.line_up:
            bits = 0            # a ring counts only while the line has voltage
        if bits:
            if self._ring_raw_at is None or not self._ring_on:
                if not self._ring_on:
                    # off segment ends: validate the gap when a call is in progress
                    if self._rings and not self._cad_match(now - self._ring_end, False):
                        self._rings = 0
                    self._ring_on = True
                    self._ring_start = now
            self._ring_raw_at = now
        elif self._ring_on and now - self._ring_raw_at >= RING_DEBOUNCE_MS:
            self._ring_on = False
            end = self._ring_raw_at
            dur = end - self._ring_start
            self._ring_end = end
            if dur >= RING_MIN_MS and self._cad_match(dur, True):
                self._rings += 1
                self._emit(EV_RING, self._rings)
                if self._rings == 1:
                    pre = self._pre_cid
                    self._pre_cid = None
                    if pre is not None and now - pre[1] <= PRE_CID_VALID_MS:
                        self._emit(EV_CALLER_ID, pre[0])
                        self._demod = None
                    else:
                        self._demod = fsk.FskDemodulator(self.law, standard=self.cid_standard)
                        self._cid_until = now + CID_WINDOW_MS
                        self._drain()
        elif (not self._ring_on and self._rings
              and now - self._ring_end > self._max_off() * 12 // 10 + 200):
            self._rings = 0
            self._demod = None
            self._emit(EV_RING_END)
        self._poll_cid(now)

    def _drain(self):
        if self.pcm is not None:
            while self.pcm.read_frame(self.pcm_chan) is not None:
                pass

    def _poll_cid(self, now):
        pcm = self.pcm
        if pcm is None:
            return
        d = self._demod
        if d is None or self._ring_on or now > self._cid_until:
            if d is not None and now > self._cid_until:
                self._demod = None
            self._drain()       # on-hook audio nobody listens to
            return
        for _ in range(MAX_FRAMES_PER_POLL):
            f = pcm.read_frame(self.pcm_chan)
            if f is None:
                break
            for msg in d.feed(f):
                if self._rings:
                    self._emit(EV_CALLER_ID, msg)
                else:
                    self._pre_cid = (msg, now)      # reported with the first ring
                self._demod = None
                self._drain()
                return

    def _poll_offhook(self, now):
        sup = self.supervision
        v = self.line_voltage()
        av = v if v >= 0 else -v
        if av < BATTERY_LOW_V:
            if self._low_v_since is None:
                self._low_v_since = now
            elif "battery" in sup and now - self._low_v_since >= BATTERY_MS:
                self._disconnect("battery")
                return
        else:
            self._low_v_since = None
            s = 1 if v > 0 else -1
            if not self._sign:
                self._sign = s
            elif s == self._sign:
                self._new_sign = 0               # a bounce or a glitch that came back
            elif s != self._new_sign:
                self._new_sign = s
                self._new_sign_at = now
            elif now - self._new_sign_at >= self.polarity_debounce_ms:
                self._sign = s
                self._new_sign = 0
                self._emit(EV_POLARITY, s)
                if self.answer_polarity and not self._answered:
                    self._answered = True
                    self._emit(EV_ANSWER)
                elif "polarity" in sup:
                    self._disconnect("polarity")
                    return
        if now - self._seize_at < self.loop_settle_ms:
            i = LOOP_MIN                         # settling after seizure: not judged
        else:
            i = self.loop_current()
        if i < LOOP_MIN:
            if self._low_i_since is None:
                self._low_i_since = now
            elif "loop" in sup and now - self._low_i_since >= self.loop_debounce_ms:
                self._disconnect("loop")
                return
        else:
            self._low_i_since = None
        if self._dial:
            self._poll_dial(now)
        self._poll_audio(now)

    def _disconnect(self, reason):
        self._emit(EV_DISCONNECT, reason)
        self._low_v_since = None
        self._low_i_since = None
        self._reset_busy(0)

    # ---- incoming audio and busy/reorder detection ----------------------------------
    def _reset_busy(self, now):
        self._tone_on = False
        self._tone_t = now
        self._tone_on_ms = 0
        self._busy_n = 0
        self._cong_n = 0

    def _poll_audio(self, now):
        pcm = self.pcm
        if pcm is None:
            return
        detect = "busy" in self.supervision
        for _ in range(MAX_FRAMES_PER_POLL):
            f = pcm.read_frame(self.pcm_chan)
            if f is None:
                break
            q = self._rxq
            if len(q) >= RX_FRAMES:
                q.pop(0)
                self.frames_dropped += 1
            q.append(f)
            if detect and self._busy_frame(f):
                return

    def _busy_frame(self, f):
        lin = self._lin
        dec = self._dec
        for i in range(160):
            lin[i] = dec[f[i]]
        freqs = self._busy_freqs
        need = 60 if len(freqs) == 1 else 25
        on = True
        for fr in freqs:
            if tone_ratio_pct(lin, fr) < need:
                on = False
                break
        # frame clock: each frame is 20 ms of line time
        self._tone_t += 20
        if on == self._tone_on:
            return False
        dur = self._tone_t
        self._tone_t = 0
        if on:
            # an off segment just ended: a full on/off cycle is complete
            on_ms = self._tone_on_ms
            self._tone_on = True
            if on_ms:
                if self._cyc(on_ms, dur, self._busy_cad):
                    self._busy_n += 1
                    self._cong_n = 0
                elif self._cyc(on_ms, dur, self._cong_cad):
                    self._cong_n += 1
                    self._busy_n = 0
                else:
                    self._busy_n = self._cong_n = 0
                if self._busy_n >= self.busy_cycles:
                    self._disconnect("busy")
                    return True
                if self._cong_n >= self.busy_cycles:
                    self._disconnect("congestion")
                    return True
        else:
            self._tone_on = False
            self._tone_on_ms = dur
        return False

    @staticmethod
    def _cyc(on_ms, off_ms, cad):
        if len(cad) < 2:
            return False
        return (tones.cadence_matches(on_ms, cad[0], 20, 40)
                and tones.cadence_matches(off_ms, cad[1], 20, 40))

    # ---- outgoing DTMF ---------------------------------------------------------------
    def dial(self, digits, now):
        """Queue DTMF digits (0-9 * # A-D, ',' = 1 s pause) generated into PCM."""
        if not self.off_hook:
            raise StateError("%s: seize the line before dialling" % self.name)
        if len(digits) > MAX_DIAL:
            raise DialError("%s: dial string longer than %d" % (self.name, MAX_DIAL))
        for d in digits:
            if d != ",":
                dtmf_freqs(d)     # validates
        self._dial = digits
        self._dial_t0 = now
        self._dial_sent = 0
        self._dial_digit = -1

    @property
    def dialling(self):
        return bool(self._dial)

    def _poll_dial(self, now):
        on_f = self.dtmf_on_ms // 20
        per = on_f + self.dtmf_off_ms // 20
        pause_f = 1000 // 20
        due = (now - self._dial_t0) // 20 + 1 - self._dial_sent
        if due > MAX_FRAMES_PER_POLL:
            due = MAX_FRAMES_PER_POLL
        buf = self._fbuf
        for _ in range(due):
            n = self._dial_sent
            # locate the digit for frame n
            idx = 0
            for d in self._dial:
                span = pause_f if d == "," else per
                if n < span:
                    break
                n -= span
                idx += 1
            if idx >= len(self._dial):
                self._dial = ""
                self._emit(EV_DIAL_DONE)
                return
            d = self._dial[idx]
            if d != "," and n < on_f:
                if self._dial_digit != idx:
                    self._dial_digit = idx
                    self._dial_gen.set(dtmf_freqs(d), 5000)
                self._dial_gen.fill(buf, self._enc)
            else:
                for i in range(160):
                    buf[i] = self._sil
            if self.pcm is not None:
                self.pcm.write_frame(self.pcm_chan, buf)
            self._dial_sent += 1

    # ---- PCM ---------------------------------------------------------------------------
    def read_frame(self):
        """Next voice frame from the line (buffered by poll) or None."""
        if self._rxq:
            return self._rxq.pop(0)
        return None

    def write_frame(self, frame):
        """Voice toward the line; dropped (counted) while dialling or on-hook."""
        if self.pcm is None or self._dial or not self.off_hook:
            self.frames_dropped += 1
            return False
        self.pcm.write_frame(self.pcm_chan, frame)
        return True
