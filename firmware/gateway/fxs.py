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
    transferring  on-hook after a consultation: REFER sent, waiting for the
               outcome (off-hook meanwhile is ignored)

Hook flash (US conventions), by situation:
    talk, one leg                 hold it (re-INVITE sendonly) + dial tone
    dialtone/calling/tone + held  drop the consultation, resume the held call
    talk, consultation answered   three-way conference (resume the held leg)
    conference                    drop the consultation leg, back to two-party
    talk + call waiting           hold the active call, answer the waiting one
    talk, active + held (CW)      swap them
On-hook ends every leg (BYE / CANCEL / 480), except in a consultation:

Transfer on hang-up (US analog convention; RFC 5589 flows), port = A,
held party = B, consultation = C:
    C answered (attended)   REFER to B in the A-B dialog, Refer-To: C's
                            Contact ?Replaces=<A-C dialog, %-escaped>,
                            Referred-By: A's AoR
    C not answered yet      CANCEL A->C, then REFER to B with Refer-To C's
    (semi-attended, blind)  AoR at the call server (sip:DIGITS@server), no
                            Replaces: RFC 3891 forbids C to accept Replaces
                            for an early dialog it did not initiate (481), so
                            Replaces on the early dialog cannot work
    NOTIFY sipfrag 2xx      BYE to B; the A-C dialog is BYEd by C when it is
                            replaced (or by us after TRANSFER_LINGER_MS)
    REFER >= 300, NOTIFY with a final non-2xx, subscription ended without a
    final, or no outcome within ua.REFER_WAIT_MS: "transfer failed" recall:
    C dropped, the phone rings (caller ID of B); off-hook resumes B; no answer
    within RECALL_RING_MS ends B.  Logged as a warning.
In a conference, on-hook transfers the same way (attended: the original
party is REFERred to the consultation with Replaces) unless
`analog conference-hangup drop` is set.  On-hook with a call on hold and no
transfer to make (at dial tone, or after a busy consultation) recalls: the
phone rings with the held party's caller ID, off-hook resumes it.
Transferee (REFER received on one of our legs): a new INVITE to the
Refer-To target through the call server (Replaces and Referred-By copied);
when it is answered the port's media moves to it and the old dialog is BYEd
after REFEREE_BYE_MS unless the transferor BYEd it first (it does on the
NOTIFY 200; this avoids a BYE glare).  Transfer target (an INVITE with
Replaces for one of our confirmed dialogs): answered at once without ringing,
media moved to the new call, the replaced dialog BYEd.

Digits go through the dial plan (dialplan.py); the INVITE goes to the call
server in control (gw.call_server) as sip:DIGITS@server, From the station's
extension and display name, with digest credentials when challenged.
Bounds: MAX_LEGS legs per port (a third call gets 486).

Message waiting (firmware/voice/mwi.py calls set_mwi on a change): the
driver's VMWI (FSK MDMF message-waiting, or the neon lamp) goes out when the
line is idle on-hook; otherwise it is pending and tried again at on-hook and
every VMWI_RETRY_MS.  Off-hook while messages wait, the dial tone starts as
the country's stutter tone for STUTTER_MS, then steady.
"""
from firmware.compat import const, wall_time
from firmware.voice import dialplan as DP
from firmware.media.leg import Leg
from firmware.media.dtmf import InbandPlayer, send_info
from firmware.media import inactivity
from firmware.gateway.agent import PortAgent
from firmware.voice.handover import accept, is_local
from firmware.cdr import sources as cdr
from sip.usage.invite import InviteSession
from sip.errors import SipError
from hal.drivers.si3210 import SlicError

MAX_LEGS = const(2)
RECALL_RING_MS = const(60000)      # failed transfer: ring A back this long
REFEREE_BYE_MS = const(4000)       # transferee: BYE the old dialog if A did not
TRANSFER_LINGER_MS = const(4000)   # transferor: BYE a replaced leg C did not end
VMWI_RETRY_MS = const(5000)        # a pending lamp change: tried again this often
STUTTER_MS = const(2000)           # message-waiting stutter before steady dial tone

IDLE = "idle"
DIALTONE = "dialtone"
CALLING = "calling"
RINGING = "ringing"
TALK = "talk"
CONFERENCE = "conference"
TONE = "tone"
TRANSFERRING = "transferring"


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


def caller_id(number, name):
    """MDMF caller ID fields for the SLIC; an absent number or name is sent
    as "O" (out of area), the name only when the number is there too."""
    cid = {"datetime": cid_datetime(wall_time()), "number": _ascii(number, 20),
           "name": _ascii(name, 15)}
    if not cid["number"]:
        cid["number"] = None
        cid["number_absent"] = "O"
    if not cid["name"]:
        cid["name"] = None
        cid["name_absent"] = "O" if cid["number"] is None else None
    return cid


class FxsAgent(PortAgent):
    kind = "fxs"

    def __init__(self, gw, port, drv):
        PortAgent.__init__(self, gw, port, drv)
        self.station = None
        self.registration = None
        self.legs = []
        self.digits = ""
        self.last_status = None
        self.transfer = None        # (held leg, "attended" | "blind") while transferring
        self.transfers = 0
        self.transfer_failures = 0
        self._mixbuf = (bytearray(160), bytearray(160), bytearray(160))
        self.inband = InbandPlayer(gw.law)     # keys from the far end, as tones
        self._keybuf = bytearray(160)
        self.keys_out = 0
        self.mwi = False            # messages wait (the lamp should be lit)
        self.mwi_pending = False    # the lamp has not been told yet
        self.vmwi_sent = 0
        self._vmwi_timer = None
        self._stutter_timer = None

    # -- message waiting
    def set_mwi(self, waiting):
        self.mwi = bool(waiting)
        self.mwi_pending = True
        self._send_vmwi()

    def _send_vmwi(self):
        if not self.mwi_pending:
            return
        if self.state == IDLE and not getattr(self.drv, "fsk_active", False):
            try:
                self.drv.send_vmwi(self.mwi, self.now())
                self.mwi_pending = False
                self.vmwi_sent += 1
                return
            except (SlicError, OSError):
                pass        # not idle on-hook after all (ringing, off-hook): later
        if self._vmwi_timer is None:
            self._vmwi_timer = self.gw.app.sip.call_later(VMWI_RETRY_MS, self._vmwi_due)

    def _vmwi_due(self):
        self._vmwi_timer = None
        self._send_vmwi()

    def _messages_waiting(self):
        m = getattr(self.gw.app, "mwi", None)
        return m is not None and self.station is not None and m.waiting(self.station.name)

    def _steady_dialtone(self):
        self._stutter_timer = None
        if self.state == DIALTONE and not self.digits:
            self._tone("dial")

    def _stop_stutter(self):
        if self._stutter_timer is not None:
            self._stutter_timer.cancel()
            self._stutter_timer = None

    # -- helpers
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
        if self.state == TRANSFERRING:
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
        self._stop_stutter()
        if self._messages_waiting():
            self._tone("stutter")
            self._stutter_timer = self.gw.app.sip.call_later(STUTTER_MS, self._steady_dialtone)
        else:
            self._tone("dial")
        self._arm_digit_timer()

    def _on_hook(self):
        self._cancel_timer()
        self._stop_stutter()
        self._stop_tone()
        if self._try_transfer():
            return
        held = self._held_leg()
        if held is not None and held.session is not None and held.session.state == "confirmed":
            # a call left on hold (at dial tone, or after a failed consultation):
            # ring the phone back rather than drop the held party
            for l in list(self.legs):
                if l is not held:
                    l.hangup()
                    self._drop(l)
            self.digits = ""
            self.log("on-hook with %s on hold: recall" % held.number)
            self._recall(held)
            return
        for l in list(self.legs):
            self.gw.end_local_partner(l)    # survival mode: a call through the dead peer
            l.hangup()
            self._drop(l)
        self.state = IDLE
        self.digits = ""
        if self.mwi_pending:
            self._send_vmwi()

    def _digit(self, d):
        if self.state != DIALTONE:
            if self.state in (TALK, CONFERENCE):
                self._key_out(d)
            return
        if not self.digits:
            self._stop_stutter()
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
        auth = (st.user_id, st.password) if st.password else None
        sess = gw.place_call(number, leg, leg.offer(), station=st, auth=auth,
                             display=st.display_name)
        if sess is None:
            gw.media.close(rtp)
            self._reorder()
            return
        leg.session = sess
        cdr.gateway_started(self, leg, st.extension, number)   # through the peer: a CDR
        leg.state = "calling"
        self.legs.append(leg)
        gw.kick()
        self.calls_out += 1
        self.state = CALLING
        self.log("calling %s" % number)

    def _drop(self, leg):
        cdr.gateway_closed(self, leg)
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
            cdr.gateway_refused(self.gw, sreq, 503, "Port Not Ready", ("fxs", self.port))
            sreq.respond(503, "Port Not Ready")
            return
        if not (self.state == IDLE and not self.drv.off_hook) and not waiting_ok:
            cdr.gateway_refused(self.gw, sreq, 486, "busy", ("fxs", self.port))
            sreq.respond(486)
            return
        sess = accept(self.gw.ua, sreq, None)
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
        cdr.gateway_started(self, leg, num, st.extension if st is not None else "")
        leg.state = "ringing"
        sess.ring()
        if waiting_ok:
            leg.waiting = True
            self._tone("call_waiting")
            self.log("call waiting from %s" % num)
            return
        try:
            self.drv.ring(self.now(), caller_id=caller_id(num, name))
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
            for l in self.legs:
                if l.recall and l.state != "ended":
                    self._cancel_timer()
                    l.recall = False
                    l.resume()
                    l.media_on = True
                    self.state = TALK
                    self.log("recall answered: back with %s" % l.number)
                    return
            self._start_dialtone()
            return
        self._answer_leg(leg)

    # -- transfer: transferor (this port hangs up in a consultation)
    def _try_transfer(self):
        if self.station is None:
            return False
        live = [l for l in self.legs if l.state != "ended"]
        if self.state == CONFERENCE and self.gw.settings.conference_hangup == "transfer":
            # three-way: the port leaves, the other two stay together
            others = [l for l in live if not l.consult]
            held = others[0] if len(others) == 1 else None
        elif self.state in (TALK, CALLING):
            held = self._held_leg()
        else:
            return False
        if held is None or len(live) != 2:
            return False
        consult = [l for l in live if l.consult and l is not held]
        hs = held.session
        if len(consult) != 1 or hs is None or hs.state != "confirmed" or hs.refer_out is not None:
            return False
        c = consult[0]
        cs = c.session
        srv = self.gw.call_server
        from sip.headers import uri_escape, replaces_for
        referred_by = "sip:%s@%s" % (self.station.extension, srv.domain())
        local = None
        if cs is not None and cs.state == "confirmed" and is_local(cs) and is_local(hs):
            # both calls go through the local call server in process: it
            # joins B and C itself (firmware/callserver/transfer.py)
            refer_to = "sip:%s@%s" % (c.number, srv.domain())
            local = cs
            kind = "attended"
        elif cs is not None and cs.state == "confirmed" and cs.dialog is not None:
            d = cs.dialog
            target = d.remote_target.copy()
            target.headers = []
            refer_to = "%s?Replaces=%s" % (target, uri_escape(replaces_for(d)))
            kind = "attended"
        else:
            refer_to = "sip:%s@%s" % (c.number, srv.domain())
            c.hangup()               # CANCEL: C will be called again by B
            self._drop(c)
            kind = "blind"
        for l in self.legs:
            l.media_on = False
        self.state = TRANSFERRING
        self.transfer = (held, kind)
        self.transfers += 1
        self.log("%s transfer of %s to %s" % (kind, held.number, c.number))
        cb = lambda ev, st, held=held: self._refer_event(held, ev, st)
        if not (hs.refer(refer_to, referred_by, cb, self.now(), replaces=local) if local
                else hs.refer(refer_to, referred_by, cb, self.now())):
            self._refer_event(held, "rejected", 500)
        return True

    def _refer_event(self, held, ev, status):
        if ev == "accepted":
            self.log("transfer accepted (%d)" % status)
            return
        if self.transfer is None or self.transfer[0] is not held:
            return
        self.transfer = None
        if ev == "final" and 200 <= status < 300:
            self.log("transfer complete")
            held.hangup()            # BYE to B: it talks with C now
            self._drop(held)
            if self.legs:
                self._cancel_timer()
                self._timer = self.gw.app.sip.call_later(TRANSFER_LINGER_MS, self._linger_done)
            else:
                self._transfer_over()
            return
        self.transfer_failures += 1
        self.gw.app.log.write("warning", "fxs %d: transfer failed (%s %s): recall with %s" % (
            self.port, ev, status, held.number))
        for l in list(self.legs):
            if l is not held:
                l.hangup()
                self._drop(l)
        if held.state == "ended" or held not in self.legs:
            self._transfer_over()
            return
        self._recall(held)

    def _linger_done(self):
        self._timer = None
        if self.state != TRANSFERRING or self.transfer is not None:
            return
        for l in list(self.legs):
            l.hangup()
            self._drop(l)
        self._transfer_over()

    def _transfer_over(self):
        self._cancel_timer()
        self.state = IDLE
        if self.drv.off_hook:
            self._start_dialtone()

    def _recall(self, held):
        if self.drv.off_hook:
            held.resume()
            held.media_on = True
            self.state = TALK
            return
        num, name = held.number, held.name
        try:
            self.drv.ring(self.now(), caller_id=caller_id(num, name))
        except Exception as e:
            self.log("cannot ring for the recall: %s" % e)
            held.hangup()
            self._drop(held)
            self._transfer_over()
            return
        held.recall = True
        self.state = RINGING
        self._cancel_timer()
        self._timer = self.gw.app.sip.call_later(RECALL_RING_MS, self._recall_timeout)

    def _recall_timeout(self):
        self._timer = None
        if self.state != RINGING:
            return
        try:
            self.drv.stop_ring(self.now())
        except OSError:
            pass
        for l in list(self.legs):
            l.hangup()
            self._drop(l)
        self.state = IDLE
        self.log("recall not answered")

    # -- transfer: transferee (a REFER on one of our legs)
    def refer_in(self, leg, sub):
        if self.station is None or self.gw.call_server is None:
            return 603
        if leg.state != "active" or self.state not in (TALK, CONFERENCE):
            return 603
        if len(self.legs) >= MAX_LEGS:
            return 486
        return lambda: self._transfer_call(leg, sub)

    def _transfer_call(self, old, sub):
        gw = self.gw
        rtp = gw.media.open()
        if rtp is None:
            sub.final(503, self.now())
            return
        nl = Leg(self, rtp, True)
        nl.refer_sub = sub
        nl.replaces_leg = old
        try:
            from sip.uri import parse_uri
            nl.number = parse_uri(sub.target).user_plain
        except SipError:
            nl.number = sub.target
        st = self.station
        srv = gw.call_server
        hs = []
        if sub.replaces:
            hs.append(("Replaces", sub.replaces))
        if sub.referred_by:
            hs.append(("Referred-By", sub.referred_by))
        auth = (st.user_id, st.password) if st.password else None
        self.legs.append(nl)
        nl.state = "calling"
        sess = gw.ua.invite(sub.target, "sip:%s@%s" % (st.extension, srv.domain()),
                            sub.target, srv.dest(), nl.offer(), nl, self.now(),
                            display=st.display_name,
                            auth=auth, headers=hs, contact_user=st.extension,
                            transport=srv.transport)
        if sess is None:
            nl.refer_sub = None
            self._drop(nl)
            sub.final(503, self.now())
            return
        nl.session = sess
        if nl.state == "ended":      # failed at once (transaction table full)
            self._drop(nl)
            return
        sub.on_expire = lambda nl=nl: self._transfer_expired(nl)
        gw.kick()
        self.calls_out += 1
        self.log("transferred: calling %s%s" % (nl.number, " (replaces)" if sub.replaces else ""))

    def _transfer_expired(self, nl):
        # the refer subscription ran out while the target still rings: give up
        nl.refer_sub = None
        nl.hangup()
        self._drop(nl)

    def _referee_bye(self, old):
        if old in self.legs and old.state != "ended":
            self.log("transferor did not release: BYE to %s" % old.number)
            old.hangup()
            self._drop(old)

    # -- transfer: target (an INVITE with Replaces for one of our legs)
    def replace(self, old, sreq):
        gw = self.gw
        sess = InviteSession.uas(gw.ua, sreq, None)
        if sess.remote_sdp is None:
            sess.reject(488, "SDP Offer Required")
            return
        rtp = gw.media.open()
        if rtp is None:
            sess.reject(503, "No Media Resources")
            return
        nl = Leg(self, rtp, False)
        nl.session = sess
        sess.owner = nl
        nl.number, nl.name = sess.remote_identity
        try:
            body = nl.answer_for(sess.remote_sdp)
        except SipError as e:
            sess.reject(getattr(e, "status", 488) or 488)
            nl.close()
            return
        sess.answer(body)
        nl.state = "active"
        nl.connect_remote()
        nl.media_on = old.media_on
        nl.consult = old.consult
        if old in self.legs:
            self.legs[self.legs.index(old)] = nl
        else:
            self.legs.append(nl)
        old.hangup()                 # BYE the replaced dialog
        old.close()
        gw.kick()
        self.log("call with %s replaced by %s" % (old.number, nl.number))

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

    def _idle(self, leg, idle_ms):
        """RTP stopped arriving on a talking leg: end it with the reason."""
        now = self.now()
        w = getattr(leg, "idle", None)
        if w is None:
            w = leg.idle = inactivity.IdleCheck(now)
        if not w.idle(leg.rtp, now, idle_ms, leg.remote_hold):
            return False
        self.log("no RTP from %s for %d s: hanging up" % (leg.number, idle_ms // 1000))
        inactivity.end(leg.session, now)
        leg.state = "ended"
        self.leg_event(leg, "ended", "rtp inactivity")
        return True

    def _key_out(self, d):
        """A key pressed in a call leaves as the station's dtmf-mode says
        (rfc4733 falls back to in-band when the far end offered no events)."""
        mode = self.station.dtmf_mode if self.station is not None else "rfc4733"
        for leg in self.legs:
            if not leg.media_on or leg.rtp is None:
                continue
            if mode == "rfc4733":
                leg.rtp.send_digits(d)
            elif mode == "info":
                send_info(leg.session, d, self.now())
            self.keys_out += 1

    # -- SIP events of our legs
    def leg_event(self, leg, event, value):
        if event == "dtmf":
            if leg.media_on and leg in self.legs:
                self.inband.push(value)
            return
        cdr.gateway_event(self, leg, event, value)
        if event == "progress":
            if self.state == CALLING and leg.outgoing:
                if leg.session.remote_sdp is not None and value == 183:
                    self._stop_tone()
                    leg.connect_remote()
                    leg.media_on = True
                else:
                    self._tone("ringback")
        elif event == "answer":
            old = leg.replaces_leg
            if old is not None and leg in self.legs:
                # transferee: the transfer target answered; talk to it now
                leg.replaces_leg = None
                self._stop_tone()
                old.media_on = False
                leg.connect_remote()
                leg.media_on = True
                if self.state != CONFERENCE:
                    self.state = TALK
                self.log("transfer to %s answered" % leg.number)
                try:
                    self.gw.app.sip.call_later(REFEREE_BYE_MS,
                                               lambda old=old: self._referee_bye(old))
                except Exception:
                    self._referee_bye(old)
                return
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
                if getattr(leg.session, "feature_done", False):
                    self._tone("stutter")   # a feature code was handled: confirmation tone
                else:
                    self._tone("busy" if value in (486, 600) else "congestion")
        elif event == "ended":
            self._drop(leg)
            self._leg_gone(leg, value)

    def _leg_gone(self, leg, reason):
        live = [l for l in self.legs if l.state != "ended"]
        if self.state == TRANSFERRING:
            tr = self.transfer
            if tr is not None and tr[0] is leg:
                # B hung up during the transfer: nothing left to transfer
                self.transfer = None
                for l in live:
                    l.hangup()
                    self._drop(l)
                self._transfer_over()
            elif tr is None and not live:
                self._transfer_over()
            return
        if self.state == RINGING and leg.state != "active":
            self._cancel_timer()
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
                    pending = [l for l in live if l.replaces_leg is not None]
                    self._tone("ringback" if pending else "dial")
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
        idle_ms = inactivity.timeout_ms(self.gw.app)
        if idle_ms:
            for l in talking:
                if self._idle(l, idle_ms):
                    return
        if len(talking) == 1:
            l = talking[0]
            l.rtp.send(frame)
            f = l.rtp.pop()
            keys = l.rtp.take_digits() if l.rtp.digits else None
            if keys:
                self.inband.push(keys)
            if self.inband.fill(self._keybuf):     # a far-end key: its tones, not the audio
                drv.write_frame(self._keybuf)
            elif f is not None:
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
