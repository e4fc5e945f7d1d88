"""Si3210/Si3215 ProSLIC model plus a virtual phone on its line.

Register side effects: reg 14 = 0 starts the VBAT (reg 82) ramp; reg 93 b7
(DC-DC calibration) clears after DCDC_MS; reg 96 clears CAL_MS after a write
unless never_calibrates; writing reg 30 performs the indirect access (a write
if reg 29 was written since the last one, else a read into 28/29) and makes
reg 31 read busy for indirect_busy_reads reads (stuck with indirect_stuck);
regs 18-20 clear the bits written as 1; reg 68 b0 is the phone's hook; reg 24
and reg 20 b0 follow the phone's DTMF key; reg 1 b7 reads 1 on an Si3215.

Fault hooks: present=False (reads missing_value: 0xFF or 0x00),
never_calibrates, vbat_fails, indirect_stuck, and the bus's fail_next/broken.
The chip wants CS to rise after every byte: a multi-byte CS frame is counted
in protocol_errors and answered with 0xFF.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hal import fsk, tones
from hal.bus import Ring
from hal.sim.bus import History

CAL_MS = const(200)
DCDC_MS = const(20)
VBAT_RAMP_MS = const(100)
VBAT_TARGET = const(0xC8)
MAX_LOG = const(32)          # phone ring log / caller-id list bounds; drop oldest
MAX_AUDIO = const(64)        # frames the phone keeps while off-hook; drop oldest
MAX_SCHEDULE = const(256)    # pending phone actions; extra actions are refused

_DTMF_CODE = {"D": 0, "0": 10, "*": 11, "#": 12, "A": 13, "B": 14, "C": 15}


def dtmf_code(d):
    if d in _DTMF_CODE:
        return _DTMF_CODE[d]
    return int(d)


class VirtualPhone:
    """The analog phone on an FXS port.  All actions start at the model's current
    time and play out as the model advances."""

    def __init__(self, model, law="ulaw"):
        self.model = model
        self.hook = 0
        self.key = None
        self._sched = []
        self.ring_log = []          # (start_ms, end_ms or None)
        self.caller_ids = []
        self._demod = fsk.FskDemodulator(law)
        self.audio = Ring(MAX_AUDIO)
        self.fsk_outside_oht = 0

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
        t = self.model.t
        for d in digits:
            self._at(t, "key", dtmf_code(d))
            self._at(t + on_ms, "key", None)
            t += on_ms + off_ms
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

    # what the phone perceives
    @property
    def ringing(self):
        return self.model.regs[64] == 4

    @property
    def reversed(self):
        return self.model.regs[64] in (5, 6)

    def tone(self):
        """Frequencies the oscillators currently put on the line (sorted tuple)."""
        m = self.model
        out = []
        for n, ctl in ((0, 32), (3, 33)):
            if m.regs[ctl] & 0x04:
                out.append(tones.osc_frequency(m.ind[n]))
        return tuple(sorted(out))

    def _linefeed(self, old, new, now):
        if new == 4 and old != 4:
            if len(self.ring_log) >= MAX_LOG:
                self.ring_log.pop(0)
            self.ring_log.append([now, None])
        elif old == 4 and new != 4 and self.ring_log:
            self.ring_log[-1][1] = now

    def pcm_in(self, chan, frame):
        if self.hook:
            self.audio.push(frame)
            return
        if self.model.regs[64] not in (2, 6):
            self.fsk_outside_oht += 1
        for msg in self._demod.feed(frame):
            if len(self.caller_ids) >= MAX_LOG:
                self.caller_ids.pop(0)
            self.caller_ids.append(msg)

    def speak(self, frame):
        m = self.model
        if m.pcm is not None:
            m.pcm.inject(m.pcm_chan, frame)


class Si3210Model:
    def __init__(self, now=None, product="Si3215", present=True, missing_value=0xFF,
                 never_calibrates=False, vbat_fails=False, indirect_busy_reads=1,
                 indirect_stuck=False, pcm=None, pcm_chan=0, law="ulaw",
                 cal_ms=CAL_MS, vbat_ramp_ms=VBAT_RAMP_MS):
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
        self.history = History()
        self.protocol_errors = 0
        self.regs = bytearray(128)
        self.ind = [0] * 256
        self._pending = None
        self._busy = 0
        self._ida_written = False
        self._t14 = None
        self._t93 = None
        self._t96 = None
        self.regs[0] = 0x05 | (0x10 if product == "Si3215" else 0)
        self.regs[8] = 0x02
        self.regs[11] = 0x33
        self.regs[14] = 0x10
        self.phone = VirtualPhone(self, law)
        self.pcm = pcm
        self.pcm_chan = pcm_chan
        if pcm is not None:
            pcm.attach(pcm_chan, self.phone.pcm_in)

    # time
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
            self._t93 = None
        if self._t96 is not None and not self.never_calibrates and now - self._t96 >= self.cal_ms:
            r[96] = 0
            r[97] = 0
            self._t96 = None

    def _key(self, code):
        r = self.regs
        if code is None:
            r[24] &= 0x0F
        else:
            r[24] = 0x10 | code
            r[20] |= 0x01

    # SPI
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
        if reg == 64:
            old = r[64]
            r[64] = v & 0x07
            self.phone._linefeed(old, v & 0x07, self.t)
            return
        if reg in (0, 8, 11, 31, 68, 82):
            return          # read-only in the model
        r[reg] = v
        if reg == 14:
            self._t14 = self.t if v == 0 else None
            if v:
                r[82] = 0
        elif reg == 93 and v & 0x80:
            self._t93 = self.t
        elif reg == 96 and v:
            self._t96 = self.t
        elif reg == 29:
            self._ida_written = True
        elif reg == 30:
            if self._ida_written:
                val = r[28] | (r[29] << 8)
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
    """Several ProSLIC models on one chip select: every access is the
    channel-select byte (exactly one bit: 1 << position) and then the chip's
    own two bytes, sent to that model.  A select byte naming no chip, or
    several, is a protocol error (answered 0xFF until the access ends)."""

    def __init__(self):
        self.models = []
        self._target = None        # model index, -1 for a bad select, None: expecting one
        self._left = 0
        self.protocol_errors = 0
        self.selects = {}          # select byte -> accesses that began with it

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

    def spi_frame(self, frame):
        if len(frame) != 1:
            self.protocol_errors += 1
            self._target = None
            return b"\xff" * len(frame)
        b = frame[0]
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
