"""INVITE sessions, sans-I/O (RFC 3261 §13-§15, RFC 3891 as the replaced side).

    s = agent.invite(ruri, from_uri, to_uri, dest, sdp_body, owner, now,
                     display=None, auth=(username, password) or None, headers=())
    s = InviteSession.uas(agent, sreq, owner)   for a new INVITE a module took
    s.ring(sdp=None)       UAS: 180 (or 183 with sdp: early media)
    s.answer(sdp)          UAS: 200 with SDP
    s.reject(status)       UAS: a final error
    s.cancel(now)          UAC: CANCEL (deferred until a provisional arrived)
    s.bye(now)             either side, confirmed: BYE
    s.hangup(now)          whichever of cancel / reject(480) / bye fits the state
    s.reinvite(sdp, now, on_done=None)   confirmed: re-INVITE with a new offer
    s.answer_offer(body, status=488)     the re-INVITE the owner left PENDING
    s.send_ack(sdp, now)   UAC with delay_ack (delayed offer): the held ACK
    s.refer(refer_to, referred_by, on_event, now)   transferor (sip/usage/refer.py)
    s.state in (CALLING, EARLY, CONFIRMED, TERMINATED)
    s.remote_sdp (sip.sdp.Session or None, parsed on first use)
    s.remote_identity -> (number, name)

Forked early dialogs are kept per session; the first 2xx wins and a later
one is ACKed and ended with BYE.  A 401/407 is answered with digest when the
session has credentials (MAX_AUTH_TRIES).
"""
from sip.dialog import Dialog, DialogError, create_cancel
from sip.digest import DigestClient
from sip.errors import SipError
from sip.transaction import TransactionError
from sip.sdp import parse_sdp, RemoteSdp
from sip.usage.agent import (callback as _cb, clone as _clone, ignore as _ignore,
                             dialog_dest, dialog_transport, MAX_AUTH_TRIES, PENDING,
                             CALLING, EARLY, CONFIRMED, TERMINATED, _SDP, _ALLOW)


class Hangup:
    """hangup(now) for any session with state, is_uac, bye, cancel and reject:
    whichever of them ends it in its state."""

    def hangup(self, now):
        """End the session whatever its state."""
        if self.state == TERMINATED:
            return
        if self.state == CONFIRMED:
            self.bye(now)
        elif self.is_uac:
            self.cancel(now)
        else:
            self.reject(480)


class InviteSession(RemoteSdp, Hangup):
    usage = "invite"

    def __init__(self, ua, owner, is_uac):
        self.ua = ua
        self.owner = owner
        self.is_uac = is_uac
        self.state = CALLING
        self.dialog = None
        self.dialogs = []         # every dialog of this session (forked early ones too)
        self.invite = None        # UAC: the INVITE as last sent
        self.txn = None
        self.dest = None
        self.auth = None
        self.auth_tries = 0
        self.sreq = None          # UAS: the pending INVITE
        self.request = None       # UAS: the INVITE received (dropped once ACKed)
        self._identity = None     # remote_identity, kept when the request goes
        self.local_sdp = None
        self.call_id = None
        self.local_tag = None
        self.provisional = False
        self.cancel_pending = False
        self.acked = False
        self.end_reason = None
        self.final_status = None
        self._reinvite = None     # our pending re-INVITE transaction
        self.refer_in = None      # ReferSubscription: a REFER we serve in this dialog
        self.refer_out = None     # ReferClient: our REFER in this dialog
        self.user = None          # free slot for the owner
        self.flow = None          # (host, port) requests in its dialogs go to (NAT), else None
        self.flow_transport = "UDP"   # "TCP": the flow is the phone's TCP connection
        self.delay_ack = False    # UAC with no offer: hold the 2xx ACK for send_ack(answer)
        self._held_ack = None     # (dialog, transaction) of that held ACK
        self.transport = "UDP"    # UAC: how the INVITE (and its CANCEL) went
        self.remote_body = None   # the far end's last SDP as received (bytes)
        self.offer_sreq = None    # an in-dialog re-INVITE the owner answers later

    def __repr__(self):
        return "<InviteSession %s %s>" % ("uac" if self.is_uac else "uas", self.state)

    # ---- UAC ----
    def _uac_response(self, resp, now):
        st = resp.status
        ua = self.ua
        if self.cancel_pending and 100 < st < 200:
            self.provisional = True
            self._send_cancel(now)
            return
        if self.state == TERMINATED and st < 200:
            return
        if st < 200:
            if st == 100:
                return
            self.provisional = True
            try:
                d, new = ua.dialogs.on_uac_response(self.invite, resp)
            except DialogError:
                d, new = None, False
            if d is not None:
                d.user = self
                d.flow = self.flow
                d.flow_transport = self.flow_transport
                if new:
                    self.dialogs.append(d)
                if self.dialog is None:
                    self.dialog = d
                if self.state == CALLING:
                    self.state = EARLY
            self._take_sdp(resp)
            if self.cancel_pending:
                self._send_cancel(now)
                return
            _cb(self.owner, "on_progress", self, st)
            return
        if st < 300:
            try:
                d, new = ua.dialogs.on_uac_response(self.invite, resp)
            except SipError:
                d = None
            if d is None:
                ua.count("errors")
                return
            d.user = self
            d.flow = self.flow
            d.flow_transport = self.flow_transport
            if d not in self.dialogs:
                self.dialogs.append(d)
            late = self.state == TERMINATED or self.cancel_pending or (
                self.dialog is not None and d is not self.dialog and self.state == CONFIRMED)
            if self.delay_ack and not late:
                # delayed offer: the 2xx carries the offer and our ACK must carry
                # the answer, which the owner gives later (send_ack)
                if self._held_ack is not None:
                    return            # a retransmission while the answer is pending
                self._held_ack = (d, self.txn)
            else:
                self._send_2xx_ack(d, self.txn, None, now)
            if late:
                # cancelled meanwhile, or a second fork answered: end that dialog
                ua.in_dialog(d, "BYE", _ignore, now)
                ua.dialogs.remove(d)
                if self.cancel_pending and self.state != TERMINATED:
                    self._terminate("cancelled")
                return
            self.dialog = d
            for other in list(self.dialogs):
                if other is not d:
                    ua.dialogs.remove(other)
                    self.dialogs.remove(other)
            self.state = CONFIRMED
            self.acked = True
            self._take_sdp(resp)
            _cb(self.owner, "on_answer", self)
            return
        if st in (401, 407) and self.auth is not None and self.auth_tries < MAX_AUTH_TRIES \
                and self.state != TERMINATED and not self.cancel_pending:
            hdr = "www-authenticate" if st == 401 else "proxy-authenticate"
            ch = resp.get_all(hdr)
            if ch:
                self.auth_tries += 1
                ua.count("auth_retries")
                req = _clone(self.invite)
                req.remove("via")
                req.remove("authorization")
                req.remove("proxy-authorization")
                req.add("Via", ua.via(self.transport), True)
                req.set("CSeq", "%d INVITE" % (self.invite.cseq.num + 1))
                try:
                    val = DigestClient().authorize("INVITE", str(req.uri), ch, self.auth[0],
                                                   self.auth[1], ua.rng)
                except SipError:
                    val = None
                if val is not None:
                    req.add("Authorization" if st == 401 else "Proxy-Authorization", val)
                    self.invite = req
                    self.provisional = False
                    self.txn = ua.send(req, self.dest, self._uac_response, now, self.transport)
                    return
        self.final_status = st
        was = self.state
        self._terminate("failed")
        if was != TERMINATED and not self.cancel_pending:
            _cb(self.owner, "on_failed", self, st)

    def _send_cancel(self, now):
        ua = self.ua
        self.cancel_pending = False
        self.state = TERMINATED
        self.end_reason = "cancelled"
        c = create_cancel(self.invite)
        ua.count("cancels_out")
        ua.send(c, self.dest, _ignore, now, self.transport)
        try:
            if self.txn is not None:
                ua.layer.cancel_sent(self.txn, now)
        except TransactionError:
            pass
        # the 487 (or a racing 2xx) still arrives; dialogs go once it does or now
        ua.remove(self)

    def cancel(self, now):
        if not self.is_uac or self.state not in (CALLING, EARLY):
            return False
        if self.provisional:
            self._send_cancel(now)
        else:
            self.cancel_pending = True     # CANCEL once a provisional arrives (§9.1)
            self.state = TERMINATED
            self.end_reason = "cancelled"
            self.ua.sessions.remove(self) if self in self.ua.sessions else None
            self._pending_guard()
        return True

    def _pending_guard(self):
        # no provisional ever: the INVITE transaction times out (Timer B) and
        # delivers a 408 that ends the session; keep the dialogs table clean
        for d in self.dialogs:
            self.ua.dialogs.remove(d)
        self.dialogs = []

    # ---- UAS ----
    @staticmethod
    def uas(ua, sreq, owner):
        s = InviteSession(ua, owner, False)
        s.sreq = sreq
        s.request = req = sreq.request
        s.call_id = req.call_id
        s.local_tag = sreq.to_tag
        sreq.on_no_ack = s._ack_timeout
        sreq.on_cancel = s._cancelled
        s.got_remote_sdp(req.body)
        ua.sessions.append(s)
        return s

    def _uas_headers(self, extra=()):
        ua = self.ua
        hs = [("Contact", ua.contact(self.request.uri.user or "gw"))]
        for v in self.request.get_all("record-route"):
            hs.append(("Record-Route", v))
        hs.append(("Allow", _ALLOW))
        for h in extra:
            hs.append(h)
        return hs

    def _uas_dialog(self, resp):
        if self.dialog is not None:
            return
        try:
            d = Dialog.uas(self.request, resp)
            self.ua.dialogs.add(d)
        except DialogError:
            self.ua.count("dialog_overflow")
            return
        d.user = self
        d.flow = self.flow
        d.flow_transport = self.flow_transport
        self.dialog = d
        self.dialogs.append(d)

    def ring(self, sdp=None):
        if self.is_uac or self.sreq is None or self.state not in (CALLING, EARLY):
            return None
        if sdp is not None:
            self.local_sdp = sdp
            r = self.sreq.respond(183, None, self._uas_headers(), sdp, _SDP)
        else:
            r = self.sreq.respond(180, None, self._uas_headers())
        if r is not None:
            self._uas_dialog(r)
            self.state = EARLY
        return r

    def answer(self, sdp, headers=()):
        if self.is_uac or self.sreq is None or self.state not in (CALLING, EARLY):
            return None
        self.local_sdp = sdp
        r = self.sreq.respond(200, None, self._uas_headers(headers), sdp, _SDP)
        if r is None:
            return None
        self._uas_dialog(r)
        if self.dialog is not None:
            self.dialog.state = "confirmed"
        self.state = CONFIRMED
        self.acked = False
        return r

    def reject(self, status, reason=None, headers=None):
        if self.is_uac or self.sreq is None or self.state not in (CALLING, EARLY):
            return None
        r = self.sreq.respond(status, reason, headers)
        self.final_status = status
        self._terminate("rejected")
        return r

    def _cancelled(self, sreq):
        sreq.respond(487)
        if self.state != TERMINATED:
            self._terminate("cancel")
            _cb(self.owner, "on_ended", self, "cancel")

    def _acked(self, req=None):
        self.acked = True
        if req is not None and req.body and self.local_sdp is not None and \
                self.remote_body is None:
            self._take_sdp(req)    # delayed offer: the ACK carries the answer
        if self.request is not None:
            # confirmed: the INVITE is no longer needed (some 7 KB per call)
            self._identity = self.remote_identity
            self.request = None
            self.sreq = None
        _cb(self.owner, "on_confirmed", self)

    # ---- delayed offer (UAC side of a B2BUA) ----
    def _send_2xx_ack(self, d, txn, body, now):
        ua = self.ua
        t = dialog_transport(d)
        ack = d.create_ack(self.invite.cseq.num, ua.rng, via=(t, ua.hostport()))
        if body:
            ack.body = body
            ack.add("Content-Type", _SDP)
        ua.send_ack(txn, ack, dialog_dest(d), now, t)

    def send_ack(self, sdp, now):
        """The ACK held back for a delayed offer, with the answer sdp (None:
        an empty ACK, when the answer never came).  False when none waits."""
        held = self._held_ack
        if held is None:
            return False
        self._held_ack = None
        self._send_2xx_ack(held[0], held[1], sdp, now)
        if sdp:
            self.local_sdp = sdp
        return True

    def _ack_timeout(self, now):
        """Timer H of our 2xx's transaction fired."""
        if self.state == CONFIRMED and not self.acked:
            self._no_ack(now)

    def _no_ack(self, now):
        self.ua.count("errors")
        self.bye(now)
        _cb(self.owner, "on_ended", self, "timeout")

    # ---- both ----
    def _take_sdp(self, msg):
        if msg.content_type == _SDP:
            self.got_remote_sdp(msg.body)

    @property
    def remote_identity(self):
        """(number, display name) of the far end: P-Asserted-Identity, else
        From (UAS) / To (UAC)."""
        if self._identity is not None:
            return self._identity
        msg = self.request if not self.is_uac else None
        na = None
        if msg is not None:
            pai = msg.get("p-asserted-identity")
            if pai:
                try:
                    from sip.headers import parse_name_addr
                    na = parse_name_addr(pai.split(",")[0].strip(), "P-Asserted-Identity")
                except SipError:
                    na = None
            if na is None:
                na = msg.from_
        elif self.invite is not None:
            na = self.invite.to
        if na is None:
            return (None, None)
        u = na.uri
        num = u.user_plain if u.scheme != "tel" else u.user
        return (num, na.display)

    def bye(self, now, headers=()):
        if self.state != CONFIRMED or self.dialog is None:
            return False
        ua = self.ua
        self.send_ack(None, now)  # a 2xx is ACKed before its dialog is ended (§13.2.2.4)
        ua.count("byes_out")
        try:
            ua.in_dialog(self.dialog, "BYE", _ignore, now, headers=headers)
        except SipError:
            ua.count("errors")
        self._terminate("bye")
        return True

    def reinvite(self, sdp, now, on_done=None):
        """Send a re-INVITE with a new offer; on_done(status) when answered."""
        if self.state != CONFIRMED or self.dialog is None:
            return False
        ua = self.ua
        ua.count("reinvites_out")
        self.local_sdp = sdp
        d = self.dialog

        def handler(resp, now, self=self, d=d, on_done=on_done):
            if resp.status < 200:
                return
            if resp.status < 300 and d.state != "terminated":
                d.on_response(self._last_reinvite, resp)
                t = dialog_transport(d)
                ack = d.create_ack(resp.cseq.num, ua.rng, via=(t, ua.hostport()))
                ua.send_ack(self._reinvite, ack, dialog_dest(d), now, t)
                self._take_sdp(resp)
            if on_done is not None:
                on_done(resp.status)

        req = d.create_request("INVITE", ua.rng, sdp, _SDP,
                               (("Contact", ua.contact(d.local_uri.uri.user or "gw")),),
                               via=(dialog_transport(d), ua.hostport()))
        self._last_reinvite = req
        self._reinvite = ua.send(req, dialog_dest(d), handler, now, dialog_transport(d))
        return True

    def _reinvite_in(self, sreq):
        ua = self.ua
        req = sreq.request
        bad = self.dialog.receive_request(req)
        if bad is not None:
            sreq.respond(bad[0], bad[1])
            return
        if self.state != CONFIRMED:
            sreq.respond(491)
            return
        ua.count("reinvites_in")
        sdp = None
        if req.body:
            try:
                sdp = parse_sdp(req.body)
            except SipError as e:
                sreq.respond(getattr(e, "status", 400) or 400, "Bad SDP")
                return
        self.remote_sdp = sdp or self.remote_sdp
        if req.body:
            self.remote_body = req.body
        sreq.on_no_ack = self._ack_timeout
        body = _cb(self.owner, "on_offer", self, sdp)
        if body is PENDING:          # the owner answers later with answer_offer()
            if self.offer_sreq is not None:
                sreq.respond(491)
                return
            self.offer_sreq = sreq
            return
        self._answer_offer(sreq, body)

    def answer_offer(self, body, status=488):
        """Answer the re-INVITE the owner left PENDING: 200 with body, or
        `status` when body is None."""
        sreq = self.offer_sreq
        self.offer_sreq = None
        if sreq is not None:
            self._answer_offer(sreq, body, status)

    def _answer_offer(self, sreq, body, status=488):
        if body is None or self.state != CONFIRMED:
            sreq.respond(status if body is None else 481)
            return
        req = sreq.request
        r = sreq.respond(200, None, (("Contact", self.ua.contact(self.dialog.local_uri.uri.user or "gw")),),
                         body, _SDP)
        if r is not None:
            self.dialog.refresh_target(req)

    def _ended(self, reason):
        if self.state == TERMINATED:
            return
        self._terminate(reason)
        _cb(self.owner, "on_ended", self, reason)

    def refer(self, refer_to, referred_by, on_event, now):
        """Transferor: REFER in this confirmed dialog (see the module notes)."""
        if self.state != CONFIRMED or self.dialog is None or self.refer_out is not None:
            return False
        from sip.usage.refer import ReferClient
        rc = ReferClient(self, on_event)
        self.refer_out = rc
        if not rc.send(refer_to, referred_by, now):
            self.refer_out = None
            return False
        return True

    def _terminate(self, reason):
        self.state = TERMINATED
        if self.end_reason is None:
            self.end_reason = reason
        if self.refer_out is not None:
            self.refer_out.stop()
        self.ua.remove(self)
