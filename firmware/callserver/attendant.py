"""The auto attendant: the call server answers a call itself, plays the
greeting, collects digits and transfers the caller.

    aa = Attendant(cs)
    aa.take(call)            the B2BUA hands over a call to the attendant's extension
                             (answered with the attendant's own RTP; 486 when
                             MAX_AA_CALLS are being served)
    aa.transfer_failed(call, status)   the transfer target did not answer
    aa.release(call)         the call ended or was connected: free its media

Per call, every 20 ms (one scheduler task while any call is served): the
greeting (the configured prompt file, firmware/media/prompt.py; else the
shipped aa-greeting.ul made from text at build time, tools/gen-prompts.py;
two beeps when neither can be read) is sent as G.711 RTP; received frames are searched for
DTMF (Goertzel, a key counts after DTMF_ON_FRAMES frames with the same pair
and must be released before it counts again) and RFC 4733 telephone-events
are read from the RTP session.  A key interrupts the greeting.

Digits: "#" ends an entry; a menu key acts at once unless an extension
starts with it; a complete station or hunt group extension (dial-by-extension)
transfers at once when no longer extension starts with it; otherwise the
entry is judged after digit-timeout.  0 without a menu entry goes to the
operator.  No input or an invalid entry replays the greeting up to
max-retries times, then goes to the operator, else the attendant hangs up.
Dial-by-extension reaches stations and hunt groups only (a caller from the
PSTN cannot dial out through the attendant); menu and operator targets are
the administrator's and may be any number.

Transfer: the B2BUA rings the target with the caller's original SDP offer
while the attendant plays ringback; when the target answers, the caller is
re-INVITEd with the target's SDP and the attendant's RTP is released.  When
the target fails, the caller is back at the attendant: the greeting again
(counted as a retry).
"""
from firmware.compat import const
from firmware.media.leg import Leg, ServerAgent
from hal import dsp, g711, tones

MAX_AA_CALLS = const(8)          # callers served at once (486 Busy Here beyond)
TICK_MS = const(20)
DTMF_ON_FRAMES = const(2)        # 40 ms of one DTMF pair make a key press
MAX_ENTRY = const(8)             # digits of one entry (further ones are ignored)
BEEPS = ((660, 200), (0, 150), (660, 200), (0, 400))   # built-in greeting: (Hz, ms)


DEFAULT_GREETING = "aa-greeting.ul"   # shipped prompt set (tools/gen-prompts.py)


def default_prompt(app, name):
    """Path of a prompt of the shipped set: the flash's prompts/ (installed
    with the image), else the source tree's prompts/ (host and simulation
    runs); None when neither has it."""
    import os
    from firmware.callserver.config import prompt_path
    f = globals().get("__file__", "")           # frozen modules have none
    here = f.rsplit("/", 3)[0] if f.count("/") >= 3 else "."
    for p in (prompt_path(app, name), here + "/prompts/" + name):
        try:
            os.stat(p)
            return p
        except OSError:
            pass
    return None


class AaCall:
    def __init__(self, call, leg):
        self.call = call
        self.leg = leg
        self.state = "greeting"      # greeting | collect | transfer
        self.prompt = None
        self.beep = 0                # position in BEEPS (ms) when there is no prompt
        self.digits = ""
        self.deadline = None
        self.tries = 0
        self.tried_operator = False
        self.key = None              # DTMF pair seen in the last frames
        self.key_frames = 0
        self.key_down = False        # the current pair was already counted
        self.ring_t0 = 0


class Attendant:
    def __init__(self, cs):
        self.cs = cs
        self.app = cs.app
        self.calls = []
        self.task = None
        self._buf = bytearray(160)
        self._lin = [0] * 160         # one decoded frame, reused
        self._gen = dsp.ToneGen()
        self._tone = None             # the frequencies the generator holds
        self.counters = {"answered": 0, "busy": 0, "transfers": 0, "menu": 0, "operator": 0,
                         "no_input": 0, "invalid": 0, "transfer_failed": 0, "hung_up": 0}

    # -- media
    def media(self):
        from firmware.media.rtp import server_media
        return server_media(self.app, self.cs.ua.host)

    def settings(self):
        return self.cs.settings.attendant

    # -- the B2BUA's side
    def take(self, call):
        a = call.a
        if len(self.calls) >= MAX_AA_CALLS:
            self.counters["busy"] += 1
            return False
        mm = self.media()
        rtp = mm.open()
        if rtp is None:
            self.counters["busy"] += 1
            return False
        leg = Leg(ServerAgent(self.app, mm), rtp, False)
        leg.session = a
        try:
            body = leg.answer_for(a.remote_sdp)
        except Exception:
            mm.close(rtp)
            return False
        if a.answer(body) is None or not leg.connect_remote():
            mm.close(rtp)
            return False
        c = AaCall(call, leg)
        call.aa = c
        self.calls.append(c)
        self.counters["answered"] += 1
        self._greet(c)
        if self.task is None or self.task.done():
            self.task = self.app.sched.spawn(self._run(), "attendant")
        return True

    def transfer_failed(self, call, status):
        c = call.aa
        if c is None:
            return
        self.counters["transfer_failed"] += 1
        self._retry(c)

    def release(self, call):
        c = call.aa
        if c is None:
            return
        call.aa = None
        if c in self.calls:
            self.calls.remove(c)
        if c.prompt is not None:
            c.prompt.close()
            c.prompt = None
        if c.leg.rtp is not None:
            self.media().close(c.leg.rtp)
            c.leg.rtp = None

    # -- the loop
    async def _run(self):
        sched = self.app.sched
        while self.calls:
            for c in list(self.calls):
                self._tick(c)
            await sched.sleep(TICK_MS)

    def _tick(self, c):
        now = self.cs.now()
        rtp = c.leg.rtp
        rtp.poll()
        law = self.media().law
        dec = g711.decode_table(law)
        f = rtp.pop()
        while f is not None:
            self._detect(c, f, dec)
            f = rtp.pop()
        for d in rtp.take_digits():
            self._digit(c, d)
        if c.call.aa is not c:            # a digit transferred or ended the call
            return
        self._send(c, law)
        if c.state == "collect" and c.deadline is not None and now >= c.deadline:
            self._judge(c, timed_out=True)

    def _send(self, c, law):
        buf = self._buf
        enc = g711.encoder(law)
        if c.state == "greeting":
            if c.prompt is not None:
                if not c.prompt.read_frame(buf):
                    self._collect(c)
                    return self._silence(c, law)
                if c.prompt.law != law:
                    from firmware.media.rtp import xlat
                    x = xlat(c.prompt.law)
                    for i in range(160):
                        buf[i] = x[buf[i]]
            else:
                t = c.beep
                c.beep += TICK_MS
                freq = 0
                for hz, ms in BEEPS:
                    if t < ms:
                        freq = hz
                        break
                    t -= ms
                else:
                    self._collect(c)
                    return self._silence(c, law)
                if freq:
                    self._use_tone((freq,), 6000)
                    self._gen.fill(buf, enc)
                else:
                    return self._silence(c, law)
        elif c.state == "transfer":
            freqs, cad, level = tones.tone(self._country(), "ringback")
            self._use_tone(freqs, 4000)
            if not tones.cadence_on(cad, self.cs.now() - c.ring_t0):
                return self._silence(c, law)
            self._gen.fill(buf, enc)
        else:
            return self._silence(c, law)
        c.leg.rtp.send(buf)

    def _use_tone(self, freqs, amp):
        # one generator for every caller: set it only when the tone changes,
        # so a tone stays continuous across frames
        if self._tone != freqs:
            self._tone = freqs
            self._gen.set(freqs, amp)

    def _silence(self, c, law):
        s = g711.silence(law)
        buf = self._buf
        for i in range(160):
            buf[i] = s
        c.leg.rtp.send(buf)

    def _country(self):
        gs = getattr(self.app, "gateway_settings", None)
        return gs.country if gs is not None and gs.country else "US"

    # -- digits
    def _detect(self, c, frame, dec):
        lin = self._lin
        for i in range(160):
            lin[i] = dec[frame[i]]
        k = dsp.dtmf_digit(lin)
        if k is None:
            c.key = None
            c.key_frames = 0
            c.key_down = False
            return
        if k == c.key:
            c.key_frames += 1
        else:
            c.key, c.key_frames, c.key_down = k, 1, False
        if c.key_frames >= DTMF_ON_FRAMES and not c.key_down:
            c.key_down = True
            self._digit(c, k)

    def _digit(self, c, d):
        if c.state == "transfer":
            return
        if c.state == "greeting":
            self._collect(c)                 # barge-in
        if d == "#":
            return self._judge(c, timed_out=True)
        if len(c.digits) < MAX_ENTRY:
            c.digits += d
        c.deadline = self.cs.now() + self.settings().digit_ms
        self._judge(c, timed_out=False)

    def _judge(self, c, timed_out):
        aa = self.settings()
        d = c.digits
        exts = self._extensions() if aa.by_extension else ()
        longer = False
        for e in exts:
            if len(e) > len(d) and e.startswith(d):
                longer = True
                break
        if not timed_out and longer:
            return                            # wait for more digits
        if d in aa.menu and (timed_out or not longer):
            self.counters["menu"] += 1
            return self._transfer(c, aa.menu[d])
        if d in exts and (timed_out or not longer):
            return self._transfer(c, d)
        if d == "0" and aa.operator and (timed_out or not longer):
            self.counters["operator"] += 1
            return self._transfer(c, aa.operator)
        if not timed_out:
            return
        self.counters["invalid" if d else "no_input"] += 1
        self._retry(c)

    def _extensions(self):
        s = self.cs.settings
        return [st.extension for st in s.stations] + [g.extension for g in s.groups]

    def _retry(self, c):
        aa = self.settings()
        c.tries += 1
        if c.tries <= aa.max_retries:
            return self._greet(c)
        if aa.operator and not c.tried_operator:
            c.tried_operator = True       # if the operator fails too, the attendant hangs up
            self.counters["operator"] += 1
            return self._transfer(c, aa.operator)
        self.counters["hung_up"] += 1
        self.cs.b2b.hang_up_attendant(c.call)

    # -- states
    def _greet(self, c):
        c.state = "greeting"
        c.digits = ""
        c.deadline = None
        c.beep = 0
        aa = self.settings()
        if c.prompt is not None:
            c.prompt.rewind()
            return
        from firmware.media.prompt import open_prompt, PromptError
        if aa.greeting:
            from firmware.callserver.config import prompt_path
            try:
                c.prompt = open_prompt(prompt_path(self.app, aa.greeting))
            except PromptError as e:
                self.app.log.write("warning", "auto attendant: greeting: %s" % e)
            return
        path = default_prompt(self.app, DEFAULT_GREETING)
        if path is not None:
            try:
                c.prompt = open_prompt(path)
            except PromptError as e:       # damaged on flash: the beeps still work
                self.app.log.write("warning", "auto attendant: default greeting: %s" % e)

    def _collect(self, c):
        c.state = "collect"
        c.deadline = self.cs.now() + self.settings().digit_ms

    def _transfer(self, c, number):
        """Hand the caller to the B2BUA; a target that cannot ring comes back
        at once through transfer_failed."""
        c.state = "transfer"
        c.ring_t0 = self.cs.now()
        c.digits = ""
        c.deadline = None
        self.counters["transfers"] += 1
        self.cs.b2b.transfer_from_attendant(c.call, number)

    def statistics(self):
        out = [("callers now", "%d (max %d)" % (len(self.calls), MAX_AA_CALLS))]
        for k in sorted(self.counters):
            out.append((k.replace("_", " "), self.counters[k]))
        return out
