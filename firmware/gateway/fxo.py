"""An FXO port as a trunk: PSTN calls in and out through the call server.

Inbound: ring -> caller ID (FSK between the first and second ring; the
INVITE leaves when it is decoded, or at the second ring without it) ->
INVITE sip:DID@server (From "name" <sip:number@domain>, anonymous without
caller ID); 2xx -> seize the line (that answers it) and bridge PCM<->RTP;
ringing stops before an answer -> CANCEL; a final error -> the line keeps
ringing unanswered (state "rejected" until the rings stop).

Outbound (GatewayService.incoming routes an INVITE whose user part starts
with the trunk's prefix here): busy port -> 486; seize, wait dial-delay ms,
dial replace-prefix + the rest as DTMF in PCM; when dialling is done:
  answer-supervision dial-complete: 200 OK at once;
  answer-supervision polarity-reversal: 183 with SDP (early media: the
      caller hears the line's ringback) and 200 OK on the reversal.
CANCEL before the answer releases the line.

Supervision while off-hook (driver's disconnect event: battery, loop,
polarity, busy, congestion) -> BYE (or 480 before the answer) and release;
BYE from SIP -> release.  The reason and its detection time are kept in
last_disconnect = (reason, ms from the far-end event the driver saw... ),
reported by `show ports` as the last event.

States: idle, ringing (inbound, waiting for caller ID), offering (INVITE
out), rejected, seized (outbound, before dialling), dialling, alerting
(outbound, waiting for polarity answer), talk.
"""
from firmware.compat import const
from firmware.media.leg import Leg
from firmware.media import inactivity
from firmware.gateway.agent import PortAgent
from firmware.voice.handover import accept
from firmware.cdr import sources as cdr
from sip.errors import SipError

IDLE = "idle"
RINGING = "ringing"
OFFERING = "offering"
REJECTED = "rejected"
SEIZED = "seized"
DIALLING = "dialling"
ALERTING = "alerting"
TALK = "talk"

MAX_NUMBER = const(20)
MAX_KEYS = const(16)      # far-end DTMF keys waiting for the DAA's dialler (beyond: dropped)


class FxoAgent(PortAgent):
    kind = "fxo"

    def __init__(self, gw, port, drv):
        PortAgent.__init__(self, gw, port, drv)
        self.trunk = None
        self.leg = None
        self.cid = None
        self.last_disconnect = None   # (reason, ms)
        self.dial_string = None
        self.keys = ""              # far-end DTMF keys for the line (RFC 4733 / INFO)
        self.keys_dialled = 0
        self.keys_dropped = 0

    def set_trunk(self, trunk):
        self.trunk = trunk
        drv = self.drv
        if trunk is not None:
            drv.supervision = trunk.supervision
            drv.answer_polarity = trunk.answer_polarity

    def status_text(self):
        return self.state

    def _release(self):
        self._cancel_timer()
        try:
            if self.drv.off_hook:
                self.drv.release(self.now())
        except OSError:
            pass
        if self.leg is not None:
            cdr.gateway_closed(self, self.leg)
            self.leg.close()
            self.leg = None
        self.state = IDLE
        self.dial_string = None

    # -- hardware events
    def on_event(self, event, value, now):
        if event == "ring":
            self._ring(value)
        elif event == "caller_id":
            self.cid = value if isinstance(value, dict) else None
            if self.cid is not None:
                self.last_cid = (self.cid.get("number"), self.cid.get("name"))
            if self.state == RINGING:
                self._offer()
        elif event == "ring_end":
            if self.state in (RINGING, OFFERING, REJECTED):
                if self.leg is not None and self.leg.session is not None:
                    self.leg.session.cancel(self.now())
                self._release()
                self.log("caller gave up")
        elif event == "dial_done":
            if self.state == DIALLING:
                self._dialled()
        elif event == "answer":
            if self.state == ALERTING:
                self._answered()
        elif event == "disconnect":
            self._far_disconnect(value, now)

    def _ring(self, n):
        if self.trunk is None:
            return
        if self.state == IDLE:
            self.state = RINGING
            self.cid = None
            self.calls_in += 1
            if n and n >= 2:
                self._offer()
        elif self.state == RINGING and n and n >= 2:
            self._offer()

    def _offer(self):
        t = self.trunk
        gw = self.gw
        target = t.did_target
        if target == "auto-attendant":
            target = gw.settings.attendant_ext   # the call server's attendant (a commit check)
        if not target:
            # no DID target: the attendant, else the operator, never a line left ringing
            target = gw.settings.attendant_ext or gw.settings.operator
        if not target:
            self.log("no DID target for the call; ignoring it")
            self.state = REJECTED
            return
        rtp = gw.media.open()
        if rtp is None:
            self.state = REJECTED
            return
        leg = Leg(self, rtp, True)
        cid = self.cid or {}
        number = cid.get("number")
        name = cid.get("name")
        if number:
            number = "".join(c for c in number if c in "0123456789*#+")[:MAX_NUMBER] or None
        auth = (t.user_id, t.password) if t.user_id and t.password else None
        sess = gw.place_call(target, leg, leg.offer(), trunk=t, cid=(number, name), auth=auth,
                             display=name)
        if sess is None:
            gw.media.close(rtp)
            self.state = REJECTED
            return
        leg.session = sess
        leg.number = number
        leg.name = name
        cdr.gateway_started(self, leg, number or "anonymous", target)
        self.leg = leg
        self.state = OFFERING
        self.log("inbound call from %s %s to %s" % (number, name or "", target))

    # -- outbound
    def incoming(self, sreq, digits):
        if self.state != IDLE:
            cdr.gateway_refused(self.gw, sreq, 486, "line busy", ("fxo", self.port))
            sreq.respond(486)
            return
        if not self.gw.port_ready("fxo", self.port):
            cdr.gateway_refused(self.gw, sreq, 503, "Port Not Ready", ("fxo", self.port))
            sreq.respond(503, "Port Not Ready")
            return
        sess = accept(self.gw.ua, sreq, None)
        if sess.remote_sdp is None:
            sess.reject(488, "SDP Offer Required")
            return
        rtp = self.gw.media.open()
        if rtp is None:
            sess.reject(503, "No Media Resources")
            return
        leg = Leg(self, rtp, False)
        leg.session = sess
        sess.owner = leg
        leg.number = digits
        try:
            leg.body = leg.answer_for(sess.remote_sdp)
        except SipError as e:
            sess.reject(getattr(e, "status", 488) or 488)
            leg.close()
            return
        self.leg = leg
        cdr.gateway_started(self, leg, sess.remote_identity[0] or "anonymous", digits)
        self.calls_out += 1
        self.dial_string = digits
        try:
            self.drv.seize(self.now())
        except OSError:
            sess.reject(503, "Line Error")
            self._release()
            return
        self.state = SEIZED
        self.log("outbound call to %s" % digits)
        delay = self.trunk.dial_delay_ms if self.trunk is not None else 1000
        self._timer = self.gw.app.sip.call_later(delay, self._start_dial)

    def _start_dial(self):
        self._timer = None
        if self.state != SEIZED:
            return
        try:
            self.drv.dial(self.dial_string, self.now())
        except Exception as e:      # DialError / StateError / bus errors
            self.log("cannot dial: %s" % e)
            if self.leg is not None:
                self.leg.session.reject(484 if "longer" in str(e) else 500)
            self._release()
            return
        self.state = DIALLING

    def _dialled(self):
        leg = self.leg
        if leg is None:
            self._release()
            return
        if self.trunk is not None and self.trunk.answer_polarity:
            leg.session.ring(leg.body)
            leg.connect_remote()
            leg.media_on = True
            self.state = ALERTING
            return
        self._answered()

    def _answered(self):
        leg = self.leg
        if leg is None:
            return
        leg.session.answer(leg.body)
        leg.connect_remote()
        leg.media_on = True
        leg.state = "active"
        self.state = TALK
        self.log("answered")

    def _far_disconnect(self, reason, now):
        self.last_disconnect = (reason, now)
        if self.state == IDLE:
            return
        self.log("far end disconnected (%s)" % reason)
        leg = self.leg
        if leg is not None and leg.session is not None:
            leg.session.hangup(self.now())
        self._release()

    def _keys_in(self, keys):
        """DTMF from the far end goes to the line through the DAA's dialler."""
        for k in keys:
            if len(self.keys) >= MAX_KEYS:
                self.keys_dropped += 1
            else:
                self.keys += k
        self._dial_keys()

    def _dial_keys(self):
        if not self.keys or self.state not in (TALK, ALERTING) or self.drv.dialling:
            return
        keys, self.keys = self.keys, ""
        try:
            self.drv.dial(keys, self.now())
            self.keys_dialled += len(keys)
        except Exception as e:       # DialError / StateError: the line went
            self.keys_dropped += len(keys)
            self.log("cannot dial DTMF %s: %s" % (keys, e))

    # -- SIP events
    def leg_event(self, leg, event, value):
        cdr.gateway_event(self, leg, event, value)
        if leg is not self.leg:
            return
        if event == "dtmf":
            self._keys_in(value)
            return
        if event == "answer":
            if self.state == OFFERING:
                try:
                    self.drv.seize(self.now())
                except OSError:
                    leg.session.bye(self.now())
                    self._release()
                    return
                leg.connect_remote()
                leg.media_on = True
                leg.state = "active"
                self.state = TALK
                self.log("answered by the station")
        elif event == "failed":
            leg.close()
            self.leg = None
            if self.state == OFFERING:
                self.state = REJECTED
        elif event == "ended":
            self._release()

    # -- media, every 20 ms
    def media_tick(self):
        leg = self.leg
        if leg is None or leg.rtp is None:
            return
        r = leg.rtp
        r.poll()
        if r.digits:
            self._keys_in(r.take_digits())
        elif self.keys:
            self._dial_keys()
        drv = self.drv
        if not leg.media_on:
            while r.pop() is not None:
                pass
            return
        idle_ms = inactivity.timeout_ms(self.gw.app)
        if idle_ms:
            now = self.now()
            w = getattr(leg, "idle", None)
            if w is None:
                w = leg.idle = inactivity.IdleCheck(now)
            if w.idle(r, now, idle_ms, leg.remote_hold):
                self.log("no RTP for %d s: releasing the line" % (idle_ms // 1000))
                inactivity.end(leg.session, now)
                self._release()
                return
        f = drv.read_frame()
        if f is None:
            f = self._silence_frame()
        r.send(f)
        g = r.pop()
        if g is not None and not drv.dialling:
            drv.write_frame(g)
