"""Silicon Labs Si3210 / Si3215 ProSLIC (FXS) driver.

Register facts: HARDWARE.md; bring-up order follows DAHDI wctdm.c
wctdm_init_proslic: wctdm_proslic_insane (reg 0 revision >= 2, reg 1 b7 =
Si3215, reg 8 == 0x02, reg 64 == 0, reg 11 == 0x33, then reg 30 = 0), reg 14 =
0x10, the indirect table for the detected product (Si3215: DAHDI's altaddr
column) read back, reg 8 = 0 (audio loopback off), reg 108 = 0xEB, on the
Si3210 reg 67 = 0x07 and reg 66 = 1 (Q7 safety), filters 35-39 held at 0x8000,
wctdm_powerup_proslic (reg 92, reg 14 = 0, VBAT reg 82 >= 0xC0 within 500 ms,
reg 71, reg 93 = 0x19), calibration (97 = 0x1F, 96 = 0x5F, 2 s), DC-DC
calibration (93 = 0x99, reg 107 within 2..0x0D else 0x08), filters restored
and verified, PCM mode and timeslots, interrupts cleared, reg 73 = 0x04, the
ring generator (wctdm_init_ring_generator_mode), linefeed forward active.

Where the two chips differ the driver branches on the detected product:
indirect addresses (Si3210 numbering in this file, translated for the
Si3215), tone-oscillator rate (8 / 16 kHz), the DTMF decoder (Si3210 only;
the Si3215 decodes in software from the PCM, hal.dtmf) and the Q7 safety
registers (Si3210).

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
from hal.bus import Ring

# direct registers
_REG_ID = const(0)
_REG_PCM_MODE = const(1)
_REG_PCM_TXS_LO = const(2)
_REG_PCM_TXS_HI = const(3)
_REG_PCM_RXS_LO = const(4)
_REG_PCM_RXS_HI = const(5)
_REG_LOOPBACK = const(8)
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
_REG_RING_CTL = const(34)
_REG_RING_ON_LO = const(48)
_REG_RING_ON_HI = const(49)
_REG_RING_OFF_LO = const(50)
_REG_RING_OFF_HI = const(51)
_REG_LINEFEED = const(64)
_REG_BATFEED = const(66)
_REG_AUTO = const(67)
_REG_LOOP_STATUS = const(68)
_REG_ILIM = const(71)
_REG_VCM = const(73)
_REG_VBATH = const(74)
_REG_VBAT = const(82)
_REG_DCDC_PWM = const(92)
_REG_DCDC = const(93)
_REG_CAL1 = const(96)
_REG_CAL2 = const(97)
_REG_DCDC_CAL_RESULT = const(107)
_REG_ENHANCE = const(108)

# indirect registers, Si3210 addresses (translated for the Si3215 by si3215_addr)
_IR_OSC1 = const(13)
_IR_OSC2 = const(16)
_IR_RCO = const(20)
_IR_RNGX = const(21)
_IR_RNGY = const(22)
_IR_RPTP = const(29)
_IR_FILTERS = const(35)        # 35-39: loop-closure / ring-trip filters, held during calibration
_IR_SCRATCH = const(97)
_FILTER_HOLD = const(0x8000)
_N_FILTERS = const(5)

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
_DAISY = const(0x80)           # reg 0 b7: daisy-chain mode
_MIN_REVISION = const(2)       # DAHDI: "ProSLIC 3210 version %d is too old"
_ENHANCE_VALUE = const(0xEB)   # reg 108, DAHDI "Revision C optimization"
_AUTO_SAFE = const(0x07)       # reg 67: automatic battery switching off (Q7 safety)
_BATFEED_SAFE = const(0x01)    # reg 66: Q7 off
_VCM_VALUE = const(0x04)       # reg 73, DAHDI
_VBATH_RING = const(0x32)      # reg 74 for normal ringing (DAHDI default)
_VBATH_NEON = const(0x3F)      # reg 74 for neon message waiting (94.5 V)
_RING_NORMAL = const(0x00)     # reg 34
_RING_NEON = const(0x19)       # reg 34: trapezoid ringing for neon lamps
_DCDC_CAL_MIN = const(0x02)
_DCDC_CAL_MAX = const(0x0D)
_DCDC_CAL_DEFAULT = const(0x08)

MAX_INDIRECT_POLLS = const(6000)  # reads of reg 31 before IndirectTimeout (DAHDI wait_access MAX)
MAX_EVENTS = const(16)            # pending events; full -> drop oldest, count
RX_FRAMES = const(4)              # frames (80 ms) buffered for read_frame on soft-DTMF ports; drop oldest
VBAT_TIMEOUT_MS = const(500)      # DAHDI: VBAT >= 0xC0 within HZ/2
DCDC_TIMEOUT_MS = const(500)
CAL_TIMEOUT_MS = const(2000)
CID_DELAY_MS = const(500)         # first ring end -> FSK start (GR-30 >= 500 ms)
PRE_REVERSAL_MS = const(150)      # line reversal -> DT-AS, caller ID before ringing (SIN 227: >= 100)
PRE_RING_GAP_MS = const(250)      # end of that FSK -> first ring (SIN 227: >= 200 ms)
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

# DAHDI wctdm.c indirect_regs[]: (Si3210 address, value).  The Si3215 takes
# the same values at DAHDI's altaddr (si3215_addr); 0-12 (DTMF), 23-25 (pulse
# metering) and 42 do not exist on it.
INDIRECT_DEFAULTS = (
    (0, 0x55C2), (1, 0x51E6), (2, 0x4B85), (3, 0x4937), (4, 0x3333), (5, 0x0202),
    (6, 0x0202), (7, 0x0198), (8, 0x0198), (9, 0x0611), (10, 0x0202), (11, 0x00E5),
    (12, 0x0A1C), (13, 0x7B30), (14, 0x0063), (15, 0x0000), (16, 0x7870),
    (17, 0x007D), (18, 0x0000), (19, 0x0000), (20, 0x7EF0), (21, 0x0160),
    (22, 0x0000), (23, 0x2000), (24, 0x2000), (25, 0x0000), (26, 0x2000),
    (27, 0x4000), (28, 0x1000), (29, 0x3600), (30, 0x1000), (31, 0x0200),
    (32, 0x07C0), (33, 0x2600), (34, 0x1B80), (35, 0x8000), (36, 0x0320),
    (37, 0x008C), (38, 0x0100), (39, 0x0010), (40, 0x0C00), (41, 0x0C00),
    (42, 0x1000), (43, 0x1000),
)
# DAHDI wctdm_set_ring_generator_mode(neon): RNGY pulse width, RNGX 91.5 Vpk, RCO, RPTP
NEON_RING = (0x03E8, 0x7BEF, 0x009F, 0x4600)
NORMAL_RPTP = const(0x3600)
# DAHDI wctdm_init_ring_generator_mode: neon trapezoid timers, regs 48-51
RING_TIMERS = (0xE0, 0x01, 0xF0, 0x05)


def si3215_addr(addr):
    """Si3215 indirect address of Si3210 indirect register addr, or None when the
    Si3215 has no such register (DAHDI altaddr; Silicon Labs: 13..40 -> 0..27,
    41 -> 64, 43 -> 66; DAHDI writes nothing for 23-25, pulse metering)."""
    if 23 <= addr <= 25:
        return None
    if 13 <= addr <= 40:
        return addr - 13
    if addr == 41:
        return 64
    if addr == 43:
        return 66
    return None


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


class IndirectVerifyError(SlicError):
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
_I_CAL = const(2)
_I_DCDC = const(3)
_I_READY = const(4)


class Si3210:
    SPI_CS_PER_BYTE = True

    def __init__(self, spi, pcm=None, pcm_chan=0, timeslot=None, country="US",
                 law="ulaw", name="fxs", chip="Si3210/Si3215", hook_debounce_ms=20, flash_min_ms=100,
                 flash_max_ms=800, pulse_interdigit_ms=300,
                 vbat_timeout_ms=VBAT_TIMEOUT_MS, cal_timeout_ms=CAL_TIMEOUT_MS, chain=None,
                 chain_group=None, dtmf="auto", vmwi="fsk", dcdc_pwm=0xFF, dcdc_engage=0x19,
                 loop_current_ma=23, indirect_polls=MAX_INDIRECT_POLLS):
        self.spi = spi
        # daisy-chained modules share a chip select: each access starts with
        # the channel-select byte 1 << chain (HARDWARE.md, SPI framing), which
        # the chips understand only once daisy-chain mode (reg 0 b7) is on.
        # chain_group: a dict shared by the modules of one chain ("daisy": on)
        self.chain = chain
        self.chain_group = chain_group if chain_group is not None else {}
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
        if dtmf not in ("auto", "chip", "soft"):
            raise ValueError("dtmf must be auto, chip or soft")
        if vmwi not in ("fsk", "neon"):
            raise ValueError("vmwi must be fsk or neon")
        self.dtmf_mode = dtmf
        self.vmwi_mode = vmwi
        # board settings (DAHDI defaults; the low bits of 92/93 are board-specific)
        self.dcdc_pwm = dcdc_pwm
        self.dcdc_engage = dcdc_engage
        lim = (loop_current_ma - 20) // 3
        self.ilim = lim if 0 <= lim <= 7 else 0      # DAHDI: out of range -> 20 mA
        self.indirect_polls = indirect_polls
        self._tx = bytearray(2 if chain is None else 3)
        self._rx = bytearray(len(self._tx))
        self.product = None
        self.revision = None
        self.osc_rate = 8000
        self.soft_dtmf = False
        self.dcdc_cal_fixed = None    # reg 107 value replaced by 0x08, if it was out of range
        self._istate = _I_IDLE
        self._it0 = 0
        self._filters = [0] * _N_FILTERS   # filter values saved while held at 0x8000
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
        self._pre = False             # caller ID before the first ring in progress
        self._pre_done = None
        self._neon = False            # message-waiting lamp wanted
        self._neon_gen = False        # ring generator in neon mode
        # FSK transmit; _fbuf is overwritten by every frame rendered
        self._mod = None
        self._fbuf = bytearray(160)
        self._fsk_t0 = 0
        self._fsk_sent = 0
        self._fsk_kind = None
        self.frames_dropped = 0
        # software DTMF (ports whose chip has no decoder)
        self._det = None
        self._rxq = Ring(RX_FRAMES)

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

    def enable_daisy_chain(self):
        """Broadcast reg 0 = 0x80 (no select byte: every chip on the chip select
        reads it) so that the chips take select bytes; once per chain."""
        if self.chain is None or self.chain_group.get("daisy"):
            return
        buf = bytearray((_REG_ID, _DAISY))
        self.spi.write_readinto(buf, bytearray(2))
        self.chain_group["daisy"] = True

    def _wait_indirect(self):
        for _ in range(self.indirect_polls):
            if self.read(_REG_IA_STATUS) == 0:
                return
        raise IndirectTimeout("%s: indirect access busy (reg 31) after %d polls"
                              % (self.name, self.indirect_polls))

    def write_indirect(self, addr, value):
        """Indirect register at the chip's own address addr."""
        self._wait_indirect()
        self.write(_REG_IDA_LO, value & 0xFF)
        self.write(_REG_IDA_HI, (value >> 8) & 0xFF)
        self.write(_REG_IAA, addr)

    def read_indirect(self, addr):
        self._wait_indirect()
        self.write(_REG_IAA, addr)
        self._wait_indirect()
        return self.read(_REG_IDA_LO) | (self.read(_REG_IDA_HI) << 8)

    def ind_addr(self, addr):
        """Chip address of Si3210 indirect register addr on the detected product
        (None: the Si3215 has no such register)."""
        if self.product == "Si3215":
            return si3215_addr(addr)
        return addr

    def set_indirect(self, addr, value):
        """Write Si3210-numbered indirect register addr; skipped where absent."""
        a = self.ind_addr(addr)
        if a is not None:
            self.write_indirect(a, value)

    def get_indirect(self, addr):
        a = self.ind_addr(addr)
        return None if a is None else self.read_indirect(a)

    # ---- bring-up ----------------------------------------------------------------
    def detect(self):
        """Read reg 0 and reg 1; raise NotDetected.  Returns 'Si3210' or 'Si3215'."""
        r0 = self.read(_REG_ID)
        rev = r0 & 0x0F
        if rev == 0 or rev == 0x0F:
            raise NotDetected("%s: %s not detected (reg 0 = 0x%02x)" % (self.name, self.chip, r0))
        if rev < _MIN_REVISION:
            raise NotDetected("%s: ProSLIC revision %d is too old (reg 0 = 0x%02x)"
                              % (self.name, rev, r0))
        self.revision = rev
        self.product = "Si3215" if self.read(_REG_PCM_MODE) & 0x80 else "Si3210"
        self.osc_rate = tones.OSC_RATE[self.product]
        if self.dtmf_mode == "auto":
            self.soft_dtmf = self.product == "Si3215"
        else:
            self.soft_dtmf = self.dtmf_mode == "soft"
        return self.product

    def sanity(self):
        """DAHDI wctdm_proslic_insane: reg 8 == 0x02, reg 64 == 0, reg 11 == 0x33."""
        v8 = self.read(_REG_LOOPBACK)
        v64 = self.read(_REG_LINEFEED)
        v11 = self.read(_REG_SANITY11)
        if v8 != 0x02 or v64 != 0 or v11 != 0x33:
            raise InsaneError("%s: ProSLIC insane (reg 8 = 0x%02x, want 0x02; reg 64 = 0x%02x, "
                              "want 0; reg 11 = 0x%02x, want 0x33)" % (self.name, v8, v64, v11))
        self.write(_REG_IAA, 0)

    def indirect_table(self):
        """((chip address, value), ...) of the reference table for this product."""
        out = []
        for addr, val in INDIRECT_DEFAULTS:
            a = self.ind_addr(addr)
            if a is not None:
                out.append((a, val))
        return tuple(out)

    def verify_indirect(self):
        for a, val in self.indirect_table():
            got = self.read_indirect(a)
            if got != val:
                raise IndirectVerifyError("%s: indirect %d reads 0x%04x, wrote 0x%04x"
                                          % (self.name, a, got, val))

    def start_init(self, now):
        self.enable_daisy_chain()
        self.detect()
        self.sanity()
        self.write(_REG_POWERDOWN, 0x10)          # DC-DC off while loading
        for a, val in self.indirect_table():
            self.write_indirect(a, val)
        self.verify_indirect()
        self.set_indirect(_IR_SCRATCH, 0)         # Si3210 only (DAHDI: scratch pad)
        self.write(_REG_LOOPBACK, 0)              # audio loopback off
        self.write(_REG_ENHANCE, _ENHANCE_VALUE)
        if self.product == "Si3210":
            self.write(_REG_AUTO, _AUTO_SAFE)     # before any power: Q7 safety
            self.write(_REG_BATFEED, _BATFEED_SAFE)
        for i in range(_N_FILTERS):               # hold the filters during calibration
            self._filters[i] = self.get_indirect(_IR_FILTERS + i)
            self.set_indirect(_IR_FILTERS + i, _FILTER_HOLD)
        self.write(_REG_DCDC_PWM, self.dcdc_pwm)
        self.write(_REG_POWERDOWN, 0x00)          # power up the DC-DC converter
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
                self.write(_REG_ILIM, self.ilim)
                self.write(_REG_DCDC, self.dcdc_engage)
                self.write(_REG_CAL2, _CAL2_START)
                self.write(_REG_CAL1, _CAL1_START)
                self._istate = _I_CAL
                self._it0 = now
            elif dt > self.vbat_timeout_ms:
                self._istate = _I_IDLE
                raise PowerUpError("%s: VBAT did not ramp (reg 82 = 0x%02x after %d ms)"
                                   % (self.name, v, dt))
        elif st == _I_CAL:
            v = self.read(_REG_CAL1)
            if v == 0:
                self.write(_REG_DCDC, _DCDC_CAL)
                self._istate = _I_DCDC
                self._it0 = now
            elif dt > self.cal_timeout_ms:
                self._istate = _I_IDLE
                raise CalibrationError("%s: calibration timeout (reg 96 = 0x%02x after %d ms)"
                                       % (self.name, v, dt))
        elif st == _I_DCDC:
            if not self.read(_REG_DCDC) & 0x80:
                r107 = self.read(_REG_DCDC_CAL_RESULT)
                if r107 < _DCDC_CAL_MIN or r107 > _DCDC_CAL_MAX:
                    self.dcdc_cal_fixed = r107
                    self.write(_REG_DCDC_CAL_RESULT, _DCDC_CAL_DEFAULT)
                self._finish_init()
                return True
            if dt > DCDC_TIMEOUT_MS:
                self._istate = _I_IDLE
                raise PowerUpError("%s: DC-DC calibration (reg 93) did not finish" % self.name)
        else:
            raise StateError("%s: poll_init before start_init" % self.name)
        return False

    def _finish_init(self):
        for i in range(_N_FILTERS):               # calibration done: restore the filters
            v = self._filters[i]
            if v is not None:
                self.set_indirect(_IR_FILTERS + i, v)
        self.verify_indirect()
        self.write(_REG_PCM_MODE, _PCM_ALAW if self.law == "alaw" else _PCM_ULAW)
        start = self.timeslot * 8
        self.write(_REG_PCM_TXS_LO, start & 0xFF)
        self.write(_REG_PCM_TXS_HI, (start >> 8) & 0x03)
        self.write(_REG_PCM_RXS_LO, start & 0xFF)
        self.write(_REG_PCM_RXS_HI, (start >> 8) & 0x03)
        self.clear_interrupts()
        self.write(_REG_VCM, _VCM_VALUE)
        self.write(_REG_RING_CTL, _RING_NORMAL)
        self.write(_REG_RING_ON_LO, RING_TIMERS[0])
        self.write(_REG_RING_ON_HI, RING_TIMERS[1])
        self.write(_REG_RING_OFF_LO, RING_TIMERS[2])
        self.write(_REG_RING_OFF_HI, RING_TIMERS[3])
        self._ring_generator(False)
        self.write(_REG_IRQEN1, 0x00)
        self.write(_REG_IRQEN2, 0x03)           # ring trip + loop status
        self.write(_REG_IRQEN3, 0x00 if self.soft_dtmf else 0x01)   # DTMF (Si3210)
        if self.soft_dtmf:
            from hal.dtmf import DtmfDetector   # only chips without a decoder need it
            self._det = DtmfDetector(self.law)
        self.set_linefeed(LF_ACTIVE)
        self._istate = _I_READY

    def _ring_generator(self, neon):
        """DAHDI wctdm_set_ring_generator_mode: normal ringing at the country's
        frequency, or the neon-lamp trapezoid."""
        if neon:
            rngy, rngx, rco, rptp = NEON_RING
            self.set_indirect(_IR_RNGY, rngy)
            self.set_indirect(_IR_RNGX, rngx)
            self.set_indirect(_IR_RCO, rco)
            self.write(_REG_RING_CTL, _RING_NEON)
            self.write(_REG_VBATH, _VBATH_NEON)
            self.set_indirect(_IR_RPTP, rptp)
        else:
            rco, rngx = tones.ring_preset(self.country)
            self.write(_REG_RING_CTL, _RING_NORMAL)
            self.set_indirect(_IR_RNGY, 0)
            self.set_indirect(_IR_RPTP, NORMAL_RPTP)
            self.write(_REG_VBATH, _VBATH_RING)
            self.set_indirect(_IR_RCO, rco)
            self.set_indirect(_IR_RNGX, rngx)
        self._neon_gen = neon

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
        if self.soft_dtmf:
            self._pump()
        elif self._hstate != _H_ONHOOK:
            irq3 = self.read(_REG_IRQ3)
            if irq3 & 0x01:
                v = self.read(_REG_DTMF)
                self.write(_REG_IRQ3, 0x01)
                if v & 0x10:
                    # key down; the decoder interrupts on the release as well
                    self._emit(EV_DIGIT, DTMF_CODES[v & 0x0F])
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
                elif self.linefeed == LF_RINGING:
                    self.set_linefeed(LF_ACTIVE)       # neon lamp: the line carries the call
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
                self._rxq = Ring(RX_FRAMES)
                if self._det is not None:
                    self._det.reset()
                if self._neon:
                    self._apply_idle()
                self._emit(EV_HOOK_ON)

    # ---- tones ---------------------------------------------------------------------
    def _program_osc(self, base, freq, level):
        # coefficients for the oscillator rate of this product (8 / 16 kHz)
        coef, x, y = tones.osc_coefficients(freq, level, self.osc_rate)
        self.set_indirect(base, coef)
        self.set_indirect(base + 1, x)
        self.set_indirect(base + 2, y)

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
        name_absent) or raw message bytes, sent as the country does it
        (fsk.cid_style): Bell 202 or V.23 in the first off period long enough
        for it, CID_DELAY_MS after the ring burst; or (GB, ETSI prior to
        ringing) before the first ring: line reversal, DT-AS, V.23 FSK,
        polarity back, then the ringing PRE_RING_GAP_MS later.
        count: number of ring bursts (0 = until stop_ring / answer).
        """
        if self._hstate != _H_ONHOOK:
            raise StateError("%s: cannot ring an off-hook phone" % self.name)
        self.stop_tone()
        if caller_id is not None and not isinstance(caller_id, (bytes, bytearray)):
            caller_id = fsk.mdmf_call(**caller_id)
        self._cid_msg = caller_id
        if self._neon_gen:
            self.set_linefeed(LF_ACTIVE)
            self._ring_generator(False)
        self._ring_cad = cadence or tones.ring_cadence(self.country)
        self._ring_idx = 0
        self._ring_t = now
        self._ring_left = count
        self._ringing = True
        self._pre = False
        if caller_id is not None and fsk.cid_style(self.country)[1] == "before_ring":
            mod = self._cid_modulator()
            mod.load(caller_id)
            self._cid_msg = None
            self._pre = True
            self._pre_done = None
            self.write(_REG_LINEFEED, LF_REV_OHT)      # the reversal announces the message
            self.linefeed = LF_REV_OHT
            self._start_fsk(mod, now + PRE_REVERSAL_MS, "cid")
            return
        self.write(_REG_LINEFEED, LF_RINGING)
        self.linefeed = LF_RINGING

    def _cid_modulator(self):
        std, timing, seizure, marks = fsk.cid_style(self.country)
        return fsk.FskModulator(self.law, standard=std, seizure_bits=seizure, mark_bits=marks,
                                alert=timing == "before_ring")

    def stop_ring(self, now=None):
        if not self._ringing:
            return
        self._ringing = False
        self._abort_fsk()
        self.set_linefeed(LF_ACTIVE)
        self._apply_idle()

    @property
    def ringing(self):
        return self._ringing

    def _ring_trip(self):
        self._ringing = False
        self._abort_fsk()
        self.set_linefeed(LF_ACTIVE)

    def _poll_ring(self, now):
        if self._pre:
            # caller ID before the first ring: ring once it is out and the gap passed
            if self._mod is not None or self._pre_done is None \
                    or now - self._pre_done < PRE_RING_GAP_MS:
                return
            self._pre = False
            self._ring_t = now
            self._ring_idx = 0
            self.write(_REG_LINEFEED, LF_RINGING)
            self.linefeed = LF_RINGING
            return
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
                mod = self._cid_modulator()
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
                    self._apply_idle()
                    self._emit(EV_RING_DONE)
                    return
            self.write(_REG_LINEFEED, LF_RINGING)
            self.linefeed = LF_RINGING

    def send_vmwi(self, active, now):
        """Message-waiting indication.  vmwi='fsk': MDMF 0x82 on-hook, without
        ringing (needs an idle on-hook line).  vmwi='neon': the lamp of a neon
        phone, lit by the ring generator in its high-voltage trapezoid mode
        (DAHDI) whenever the line is idle, until send_vmwi(False)."""
        if self.vmwi_mode == "neon":
            self._neon = bool(active)
            self._apply_idle()
            return
        if self._hstate != _H_ONHOOK or self._ringing:
            raise StateError("%s: VMWI needs an idle on-hook line" % self.name)
        std, _, seizure, marks = fsk.cid_style(self.country)
        mod = fsk.FskModulator(self.law, standard=std, seizure_bits=seizure, mark_bits=marks)
        mod.load(fsk.mdmf_vmwi(active))
        self.set_linefeed(LF_OHT)
        self._start_fsk(mod, now + 100, "vmwi")

    def _apply_idle(self):
        """On an idle on-hook line: the neon lamp when wanted, else forward active."""
        if self._hstate != _H_ONHOOK or self._ringing or self._mod is not None:
            return
        if self._neon:
            if not self._neon_gen:
                self.set_linefeed(LF_ACTIVE)       # DAHDI: forward active before the change
                self._ring_generator(True)
            self.write(_REG_LINEFEED, LF_RINGING)
            self.linefeed = LF_RINGING
        elif self._neon_gen:
            self.set_linefeed(LF_ACTIVE)
            self._ring_generator(False)

    @property
    def lamp(self):
        return self._neon_gen and self.linefeed == LF_RINGING

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
                if self._pre:
                    self._pre_done = now
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
                if kind == "cid" and self._pre:
                    self._pre_done = now
                    self.set_linefeed(LF_OHT)          # polarity back before ringing
                if kind == "vmwi" and self._hstate == _H_ONHOOK:
                    self.set_linefeed(LF_ACTIVE)
                self._emit(EV_CID_SENT, kind)
                return

    # ---- PCM -------------------------------------------------------------------------
    def _pump(self):
        """Soft-DTMF ports: move the phone's frames into the read queue through
        the DTMF receiver (digits become events).  Nobody listens on-hook."""
        pcm = self.pcm
        det = self._det
        if pcm is None or det is None:
            return
        for _ in range(MAX_FRAMES_PER_POLL):
            f = pcm.read_frame(self.pcm_chan)
            if f is None:
                break
            if self._hstate == _H_ONHOOK:
                continue
            self._rxq.push(f)
            for d in det.feed(f):
                self._emit(EV_DIGIT, d)

    def read_frame(self):
        if self.pcm is None:
            return None
        if self.soft_dtmf:
            self._pump()
            return self._rxq.pop()
        return self.pcm.read_frame(self.pcm_chan)

    def write_frame(self, frame):
        """Voice toward the phone; dropped (counted) while FSK owns the channel."""
        if self.pcm is None or self._mod is not None:
            self.frames_dropped += 1
            return False
        self.pcm.write_frame(self.pcm_chan, frame)
        return True
