"""Music or tone on hold (issue 14, feature 8): while a station holds a
call, the held party hears a prompt file or a tone played by the call
server instead of silence.

    set services convergence-services station alice music-on-hold tone
    set services convergence-services station alice music-on-hold moh.wav   # flash prompts/
    set services convergence-services station alice music-on-hold none      # default: plain hold

Per holding station (a SIP phone's re-INVITE with sendonly / inactive /
c=0.0.0.0, or an FXS phone's hook flash, which holds the same way over its
in-process session):
  1. the held party is re-INVITEd with an offer of the call server's own
     RTP session (sendonly);
  2. when it accepts, the holder's re-INVITE is answered (inactive, from the
     same session: nothing the holder sends is played to anyone);
  3. every 20 ms the prompt (G.711 WAV / .ul / .al from the flash's
     prompts/ directory, read 20 ms at a time and looped; firmware/media/
     prompt.py) or the hold tone (HOLD_TONE) goes to the held party;
  4. the holder's resume (a re-INVITE that is not a hold) is relayed to the
     held party as any re-INVITE is, and the hold's RTP is released once the
     held party answered it.  A call that ends on hold releases it too.
A held party that refuses the re-INVITE gets the plain hold (the holder's
offer relayed).  A prompt file that cannot be opened falls back to the tone
(logged); the commit refuses a file that is not a G.711 prompt.

Bounds: MAX_HOLDS held calls with music at once (beyond: plain hold,
counted in `plain_full`); one RTP session, one frame buffer and at most one
open prompt per hold; the tone generator and frame buffer are shared.
`show call-server holds` lists them.
"""
from firmware.compat import const
from firmware.media.leg import Leg, ServerAgent
from sip import sdp as _sdp
from firmware.callserver.config import callserver_view, no_args

NOT_MINE = object()          # offer(): the re-INVITE is the B2BUA's to relay

MAX_HOLDS = const(16)
TICK_MS = const(20)
HOLD_TONE = ((440, 400), (0, 200), (440, 400), (0, 4000))   # (Hz, ms), looped


def of(cs):
    """The call server's hold service (made at the first hold)."""
    h = getattr(cs, "hold", None)
    if h is None:
        h = cs.hold = MusicOnHold(cs)
    return h


class Held:
    def __init__(self, call, holder, held, leg, source):
        self.call = call
        self.holder = holder        # the session that put the call on hold
        self.held = held            # the session that hears the music
        self.leg = leg
        self.source = source        # "tone" or a file name
        self.prompt = None
        self.t = 0                  # ms into HOLD_TONE
        self.state = "offering"     # offering | playing | resuming
        self.since = call._now()


def _holding(sdp):
    for m in sdp.media if sdp is not None else ():
        if m.kind == "audio" and m.port:
            return _sdp.is_hold(m)
    return False


class MusicOnHold:
    def __init__(self, cs):
        self.cs = cs
        self.app = cs.app
        self.holds = []
        self.task = None
        self._buf = bytearray(160)
        self._tone = None
        self._gen = None
        self.counters = {"holds": 0, "plain_full": 0, "refused": 0, "prompt_errors": 0}

    def media(self):
        from firmware.media.rtp import server_media
        return server_media(self.app, self.cs.ua.host)

    def _find(self, call):
        for h in self.holds:
            if h.call is call:
                return h
        return None

    # -- the B2BUA's side (Call.on_offer)
    def offer(self, call, s, sdp):
        """A re-INVITE of a connected call: PENDING when the hold service
        answers it (later, answer_offer), NOT_MINE to relay it as usual."""
        from sip.usage.agent import PENDING
        h = self._find(call)
        if h is not None:
            if h.state != "playing":
                return None                  # 488: our own re-INVITE is still out
            if s is not h.holder:            # the held party re-offers (a refresh)
                try:
                    body = h.leg.answer_for(sdp, "sendonly")
                except Exception:
                    return None
                h.leg.connect_remote()
                return body
            if _holding(sdp):                # the holder holds again (a refresh)
                try:
                    return h.leg.answer_for(sdp, "inactive")
                except Exception:
                    return None
            return self._resume(h, s)
        if not _holding(sdp):
            return NOT_MINE
        st = call.caller if s is call.a else call.callee
        src = getattr(st, "music_on_hold", "none") if st is not None else "none"
        if src == "none":
            return NOT_MINE
        other = call.b if s is call.a else call.a
        if len(self.holds) >= MAX_HOLDS:
            self.counters["plain_full"] += 1
            return NOT_MINE
        mm = self.media()
        rtp = mm.open()
        if rtp is None:
            self.counters["plain_full"] += 1
            return NOT_MINE
        leg = Leg(ServerAgent(self.app, mm), rtp, True)
        leg.session = other
        h = Held(call, s, other, leg, src)
        self.holds.append(h)

        def done(status, h=h):
            self._offered(h, status)

        if not other.reinvite(leg.offer("sendonly"), call._now(), done):
            self._drop(h)
            return NOT_MINE
        return PENDING

    def _offered(self, h, status):
        if h not in self.holds:
            return
        holder = h.holder
        if not 200 <= status < 300 or not h.leg.connect_remote():
            # plain hold: the held party keeps its media; the holder's offer
            # goes on as the B2BUA would have relayed it
            self.counters["refused"] += 1
            self._drop(h)
            from firmware.callserver.b2bua import fix_sdp, _public_of
            body = fix_sdp(holder.remote_body, _public_of(holder.flow))

            def relayed(st, holder=holder, held=h.held):
                if 200 <= st < 300:
                    holder.answer_offer(fix_sdp(held.remote_body, _public_of(held.flow)))
                else:
                    holder.answer_offer(None, st if st >= 300 else 500)

            if not h.held.reinvite(body, h.call._now(), relayed):
                holder.answer_offer(None, 500)
            return
        try:
            answer = h.leg.answer_for(holder.remote_sdp, "inactive")
        except Exception:
            answer = None
        holder.answer_offer(answer, 488)
        h.state = "playing"
        self.counters["holds"] += 1
        self._open(h)
        if self.task is None or self.task.done():
            self.task = self.app.sched.spawn(self._run(), "music-on-hold")

    def _resume(self, h, s):
        """The holder takes the call back: its offer to the held party, as
        the B2BUA relays any re-INVITE; the music stops when it is answered."""
        from sip.usage.agent import PENDING
        h.state = "resuming"

        from firmware.callserver.b2bua import fix_sdp, _public_of
        held = h.held

        def done(status, h=h, s=s, held=held):
            if 200 <= status < 300:
                s.answer_offer(fix_sdp(held.remote_body, _public_of(held.flow)))
            else:
                s.answer_offer(None, status if status >= 300 else 500)
            self._drop(h)

        if not held.reinvite(fix_sdp(s.remote_body, _public_of(s.flow)), h.call._now(), done):
            h.state = "playing"
            return None
        return PENDING

    def release(self, call):
        h = self._find(call)
        if h is not None:
            self._drop(h)

    def _drop(self, h):
        if h in self.holds:
            self.holds.remove(h)
        if h.prompt is not None:
            h.prompt.close()
            h.prompt = None
        h.leg.close()

    # -- playback
    def _open(self, h):
        if h.source == "tone":
            return
        from firmware.callserver.config import prompt_path
        from firmware.media.prompt import open_prompt, PromptError
        try:
            h.prompt = open_prompt(prompt_path(self.app, h.source))
        except PromptError as e:
            self.counters["prompt_errors"] += 1
            self.app.log.write("warning", "music on hold: %s: %s (tone instead)" % (h.source, e))

    async def _run(self):
        sched = self.app.sched
        while self.holds:
            for h in list(self.holds):
                if h.state != "offering":
                    self._tick(h)
            await sched.sleep(TICK_MS)

    def _tick(self, h):
        rtp = h.leg.rtp
        if rtp is None:
            return
        rtp.poll()
        while rtp.pop() is not None:     # whatever the parties send: not played
            pass
        buf = self._buf
        law = self.media().law
        from hal import g711
        if h.prompt is not None:
            if not h.prompt.read_frame(buf):
                h.prompt.rewind()
                h.prompt.read_frame(buf)
            if h.prompt.law != law:
                from firmware.media.rtp import xlat
                x = xlat(h.prompt.law)
                for i in range(160):
                    buf[i] = x[buf[i]]
        else:
            t = h.t
            h.t = (h.t + TICK_MS) % sum(ms for _, ms in HOLD_TONE)
            freq = 0
            for hz, ms in HOLD_TONE:
                if t < ms:
                    freq = hz
                    break
                t -= ms
            if freq:
                if self._gen is None:
                    from hal.dsp import ToneGen
                    self._gen = ToneGen()
                if self._tone != freq:
                    self._tone = freq
                    self._gen.set((freq,), 4000)
                self._gen.fill(buf, g711.encoder(law))
            else:
                s = g711.silence(law)
                for i in range(160):
                    buf[i] = s
        rtp.send(buf)

    # -- console
    def show(self):
        if not self.holds:
            return "Held calls with music: 0 (limit %d)" % MAX_HOLDS
        out = ["Held calls with music: %d (limit %d)" % (len(self.holds), MAX_HOLDS),
               "%-6s %-10s %-10s %-10s %-16s %s" % ("Call", "Holder", "Held", "State", "Source",
                                                   "Seconds")]
        now = self.cs.now()
        for h in self.holds:
            c = h.call
            holder = c.caller_num if h.holder is c.a else c.number
            held = c.number if h.holder is c.a else c.caller_num
            out.append("%-6d %-10s %-10s %-10s %-16s %d" % (
                c.id, holder, held, h.state, h.source, (now - h.since) // 1000))
        return "\n".join(out)


_show_holds = callserver_view(lambda cs: of(cs).show())


def register_commands(app):
    app.commands.register("show call-server holds", _show_holds,
                          "Show the held calls hearing music or tone on hold", args=no_args)
