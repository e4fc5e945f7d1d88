"""An FXS port as a working telephone: the station's SIP user agent.

States (self.state; shown in `show ports`):
    idle       on-hook, nothing going on
    dialtone   off-hook, dial tone; collecting digits (first digit stops the tone)
    calling    INVITE sent (ringback on 180/183)
    ringing    an incoming call rings the phone (caller ID in the first silence)
    talk       in a call (one active leg; maybe one held / one waiting)
    conference three-way: both legs mixed locally (µ-law decode/sum/encode)
    tone       busy (486/600) or reorder (other failures, far end hung up,
               invalid number); waits for on-hook

Hook flash (US conventions), by situation:
    talk, one leg                 hold it (re-INVITE sendonly) + dial tone
    dialtone/calling/tone + held  drop the consultation, resume the held call
    talk, consultation answered   three-way conference (resume the held leg)
    conference                    drop the consultation leg, back to two-party
    talk + call waiting           hold the active call, answer the waiting one
    talk, active + held (CW)      swap them
On-hook ends every leg (BYE / CANCEL / 480).  Transfer (REFER) is not done
yet: hanging up in a consultation or a conference drops both calls.

Digits go through the dial plan (dialplan.py); the INVITE goes to the call
server in control (gw.call_server) as sip:DIGITS@server, From the station's
extension and display name, with digest credentials when challenged.
Bounds: MAX_LEGS legs per port (a third call gets 486).
"""
from firmware.compat import const, wall_time
from firmware.gateway import dialplan as DP
from firmware.gateway.leg import Leg
from firmware.gateway.ua import InviteSession
from sip.errors import SipError

MAX_LEGS = const(2)

IDLE = "idle"
DIALTONE = "dialtone"
CALLING = "calling"
RINGING = "ringing"
TALK = "talk"
CONFERENCE = "conference"
TONE = "tone"


def cid_datetime(epoch):
    """'MMDDHHMM' (UTC) from epoch seconds, without the time module."""
    days, rem = divmod(int(epoch), 86400)
    hh, rem = divmod(rem, 3600)
    mm = rem // 60
    # civil from days (H. Hinnant)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return "%02d%02d%02d%02d" % (m, d, hh, mm)


def _ascii(text, n):
    if not text:
        return None
    out = "".join(c for c in text if 32 <= ord(c) < 127)
    return out[:n] or None


class FxsAgent:
    def __init__(self, gw, port, drv):
        self.gw = gw
        self.port = port
        self.drv = drv
        self.station = None
        self.registration = None
        self.state = IDLE
        self.legs = []
        self.digits = ""
        self._timer = None
        self.last_cid = None        # (number, name) of the last incoming call
        self.last_status = None
        self.calls_in = 0
        self.calls_out = 0
        self._silence = bytearray(160)
        self._mixbuf = (bytearray(160), bytearray(160), bytearray(160))
        self._sil_byte = 0xFF

    # -- helpers
    def now(self):
        return self.gw.app.clock.now()

    def log(self, msg):
        self.gw.app.log.info("fxs %d: %s" % (self.port, msg))

    def set_station(self, station):
        self.station = station

    def _tone(self, name):
        try:
            self.drv.play_tone(name, self.now())
        except (KeyError, OSError):
            pass

    def _stop_tone(self):
        try:
            self.drv.stop_tone()
        except OSError:
            pass

    def _cancel_timer(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_digit_timer(self):
        self._cancel_timer()
        ms = self.gw.plan.timeout_ms(self.digits)
        self._timer = self.gw.app.sip.call_later(ms, self._digit_timeout)

    def _legs_other(self, leg):
        return [l for l in self.legs if l is not leg]

    def _held_leg(self):
        for l in self.legs:
            if l.held and l.state != "ended":
                return l
        return None

    def status_text(self):
        s = self.state
        n = len([l for l in self.legs if l.state != "ended"])
        if n > 1:
            s += " (%d calls)" % n
        return s

    # -- hardware events
    def on_event(self, event, value, now):
        if event == "hook_off":
            self._off_hook()
        elif event == "hook_on":
            self._on_hook()
        elif event in ("digit", "pulse_digit"):
            self._digit(value)
        elif event == "flash":
            self._flash()

    def _off_hook(self):
        if self.state == RINGING:
            self._answer_ringing()
            return
        if self.state != IDLE:
            return
        if self.station is None:
            self.state = TONE
            self._tone("congestion")
            return
        self._start_dialtone()

    def _start_dialtone(self):
        self.state = DIALTONE
        self.digits = ""
        self._tone("dial")
        self._arm_digit_timer()

    def _on_hook(self):
        self._cancel_timer()
        self._stop_tone()
        for l in list(self.legs):
            l.hangup()
            self._drop(l)
        self.state = IDLE
        self.digits = ""

    def _digit(self, d):
        if self.state != DIALTONE:
            return          # digits in a call: no RFC 4733 relay yet (ignored)
        if not self.digits:
            self._stop_tone()
        plan = self.gw.plan
        if d == "#" and self.digits:
            number = plan.on_hash(self.digits)
            self._dial(number)
            return
        self.digits += d
        c = plan.classify(self.digits)
        if c == DP.COMPLETE:
            self._dial(self.digits)
        elif c == DP.INVALID:
            self._dial(None)
        else:
            self._arm_digit_timer()

    def _digit_timeout(self):
        self._timer = None
        if self.state != DIALTONE:
            return
        self._dial(self.gw.plan.on_timeout(self.digits))

    def _reorder(self, status=None):
        self.state = TONE
        self.last_status = status
        self._tone("congestion")

    def _dial(self, number):
        self._cancel_timer()
        self._stop_tone()
        if number is None:
            self.log("invalid number %r" % self.digits)
            self._reorder()
            return
        if len(self.legs) >= MAX_LEGS:
            self._reorder()
            return
        gw = self.gw
        rtp = gw.media.open()
        if rtp is None:
            self._reorder()
            return
        leg = Leg(self, rtp, True)
        leg.number = number
        leg.consult = self._held_leg() is not None
        st = self.station
        srv = gw.call_server
        auth = (st.user_id, st.password) if st.password else None
        sess = gw.ua.invite("sip:%s@%s" % (number, srv.hostport()),
                            "sip:%s@%s" % (st.extension, srv.domain()),
                            "sip:%s@%s" % (number, srv.domain()), srv.dest(), leg.offer(), leg,
                            display=st.display_name, auth=auth, contact_user=st.extension)
        if sess is None:
            gw.media.close(rtp)
            self._reorder()
            return
        leg.session = sess
        leg.state = "calling"
        self.legs.append(leg)
        gw.kick()
        self.calls_out += 1
        self.state = CALLING
        self.log("calling %s" % number)

    def _drop(self, leg):
        leg.close()
        if leg in self.legs:
            self.legs.remove(leg)

    # -- incoming calls (from GatewayService)
    def incoming(self, sreq):
        st = self.station
        live = [l for l in self.legs if l.state != "ended"]
        waiting_ok = (self.state == TALK and len(live) == 1 and not live[0].held
                      and st is not None and st.call_waiting)
        ready = self.gw.port_ready("fxs", self.port)
        if not ready:
            sreq.respond(503, "Port Not Ready")
            return
        if not (self.state == IDLE and not self.drv.off_hook) and not waiting_ok:
            sreq.respond(486)
            return
        sess = InviteSession.uas(self.gw.ua, sreq, None)
        rtp = self.gw.media.open()
        if rtp is None:
            sess.reject(503, "No Media Resources")
            return
        leg = Leg(self, rtp, False)
        leg.session = sess
        sess.owner = leg
        num, name = sess.remote_identity
        leg.number, leg.name = num, name
        self.last_cid = (num, name)
        self.calls_in += 1
        if sess.remote_sdp is None:
            sess.reject(488, "SDP Offer Required")
            leg.close()
            return
        self.legs.append(leg)
        leg.state = "ringing"
        sess.ring()
        if waiting_ok:
            leg.waiting = True
            self._tone("call_waiting")
            self.log("call waiting from %s" % num)
            return
        cid = {"datetime": cid_datetime(wall_time()),
               "number": _ascii(num, 20), "name": _ascii(name, 15)}
        if not cid["number"]:
            cid["number"] = None
            cid["number_absent"] = "O"
        if not cid["name"]:
            cid["name"] = None
            cid["name_absent"] = "O" if cid["number"] is None else None
        try:
            self.drv.ring(self.now(), caller_id=cid)
        except Exception as e:      # StateError (went off-hook meanwhile), bus errors
            self.log("cannot ring: %s" % e)
            sess.reject(486)
            self._drop(leg)
            return
        self.state = RINGING
        self.log("ringing: %s %s" % (num, name or ""))

    def _answer_ringing(self):
        leg = None
        for l in self.legs:
            if l.state == "ringing":
                leg = l
        try:
            self.drv.stop_ring(self.now())
        except OSError:
            pass
        if leg is None:
            self._start_dialtone()
            return
        self._answer_leg(leg)

    def _answer_leg(self, leg):
        sess = leg.session
        try:
            body = leg.answer_for(sess.remote_sdp)
        except SipError as e:
            sess.reject(getattr(e, "status", 488) or 488)
            self._drop(leg)
            self._reorder(488)
            return
        sess.answer(body)
        leg.waiting = False
        leg.state = "active"
        leg.connect_remote()
        leg.media_on = True
        self.state = TALK

    # -- hook flash
    def _flash(self):
        live = [l for l in self.legs if l.state != "ended"]
        held = self._held_leg()
        st = self.state
        if st == TALK:
            waiting = [l for l in live if l.waiting]
            active = [l for l in live if l.media_on]
            if waiting:
                self._stop_tone()
                for l in active:
                    l.hold()
                self._answer_leg(waiting[0])
                return
            if held is not None and not active:
                self._stop_tone()
                held.resume()
                return
            if held is not None and active:
                cur = active[0]
                if cur.consult:
                    # three-way: bring the held party back and mix
                    held.resume()
                    self.state = CONFERENCE
                    self.log("conference")
                    return
                cur.hold()
                held.resume()
                return
            if len(active) == 1:
                active[0].hold()
                self._start_dialtone()
                return
            return
        if st == CONFERENCE:
            consult = [l for l in live if l.consult]
            for l in consult:
                l.hangup()
                self._drop(l)
            self.state = TALK
            return
        if held is not None and st in (DIALTONE, CALLING, TONE):
            self._cancel_timer()
            self._stop_tone()
            for l in live:
                if l is not held:
                    l.hangup()
                    self._drop(l)
            held.resume()
            self.state = TALK
            return

    # -- SIP events of our legs
    def leg_event(self, leg, event, value):
        if event == "progress":
            if self.state == CALLING and leg.outgoing:
                if leg.session.remote_sdp is not None and value == 183:
                    self._stop_tone()
                    leg.connect_remote()
                    leg.media_on = True
                else:
                    self._tone("ringback")
        elif event == "answer":
            if self.state in (CALLING, TONE, DIALTONE) and leg in self.legs:
                self._stop_tone()
                leg.connect_remote()
                leg.media_on = True
                self.state = TALK
                self.log("answered by %s" % leg.number)
        elif event == "failed":
            self.last_status = value
            self._drop(leg)
            if self.state == CALLING:
                self.state = TONE
                self._tone("busy" if value in (486, 600) else "congestion")
        elif event == "ended":
            self._drop(leg)
            self._leg_gone(leg, value)

    def _leg_gone(self, leg, reason):
        live = [l for l in self.legs if l.state != "ended"]
        if self.state == RINGING and leg.state != "active":
            try:
                self.drv.stop_ring(self.now())
            except OSError:
                pass
            self.state = IDLE
            return
        if leg.waiting:
            if not [l for l in live if l.waiting]:
                self._stop_tone()
            return
        if self.state == CONFERENCE:
            self.state = TALK
            for l in live:
                l.consult = False
                l.media_on = True
            return
        if self.state in (TALK, CALLING):
            if live:
                # the other call is on hold: stay in talk, the user flashes to get it back
                if not [l for l in live if l.media_on]:
                    self.state = TALK
                    self._tone("dial")
                return
            if self.drv.off_hook:
                self._reorder()
            else:
                self.state = IDLE

    # -- media, every 20 ms
    def media_tick(self):
        legs = self.legs
        if not legs:
            return
        drv = self.drv
        frame = None
        try:
            frame = drv.read_frame()
        except OSError:
            frame = None
        if frame is None:
            frame = self._silence_frame()
        talking = []
        for l in legs:
            r = l.rtp
            if r is None:
                continue
            r.poll()
            if l.media_on:
                talking.append(l)
            else:
                while r.pop() is not None:      # held / ringing: discard
                    pass
        if len(talking) == 1:
            l = talking[0]
            l.rtp.send(frame)
            f = l.rtp.pop()
            if f is not None:
                drv.write_frame(f)
        elif len(talking) >= 2:
            a, b = talking[0], talking[1]
            fa = a.rtp.pop()
            fb = b.rtp.pop()
            mix = self.gw.mixer
            m1, m2, m3 = self._mixbuf
            a.rtp.send(mix.mix(frame, fb, m1))
            b.rtp.send(mix.mix(frame, fa, m2))
            if fa is not None or fb is not None:
                drv.write_frame(mix.mix(fa, fb, m3))

    def _silence_frame(self):
        s = self._silence
        if s[0] != self.gw.silence:
            for i in range(160):
                s[i] = self.gw.silence
        return s
