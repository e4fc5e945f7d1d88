"""Silicon Labs Si3210 / Si3215 ProSLIC (FXS) driver.

Register facts: HARDWARE.md; bring-up order follows DAHDI wctdm.c
(wctdm_proslic_insane, wctdm_init_indirect_regs, wctdm_powerup_proslic,
wctdm_proslic_calibrate, PCM/timeslot setup) with the calibration values of
HARDWARE.md (97 = 0x1F, 96 = 0x5F).

SPI: write [reg & 0x7F][value], read [reg | 0x80][dummy]; the chip needs CS to
rise after every byte, so the bus must be built with cs_per_byte=True
(SPI_CS_PER_BYTE below tells the builder).

Non-blocking core:
    start_init(now) / poll_init(now) -> False while in progress, True when ready,
        raises a SlicError subclass on failure;  init(now_fn, sleep_ms) wraps it.
    poll(now) -> tuple of events (kind, value): hook_off, hook_on, flash,
        digit (DTMF '0'-'9' '*' '#' 'A'-'D'), pulse_digit, ring_done, cid_sent.
    ring(now, caller_id=None, cadence=None, count=0), stop_ring(now)
    play_tone(name, now), stop_tone()
    send_vmwi(active, now)
    set_reversal(on)
    read_frame() / write_frame(frame)   PCM through the board's PCM bus
No clock reads: every time is the caller's `now` in integer ms.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hal import fsk, tones

# direct registers
_REG_ID = const(0)
_REG_PCM_MODE = const(1)
_REG_PCM_TXS_LO = const(2)
_REG_PCM_TXS_HI = const(3)
_REG_PCM_RXS_LO = const(4)
_REG_PCM_RXS_HI = const(5)
_REG_SANITY8 = const(8)
_REG_SANITY11 = const(11)
_REG_POWERDOWN = const(14)
_REG_IRQ1 = const(18)
_REG_IRQ2 = const(19)
_REG_IRQ3 = const(20)
_REG_IRQEN1 = const(21)
_REG_IRQEN2 = const(22)
_REG_IRQEN3 = const(23)
_REG_DTMF = const(24)
_REG_IDA_LO = const(28)
_REG_IDA_HI = const(29)
_REG_IAA = const(30)
_REG_IA_STATUS = const(31)
_REG_OSC1_CTL = const(32)
_REG_OSC2_CTL = const(33)
_REG_LINEFEED = const(64)
_REG_LOOP_STATUS = const(68)
_REG_ILIM = const(71)
_REG_VBATH = const(74)
_REG_VBAT = const(82)
_REG_DCDC_PWM = const(92)
_REG_DCDC = const(93)
_REG_CAL1 = const(96)
_REG_CAL2 = const(97)

# indirect registers (Si3210 addresses)
_IR_OSC1 = const(0)
_IR_OSC1X = const(1)
_IR_OSC1Y = const(2)
_IR_OSC2 = const(3)
_IR_OSC2X = const(4)
_IR_OSC2Y = const(5)
_IR_RING_V_OFF = const(6)
_IR_RING_OSC = const(7)
_IR_RING_X = const(8)
_IR_RING_Y = const(9)

# linefeed states (reg 64)
LF_OPEN = const(0)
LF_ACTIVE = const(1)
LF_OHT = const(2)
LF_TIP_OPEN = const(3)
LF_RINGING = const(4)
LF_REV_ACTIVE = const(5)
LF_REV_OHT = const(6)
LF_RING_OPEN = const(7)

_PCM_ULAW = const(0x28)
_PCM_ALAW = const(0x20)
_CAL1_START = const(0x5F)
_CAL2_START = const(0x1F)
_DCDC_CAL = const(0x99)
_VBAT_MIN = const(0xC0)        # wctdm waits for reg 82 >= 0xC0 (~72 V)
_OSC_ON = const(0x06)          # b2 enable + b1 route to line
_OSC_OFF = const(0x00)

MAX_INDIRECT_POLLS = const(200)   # reads of reg 31 before IndirectTimeout
MAX_EVENTS = const(16)            # pending events; full -> drop oldest, count
VBAT_TIMEOUT_MS = const(1000)
DCDC_TIMEOUT_MS = const(500)
CAL_TIMEOUT_MS = const(2000)
CID_DELAY_MS = const(500)         # first ring end -> FSK start (GR-30 >= 500 ms)
MAX_FRAMES_PER_POLL = const(16)

EV_HOOK_OFF = "hook_off"
EV_HOOK_ON = "hook_on"
EV_FLASH = "flash"
EV_DIGIT = "digit"
EV_PULSE_DIGIT = "pulse_digit"
EV_RING_DONE = "ring_done"
EV_CID_SENT = "cid_sent"

_NO_EVENTS = ()
DTMF_CODES = "D1234567890*#ABC"   # reg 24 b3:0 -> key

# DAHDI wctdm indirect_regs[] defaults: (Si3210 address, value)
INDIRECT_DEFAULTS = (
    (0, 0x7B30), (1, 0x0063), (2, 0x0000), (3, 0x7870), (4, 0x007D), (5, 0x0000),
    (6, 0x0000), (7, 0x7EF0), (8, 0x0160), (9, 0x0000), (10, 0x2000), (11, 0x2000),
    (12, 0x0000), (13, 0x2000), (14, 0x4000), (15, 0x1000), (16, 0x3600),
    (17, 0x1000), (18, 0x0200), (19, 0x07C0), (20, 0x2600), (21, 0x1B80),
    (22, 0x8000), (23, 0x0320), (24, 0x008C), (25, 0x0100), (26, 0x0010),
    (27, 0x0C00), (64, 0x0C00), (66, 0x1000),
)


class SlicError(Exception):
    pass


class NotDetected(SlicError):
    pass


class InsaneError(SlicError):
    pass


class IndirectTimeout(SlicError):
    pass


class PowerUpError(SlicError):
    pass


class CalibrationError(SlicError):
    pass


class StateError(SlicError):
    pass


# hook state machine
_H_ONHOOK = const(0)
_H_OFFHOOK = const(1)
_H_BREAK = const(2)      # off-hook call, line open for now (pulse/flash/hang-up pending)

# init states
_I_IDLE = const(0)
_I_VBAT = const(1)
_I_DCDC = const(2)
_I_CAL = const(3)
_I_READY = const(4)


class Si3210:
    SPI_CS_PER_BYTE = True

    def __init__(self, spi, pcm=None, pcm_chan=0, timeslot=None, country="US",
                 law="ulaw", name="fxs", chip="Si3210/Si3215", hook_debounce_ms=20, flash_min_ms=100,
                 flash_max_ms=800, pulse_interdigit_ms=300,
                 vbat_timeout_ms=VBAT_TIMEOUT_MS, cal_timeout_ms=CAL_TIMEOUT_MS, chain=None):
        self.spi = spi
        # daisy-chained modules share a chip select: each access starts with
        # the channel-select byte 1 << chain (HARDWARE.md, SPI framing)
        self.chain = chain
        self._sel = None if chain is None else (1 << chain) & 0xFF
        self.pcm = pcm
        self.pcm_chan = pcm_chan
        self.timeslot = pcm_chan if timeslot is None else timeslot
        self.country = tones.country_code(country)
        self.law = law
        self.name = name
        self.chip = chip
        self.hook_debounce_ms = hook_debounce_ms
        self.flash_min_ms = flash_min_ms
        self.flash_max_ms = flash_max_ms
        self.pulse_interdigit_ms = pulse_interdigit_ms
        self.vbat_timeout_ms = vbat_timeout_ms
        self.cal_timeout_ms = cal_timeout_ms
        self._tx = bytearray(2 if chain is None else 3)
        self._rx = bytearray(len(self._tx))
        self.product = None
        self.revision = None
        self._istate = _I_IDLE
        self._it0 = 0
        # hook
        self._hstate = _H_ONHOOK
        self._raw = 0
        self._raw_since = 0
        self._break_at = 0
        self._make_at = 0
        self._pulses = 0
        # events
        self._events = []
        self.events_dropped = 0
        # linefeed / reversal
        self._reversed = False
        self.linefeed = LF_OPEN
        # tone cadence
        self._tone = None
        self._tone_cad = ()
        self._tone_idx = 0
        self._tone_t = 0
        # ringing
        self._ringing = False
        self._ring_cad = ()
        self._ring_idx = 0
        self._ring_t = 0
        self._ring_left = 0
        self._cid_msg = None
        # FSK transmit; _fbuf is overwritten by every frame rendered
        self._mod = None
        self._fbuf = bytearray(160)
        self._fsk_t0 = 0
        self._fsk_sent = 0
        self._fsk_kind = None
        self.frames_dropped = 0

    # ---- register access ---------------------------------------------------------
    def read(self, reg):
        tx = self._tx
        i = 0
        if self._sel is not None:
            tx[0] = self._sel
            i = 1
        tx[i] = reg | 0x80
        tx[i + 1] = 0
        self.spi.write_readinto(tx, self._rx)
        return self._rx[i + 1]

    def write(self, reg, value):
        tx = self._tx
        i = 0
        if self._sel is not None:
            tx[0] = self._sel
            i = 1
        tx[i] = reg & 0x7F
        tx[i + 1] = value & 0xFF
        self.spi.write_readinto(tx, self._rx)

    def _wait_indirect(self):
        for _ in range(MAX_INDIRECT_POLLS):
            if self.read(_REG_IA_STATUS) == 0:
                return
        raise IndirectTimeout("%s: indirect access busy (reg 31) after %d polls"
                              % (self.name, MAX_INDIRECT_POLLS))

    def write_indirect(self, addr, value):
        self._wait_indirect()
        self.write(_REG_IDA_LO, value & 0xFF)
        self.write(_REG_IDA_HI, (value >> 8) & 0xFF)
        self.write(_REG_IAA, addr)

    def read_indirect(self, addr):
        self._wait_indirect()
        self.write(_REG_IAA, addr)
        self._wait_indirect()
        return self.read(_REG_IDA_LO) | (self.read(_REG_IDA_HI) << 8)

    # ---- bring-up ----------------------------------------------------------------
    def detect(self):
        """Read reg 0 and reg 1; raise NotDetected.  Returns 'Si3210' or 'Si3215'."""
        r0 = self.read(_REG_ID)
        rev = r0 & 0x0F
        if rev == 0 or rev == 0x0F:
            raise NotDetected("%s: %s not detected (reg 0 = 0x%02x)" % (self.name, self.chip, r0))
        self.revision = rev
        self.product = "Si3215" if self.read(_REG_PCM_MODE) & 0x80 else "Si3210"
        return self.product

    def sanity(self):
        v8 = self.read(_REG_SANITY8)
        v11 = self.read(_REG_SANITY11)
        if v8 != 0x02 or v11 != 0x33:
            raise InsaneError("%s: ProSLIC insane (reg 8 = 0x%02x, want 0x02; reg 11 = 0x%02x, want 0x33)"
                              % (self.name, v8, v11))

    def start_init(self, now):
        self.detect()
        self.sanity()
        self.write(_REG_POWERDOWN, 0x10)          # DC-DC off while loading
        for addr, val in INDIRECT_DEFAULTS:
            self.write_indirect(addr, val)
        self.write(_REG_DCDC_PWM, 0xFF)           # DC-DC period (wctdm default)
        self.write(_REG_VBATH, 0x32)              # VBATH ~ 75 V
        self.write(_REG_ILIM, 0x01)               # 23 mA loop current limit
        self.write(_REG_POWERDOWN, 0x00)          # power up DC-DC
        self._istate = _I_VBAT
        self._it0 = now
        return False

    def poll_init(self, now):
        st = self._istate
        if st == _I_READY:
            return True
        dt = now - self._it0
        if st == _I_VBAT:
            v = self.read(_REG_VBAT)
            if v >= _VBAT_MIN:
                self.write(_REG_DCDC, _DCDC_CAL)
                self._istate = _I_DCDC
                self._it0 = now
            elif dt > self.vbat_timeout_ms:
                self._istate = _I_IDLE
                raise PowerUpError("%s: VBAT did not ramp (reg 82 = 0x%02x after %d ms)"
                                   % (self.name, v, dt))
        elif st == _I_DCDC:
            if not self.read(_REG_DCDC) & 0x80:
                self.write(_REG_CAL2, _CAL2_START)
                self.write(_REG_CAL1, _CAL1_START)
                self._istate = _I_CAL
                self._it0 = now
            elif dt > DCDC_TIMEOUT_MS:
                self._istate = _I_IDLE
                raise PowerUpError("%s: DC-DC calibration (reg 93) did not finish" % self.name)
        elif st == _I_CAL:
            v = self.read(_REG_CAL1)
            if v == 0:
                self._finish_init()
                return True
            if dt > self.cal_timeout_ms:
                self._istate = _I_IDLE
                raise CalibrationError("%s: calibration timeout (reg 96 = 0x%02x after %d ms)"
                                       % (self.name, v, dt))
        else:
            raise StateError("%s: poll_init before start_init" % self.name)
        return False

    def _finish_init(self):
        self.write(_REG_PCM_MODE, _PCM_ALAW if self.law == "alaw" else _PCM_ULAW)
        start = self.timeslot * 8
        self.write(_REG_PCM_TXS_LO, start & 0xFF)
        self.write(_REG_PCM_TXS_HI, (start >> 8) & 0x03)
        self.write(_REG_PCM_RXS_LO, start & 0xFF)
        self.write(_REG_PCM_RXS_HI, (start >> 8) & 0x03)
        self.clear_interrupts()
        self.write(_REG_IRQEN1, 0x00)
        self.write(_REG_IRQEN2, 0x03)           # ring trip + loop status
        self.write(_REG_IRQEN3, 0x01)           # DTMF
        self.set_linefeed(LF_ACTIVE)
        self._istate = _I_READY

    def init(self, now_fn, sleep_ms, step_ms=10):
        """Blocking wrapper over start_init/poll_init."""
        self.start_init(now_fn())
        while not self.poll_init(now_fn()):
            sleep_ms(step_ms)
        return True

    @property
    def ready(self):
        return self._istate == _I_READY

    def clear_interrupts(self):
        self.write(_REG_IRQ1, 0xFF)
        self.write(_REG_IRQ2, 0xFF)
        self.write(_REG_IRQ3, 0xFF)

    # ---- line feed -----------------------------------------------------------------
    def set_linefeed(self, lf):
        if self._reversed:
            if lf == LF_ACTIVE:
                lf = LF_REV_ACTIVE
            elif lf == LF_OHT:
                lf = LF_REV_OHT
        self.write(_REG_LINEFEED, lf)
        self.linefeed = lf

    def set_reversal(self, on):
        """Polarity reversal (answer supervision toward the phone)."""
        self._reversed = bool(on)
        if self._ringing:
            return
        base = LF_OHT if self.linefeed in (LF_OHT, LF_REV_OHT) else LF_ACTIVE
        self.set_linefeed(base)

    # ---- events ----------------------------------------------------------------------
    def _emit(self, kind, value=None):
        ev = self._events
        if len(ev) >= MAX_EVENTS:
            ev.pop(0)
            self.events_dropped += 1
        ev.append((kind, value))

    @property
    def off_hook(self):
        return self._hstate != _H_ONHOOK

    def poll(self, now):
        """Sample hook/DTMF, run cadences and FSK; returns a tuple of events."""
        self._poll_hook(now)
        if self._hstate != _H_ONHOOK:
            irq3 = self.read(_REG_IRQ3)
            if irq3 & 0x01:
                code = self.read(_REG_DTMF) & 0x0F
                self.write(_REG_IRQ3, 0x01)
                self._emit(EV_DIGIT, DTMF_CODES[code])
        if self._ringing:
            self._poll_ring(now)
        if self._mod is not None:
            self._poll_fsk(now)
        if self._tone_cad:
            self._poll_tone(now)
        if not self._events:
            return _NO_EVENTS
        out = tuple(self._events)
        self._events = []
        return out

    def _poll_hook(self, now):
        raw = self.read(_REG_LOOP_STATUS) & 0x01
        if raw != self._raw:
            self._raw = raw
            self._raw_since = now
        stable = (now - self._raw_since) >= self.hook_debounce_ms
        st = self._hstate
        edge = self._raw_since
        if st == _H_ONHOOK:
            if raw and stable:
                self._hstate = _H_OFFHOOK
                self._pulses = 0
                self._make_at = edge
                if self._ringing:
                    self._ring_trip()
                self._emit(EV_HOOK_OFF)
        elif st == _H_OFFHOOK:
            if not raw and stable:
                self._hstate = _H_BREAK
                self._break_at = edge
            elif self._pulses and now - self._make_at >= self.pulse_interdigit_ms:
                n = self._pulses
                self._pulses = 0
                self._emit(EV_PULSE_DIGIT, "0" if n >= 10 else str(n))
        else:  # _H_BREAK
            if raw and stable:
                dur = edge - self._break_at
                self._hstate = _H_OFFHOOK
                self._make_at = edge
                if dur < self.flash_min_ms:
                    self._pulses += 1
                else:
                    self._pulses = 0
                    self._emit(EV_FLASH)
            elif not raw and now - self._break_at > self.flash_max_ms:
                self._hstate = _H_ONHOOK
                self._pulses = 0
                self.stop_tone()
                self._emit(EV_HOOK_ON)

    # ---- tones ---------------------------------------------------------------------
    def _program_osc(self, base, freq, level):
        coef, x, y = tones.osc_coefficients(freq, level)
        self.write_indirect(base, coef)
        self.write_indirect(base + 1, x)
        self.write_indirect(base + 2, y)

    def play_tone(self, name, now):
        """Start a call-progress tone of this port's country from the oscillators."""
        freqs, cad, level = tones.tone(self.country, name)
        self.write(_REG_OSC1_CTL, _OSC_OFF)
        self.write(_REG_OSC2_CTL, _OSC_OFF)
        self._program_osc(_IR_OSC1, freqs[0], level)
        if len(freqs) > 1:
            self._program_osc(_IR_OSC2, freqs[1], level)
        self._tone = freqs
        self._tone_cad = cad
        self._tone_idx = 0
        self._tone_t = now
        self._osc_enable(True)

    def _osc_enable(self, on):
        v = _OSC_ON if on else _OSC_OFF
        self.write(_REG_OSC1_CTL, v)
        if self._tone and len(self._tone) > 1:
            self.write(_REG_OSC2_CTL, v)

    def stop_tone(self):
        if self._tone is None:
            return
        self.write(_REG_OSC1_CTL, _OSC_OFF)
        self.write(_REG_OSC2_CTL, _OSC_OFF)
        self._tone = None
        self._tone_cad = ()

    def _poll_tone(self, now):
        cad = self._tone_cad
        changed = False
        while now - self._tone_t >= cad[self._tone_idx]:
            self._tone_t += cad[self._tone_idx]
            self._tone_idx = (self._tone_idx + 1) % len(cad)
            changed = True
        if changed:
            self._osc_enable(self._tone_idx % 2 == 0)

    @property
    def tone(self):
        return self._tone

    # ---- ringing and caller ID ------------------------------------------------------
    def ring(self, now, caller_id=None, cadence=None, count=0):
        """Ring with a software cadence (linefeed 4 on, on-hook transmission off).

        caller_id: dict for fsk.mdmf_call (datetime, number, name, number_absent,
        name_absent) or raw message bytes; sent in the first off period long
        enough for it, starting CID_DELAY_MS after the ring burst.
        count: number of ring bursts (0 = until stop_ring / answer).
        """
        if self._hstate != _H_ONHOOK:
            raise StateError("%s: cannot ring an off-hook phone" % self.name)
        self.stop_tone()
        if caller_id is not None and not isinstance(caller_id, (bytes, bytearray)):
            caller_id = fsk.mdmf_call(**caller_id)
        self._cid_msg = caller_id
        self._ring_cad = cadence or tones.ring_cadence(self.country)
        self._ring_idx = 0
        self._ring_t = now
        self._ring_left = count
        self._ringing = True
        self.write(_REG_LINEFEED, LF_RINGING)
        self.linefeed = LF_RINGING

    def stop_ring(self, now=None):
        if not self._ringing:
            return
        self._ringing = False
        self._abort_fsk()
        self.set_linefeed(LF_ACTIVE)

    @property
    def ringing(self):
        return self._ringing

    def _ring_trip(self):
        self._ringing = False
        self._abort_fsk()
        self.set_linefeed(LF_ACTIVE)

    def _poll_ring(self, now):
        cad = self._ring_cad
        idx = self._ring_idx
        if now - self._ring_t < cad[idx]:
            return
        if self._mod is not None and idx % 2 == 1:
            return    # keep the off period until the FSK burst is out
        self._ring_t = now
        idx = (idx + 1) % len(cad)
        self._ring_idx = idx
        if idx % 2 == 1:
            self.set_linefeed(LF_OHT)
            msg = self._cid_msg
            if msg is not None:
                mod = fsk.FskModulator(self.law)
                mod.load(msg)
                if cad[idx] >= CID_DELAY_MS + mod.duration_ms():
                    self._cid_msg = None
                    self._start_fsk(mod, now + CID_DELAY_MS, "cid")
        else:
            if idx == 0 and self._ring_left:
                self._ring_left -= 1
                if self._ring_left == 0:
                    self._ringing = False
                    self.set_linefeed(LF_ACTIVE)
                    self._emit(EV_RING_DONE)
                    return
            self.write(_REG_LINEFEED, LF_RINGING)
            self.linefeed = LF_RINGING

    def send_vmwi(self, active, now):
        """Visual message-waiting indication: MDMF 0x82 on-hook, without ringing."""
        if self._hstate != _H_ONHOOK or self._ringing:
            raise StateError("%s: VMWI needs an idle on-hook line" % self.name)
        mod = fsk.FskModulator(self.law)
        mod.load(fsk.mdmf_vmwi(active))
        self.set_linefeed(LF_OHT)
        self._start_fsk(mod, now + 100, "vmwi")

    def _start_fsk(self, mod, t0, kind):
        self._mod = mod
        self._fsk_t0 = t0
        self._fsk_sent = 0
        self._fsk_kind = kind

    def _abort_fsk(self):
        self._mod = None

    @property
    def fsk_active(self):
        return self._mod is not None

    def _poll_fsk(self, now):
        if now < self._fsk_t0 or self.pcm is None:
            if self.pcm is None:
                self._mod = None
            return
        due = (now - self._fsk_t0) // 20 + 1 - self._fsk_sent
        if due > MAX_FRAMES_PER_POLL:
            due = MAX_FRAMES_PER_POLL
        mod = self._mod
        buf = self._fbuf
        for _ in range(due):
            more = mod.next_frame(buf)      # overwrites _fbuf
            self.pcm.write_frame(self.pcm_chan, buf)
            self._fsk_sent += 1
            if not more or not mod.active():
                kind = self._fsk_kind
                self._mod = None
                if kind == "vmwi" and self._hstate == _H_ONHOOK:
                    self.set_linefeed(LF_ACTIVE)
                self._emit(EV_CID_SENT, kind)
                return

    # ---- PCM -------------------------------------------------------------------------
    def read_frame(self):
        if self.pcm is None:
            return None
        return self.pcm.read_frame(self.pcm_chan)

    def write_frame(self, frame):
        """Voice toward the phone; dropped (counted) while FSK owns the channel."""
        if self.pcm is None or self._mod is not None:
            self.frames_dropped += 1
            return False
        self.pcm.write_frame(self.pcm_chan, frame)
        return True
