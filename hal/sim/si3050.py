"""Si3050 + Si3018/19 DAA model plus a virtual PSTN line.

Register side effects: reg 1 = 0x80 resets the registers (reg 2 reads 0x03);
reg 6 = 0 powers the line side and reg 11's high nibble becomes non-zero
ISO_MS later (never, with iso_never_up); reg 5 b5/b6 read 1 while the line
rings; reg 4 b7 latches at each ring start, b0 at each polarity reversal
(writes AND the register, so writing 0 clears); reg 28 is the loop current
while seized; reg 29 the signed line voltage.

Physical behaviour modelled after HARDWARE.md and DAHDI/xpp, not our driver:
- the loop current settles after seizure: 0 for loop_delay_ms, then rising
  to LOOP_MA over loop_rise_ms (a slowly settling line: references ignore
  reg 28 for about 650 ms after seizing);
- a polarity reversal bounces: for bounce_ms the sign read in reg 29
  alternates every BOUNCE_STEP_MS before it settles (DAHDI debounces 64 ms,
  xpp 200 ms); polarity_glitch(ms) reverses for ms and comes back;
- the line voltage drops to 0 with the battery, on-hook as well as off-hook.

The line side of the PCM channel: the line injects frames toward the host
(caller-ID FSK as the country sends it: Bell 202 or V.23 between the first
and second ring, or, in the UK, V.23 before the first ring announced by a
line reversal and the DT-AS; busy/congestion tones, far-end audio) every
20 ms of virtual time, and records what the DAA sends.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hal import fsk, tones, g711
from hal.bus import Ring
from hal.dsp import ToneGen, dtmf_freqs
from hal.sim.bus import History

ISO_MS = const(100)
CID_DELAY_MS = const(500)
PRE_REVERSAL_MS = const(150)   # UK: reversal -> DT-AS
PRE_RING_GAP_MS = const(300)   # UK: end of the FSK -> first ring
MAX_RX = const(256)         # frames recorded from the DAA; drop oldest
ONHOOK_V = const(48)
LOOP_DELAY_MS = const(150)    # default: current 0 this long after seizure ...
LOOP_RISE_MS = const(300)     # ... then rising to LOOP_MA over this long
BOUNCE_MS = const(30)         # default contact bounce of a polarity reversal
BOUNCE_STEP_MS = const(4)
OFFHOOK_V = const(8)
LOOP_MA = const(25)


class VirtualLine:
    """A PSTN line: rings with a cadence and caller ID, supervises the DAA."""

    def __init__(self, model, law="ulaw", country="US"):
        self.model = model
        self.law = law
        self.country = tones.country_code(country)
        self.battery = True
        self.loop_ok = True
        self.polarity = 1
        self._rev_at = None          # time of the last reversal (bouncing for bounce_ms)
        self._bounce_ms = 0
        self._glitch_until = None
        self._ring_t0 = None
        self._ring_cad = ()
        self._ring_count = 0
        self._cid = None
        self._mod = None
        self._pre = False
        self._fsk_t = 0
        self._tone = None
        self._tone_cad = ()
        self._tone_t0 = 0
        self._gen = ToneGen()
        self._buf = bytearray(160)   # overwritten by each generated frame
        self._next_frame = 0
        self.seized_at = None
        self.answered_at = None
        self.rx = Ring(MAX_RX)
        self.seizures = 0
        self._dtmf = []          # (start, end, (f1, f2)) keyed by the far end

    # ---- far end actions ------------------------------------------------------------
    def ring(self, cadence=None, caller_id=None, count=0):
        """Start ringing now; caller_id (number, name) tuple, dict or raw bytes."""
        self._ring_t0 = self.model.t
        self._ring_cad = cadence or tones.ring_cadence(self.country)
        self._ring_count = count
        if isinstance(caller_id, tuple):
            caller_id = {"number": caller_id[0], "name": caller_id[1],
                         "datetime": caller_id[2] if len(caller_id) > 2 else "01011200"}
        if isinstance(caller_id, dict):
            caller_id = fsk.mdmf_call(**caller_id)
        self._cid = caller_id
        self._mod = None
        self._pre = False
        self.answered_at = None
        self._next_frame = self.model.t
        if caller_id is not None and fsk.cid_style(self.country)[1] == "before_ring":
            # ETSI prior to ringing: reversal, DT-AS + FSK, polarity back, ring
            self._ring_t0 = None
            self._pre = True
            self.reverse_polarity()
            self._mod = self._modulator()
            self._mod.load(caller_id)
            self._cid = None
            self._fsk_t = self.model.t + PRE_REVERSAL_MS
            self._next_frame = self._fsk_t

    def _modulator(self):
        std, timing, seizure, marks = fsk.cid_style(self.country)
        return fsk.FskModulator(self.law, standard=std, seizure_bits=seizure, mark_bits=marks,
                                alert=timing == "before_ring")

    def stop_ring(self):
        self._ring_t0 = None

    def ringing_now(self, t):
        if self._ring_t0 is None:
            return False
        cad = self._ring_cad
        total = sum(cad)
        dt = t - self._ring_t0
        if self._ring_count and dt >= total * self._ring_count:
            return False
        dt %= total
        for i in range(len(cad)):
            if dt < cad[i]:
                return i % 2 == 0
            dt -= cad[i]
        return False

    def drop_battery(self):
        self.battery = False

    def restore_battery(self):
        self.battery = True

    def loop_loss(self):
        self.loop_ok = False

    def reverse_polarity(self, bounce_ms=BOUNCE_MS):
        """The exchange reverses the line; the contacts bounce for bounce_ms."""
        self.polarity = -self.polarity
        self._rev_at = self.model.t
        self._bounce_ms = bounce_ms
        self.model.regs[4] |= 0x01

    def polarity_glitch(self, ms=30):
        """A short reversal that comes back (a ring burst, a line hit): not a
        polarity reversal."""
        self._glitch_until = self.model.t + ms
        self.model.regs[4] |= 0x01

    def play_tone(self, name="busy"):
        freqs, cad, level = tones.tone(self.country, name)
        self._gen.set(freqs, 8000 if len(freqs) == 1 else 5000)
        self._tone = name
        self._tone_cad = cad
        self._tone_t0 = self.model.t
        self._next_frame = self.model.t

    def stop_tone(self):
        self._tone = None

    def send_dtmf(self, digits, on_ms=100, off_ms=100):
        """The far end keys digits: in-band DTMF pairs toward the DAA (while
        seized), starting now; returns when the last one ends."""
        t = self.model.t
        self._dtmf = []
        for d in digits:
            self._dtmf.append((t, t + on_ms, dtmf_freqs(d)))
            t += on_ms + off_ms
        self._next_frame = min(self._next_frame, self.model.t)
        return t

    # ---- physical state seen by the DAA -----------------------------------------------
    @property
    def seized(self):
        return bool(self.model.regs[5] & 0x01)

    def sign(self, t):
        s = self.polarity
        if self._glitch_until is not None:
            if t < self._glitch_until:
                s = -s
            else:
                self._glitch_until = None
        if self._rev_at is not None:
            dt = t - self._rev_at
            if dt < self._bounce_ms:
                if (dt // BOUNCE_STEP_MS) % 2:
                    s = -s
            else:
                self._rev_at = None
        return s

    def voltage(self):
        if not self.battery:
            return 0
        v = OFFHOOK_V if self.seized else ONHOOK_V
        return v * self.sign(self.model.t)

    def current(self):
        if self.seized and self.battery and self.loop_ok:
            m = self.model
            dt = m.t - self.seized_at - m.loop_delay_ms
            if dt < 0:
                return 0
            if dt < m.loop_rise_ms:
                return LOOP_MA * dt // m.loop_rise_ms
            return LOOP_MA
        return 0

    def _on_hook_change(self, off, t):
        if off:
            self.seized_at = t
            self.seizures += 1
            if self._ring_t0 is not None:
                self._ring_t0 = None
                self.answered_at = t

    def pcm_in(self, chan, frame):
        self.rx.push(frame)

    # ---- frame generation toward the host ----------------------------------------------
    def _frame(self, pcm, sounding):
        """One frame of the generator's tone, or of silence, toward the DAA."""
        if sounding:
            self._gen.fill(self._buf, g711.encoder(self.law))
        else:
            s = g711.silence(self.law)
            for i in range(160):
                self._buf[i] = s
        pcm.inject(self.model.pcm_chan, self._buf)

    def advance(self, now):
        ring_on = self.ringing_now(now)
        m = self.model
        if ring_on and not m._ring_was:
            m.regs[4] |= 0x80
        if not ring_on and m._ring_was and self._cid is not None and self._mod is None:
            mod = self._modulator()
            mod.load(self._cid)
            self._cid = None
            self._mod = mod
            self._fsk_t = now + CID_DELAY_MS
            self._next_frame = self._fsk_t
        m._ring_was = ring_on
        pcm = m.pcm
        while self._next_frame + 20 <= now:
            t = self._next_frame
            self._next_frame += 20
            if pcm is None:
                if self._pre and self._mod is not None:      # nobody to hear it
                    self._mod = None
                    self._pre = False
                    self.reverse_polarity()
                    self._ring_t0 = t + PRE_RING_GAP_MS
                continue
            while self._dtmf and self._dtmf[0][1] <= t:
                self._dtmf.pop(0)
            if self._mod is not None and t >= self._fsk_t:
                more = self._mod.next_frame(self._buf)
                pcm.inject(m.pcm_chan, self._buf)
                if not more:
                    self._mod = None
                    if self._pre:
                        self._pre = False
                        self.reverse_polarity()
                        self._ring_t0 = t + PRE_RING_GAP_MS
            elif self._dtmf and self.seized:
                start, end, freqs = self._dtmf[0]
                if t >= start:
                    self._gen.set(freqs, 5000)
                self._frame(pcm, t >= start)
            elif self._tone is not None and self.seized:
                self._frame(pcm, tones.cadence_on(self._tone_cad, t - self._tone_t0))
        if self._mod is None and self._tone is None and not self._dtmf and \
                self._next_frame < now - 20:
            self._next_frame = now - now % 20


class Si3050Model:
    def __init__(self, now=None, cid=0, present=True, missing_value=0xFF,
                 iso_never_up=False, pcm=None, pcm_chan=0, law="ulaw", country="US",
                 iso_ms=ISO_MS, loop_delay_ms=LOOP_DELAY_MS, loop_rise_ms=LOOP_RISE_MS):
        self.now = now
        self.t = now() if now else 0
        self.cid = cid
        self.present = present
        self.missing_value = missing_value
        self.iso_never_up = iso_never_up
        self.iso_ms = iso_ms
        self.loop_delay_ms = loop_delay_ms
        self.loop_rise_ms = loop_rise_ms
        self.history = History()
        self._bytes = []             # control/register bytes of a per-byte-CS access
        self.regs = bytearray(64)
        self._reset()
        self._t6 = None
        self._ring_was = False
        self.pcm = pcm
        self.pcm_chan = pcm_chan
        self.line = VirtualLine(self, law, country)
        if pcm is not None:
            pcm.attach(pcm_chan, self.line.pcm_in)

    def _reset(self):
        r = self.regs
        for i in range(len(r)):
            r[i] = 0
        r[2] = 0x03
        r[6] = 0x10
        r[11] = 0x03
        self._t6 = None

    def advance(self, now):
        if now < self.t:
            return
        self.t = now
        if self._t6 is not None and not self.iso_never_up and now - self._t6 >= self.iso_ms:
            self.regs[11] = 0x30 | (self.regs[11] & 0x0F)
            self._t6 = None
        self.line.advance(now)

    def spi_frame(self, frame):
        if not self.present:
            return bytes((self.missing_value,)) * len(frame)
        if len(frame) == 1:
            # CS raised after every byte (DAHDI's framing): collect the three bytes
            self._bytes.append(frame[0])
            if len(self._bytes) < 3:
                return b"\x00"
            out = self.spi_frame(bytes(self._bytes))
            self._bytes = []
            return out[2:]
        self._bytes = []
        if len(frame) != 3 or (frame[0] & 0x1F) != self.cid:
            return b"\xff" * len(frame)
        ctl, reg, val = frame[0], frame[1] & 0x3F, frame[2]
        if ctl & 0xE0 == 0x60:
            v = self._read(reg)
            self.history.add(("r", reg, v))
            return bytes((0, 0, v))
        if ctl & 0xE0 == 0x20:
            self.history.add(("w", reg, val))
            self._write(reg, val)
        return b"\x00\x00\x00"

    def _read(self, reg):
        r = self.regs
        line = self.line
        if reg == 5:
            return (r[5] & 0x9F) | (0x60 if line.ringing_now(self.t) else 0)
        if reg == 28:
            return line.current()
        if reg == 29:
            return line.voltage() & 0xFF
        return r[reg]

    def _write(self, reg, v):
        r = self.regs
        if reg == 1 and v & 0x80:
            self._reset()
            return
        if reg in (2, 11, 28, 29):
            return
        if reg == 4:
            r[4] &= v
            return
        if reg == 5:
            old = r[5] & 1
            r[5] = v & 0x9F
            if (v & 1) != old:
                self.line._on_hook_change(v & 1, self.t)
            return
        r[reg] = v
        if reg == 6 and v == 0:
            self._t6 = self.t
