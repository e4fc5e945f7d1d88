"""A reusable SIP user-agent layer on top of the SIP core (firmware/sipstack/core.py):
registration client with digest, INVITE sessions (UAC and UAS) with dialogs,
re-INVITE (hold/resume), BYE and CANCEL.  The gateway's FXS/FXO agents use
it; the B2BUA call server can reuse it for both of its legs.

    ua = shared_ua(app)                  # the one UA of the appliance (gateway and
                                         # call server share it); it is the router's
                                         # dialog module (firmware/sipstack/router.py):
                                         # in-dialog requests and Replaces come here,
                                         # new INVITEs go on to the next module
    ua.host, ua.port                     # our address for Via and Contact
    ua.contact(user) -> "<sip:user@host:port>"

    reg = Registration(ua, user, domain, dest, username=None, password=None,
                       expires=3600, on_state=fn(reg))
    reg.start() / reg.stop()             # REGISTER, digest on 401/407, refresh at
                                         # REFRESH_PCT of the granted expiry, retry
                                         # after RETRY_MS on failure
    reg.state in ("idle", "registering", "registered", "failed"), reg.status

    s = ua.invite(ruri, from_uri, to_uri, dest, sdp_body, owner, display=None,
                  auth=(username, password) or None, headers=())  -> InviteSession
    s = InviteSession.uas(ua, sreq, owner)   # for a new INVITE a module took
    s.ring(sdp=None)       UAS: 180 (or 183 with sdp: early media)
    s.answer(sdp)          UAS: 200 with SDP
    s.reject(status)       UAS: a final error
    s.cancel()             UAC: CANCEL (deferred until a provisional arrived)
    s.bye()                either side, confirmed: BYE
    s.hangup()             whichever of cancel / reject(480) / bye fits the state
    s.reinvite(sdp)        confirmed: re-INVITE with a new offer (hold: sendonly)
    s.state in ("calling", "early", "confirmed", "terminated")
    s.remote_sdp (sip.sdp.Session or None)  s.remote_identity -> (number, name)

Owner callbacks (each optional; all get the session first):
    on_progress(s, status)           UAC: a 1xx other than 100
    on_answer(s)                     UAC: 2xx (ACK already sent); s.remote_sdp set
    on_failed(s, status)             UAC: a final >= 300 (after auth retries), 408
    on_confirmed(s)                  UAS: the ACK for our 2xx arrived
    on_offer(s, sdp) -> answer body  an in-dialog re-INVITE (None -> 488; PENDING:
                                     the owner calls s.answer_offer(body, status) later)
    on_request(s, sreq)              an in-dialog INFO (after the CSeq check); the
                                     owner answers sreq (without it: 200)
    on_ended(s, reason)              the far end ended it: "bye", "cancel", "timeout"

Bounds: MAX_DIALOGS dialogs (a new INVITE beyond it: 503 with Retry-After),
MAX_SESSIONS live sessions, MAX_AUTH_TRIES digest retries per request.
Every refusal is counted in ua.counters (`show gateway` lists them).

Transfer (RFC 3515 REFER, RFC 3891 Replaces, RFC 3892 Referred-By, RFC 5589):
    s.refer(refer_to, referred_by, on_event)   transferor: REFER in s's dialog;
        on_event(kind, status): "accepted" (2xx to the REFER), then exactly one
        of "rejected" (final >= 300 / 408 to the REFER), "final" (a NOTIFY
        with a final sipfrag status, or the subscription terminated without
        one: status < 200), "timeout" (nothing final within REFER_WAIT_MS).
        Every Event: refer NOTIFY in the dialog is answered 200 (481 when no
        REFER of ours is pending, 400 for a body that is not a sipfrag).
    owner.on_refer(s, sub) -> status | fn()     transferee: an in-dialog REFER
        with a valid Refer-To.  A status refuses it (e.g. 603); a callable
        accepts it: the UA answers 202, sends NOTIFY "SIP/2.0 100 Trying"
        (implicit subscription, Event: refer;id=<CSeq>), then calls fn() which
        places the new INVITE (sub.target, sub.replaces, sub.referred_by) and
        later calls sub.final(status) with the INVITE's final status (NOTIFY
        with Subscription-State: terminated).  sub.on_expire (optional) runs
        when the subscription outlives REFER_EXPIRES_S (then NOTIFY 487).
        REFER errors: out of dialog 403, no dialog 481, no/several Refer-To
        or a malformed one 400 (bad Replaces too), scheme 416, a REFER
        already being served in the dialog 491, unconfirmed dialog 403,
        MAX_REFER_SUBSCRIPTIONS full 503 + Retry-After, owner without
        on_refer 603.
    owner.on_replace(s, sreq)     a new INVITE whose Replaces header names
        s's confirmed dialog (RFC 3891 §3): the owner answers sreq (usually
        InviteSession.uas + answer) and ends s.  Replaces errors: no such
        dialog 481; an early dialog we did not initiate 481; our own early
        dialog (not supported) or early-only on a confirmed one 486; a
        malformed Replaces 400; owner without on_replace 603.
"""
from firmware.compat import const
from sip.dialog import DialogTable, Dialog, DialogError, create_cancel, uas_response_headers
from sip.digest import DigestClient
from sip.message import Request, Response, parse
from sip.errors import SipError, SipParseError
from sip.transaction import TransactionError
from sip.sdp import parse_sdp
from firmware.sipstack.router import DIALOGS

MAX_DIALOGS = const(512)      # shared by the gateway and the call server (its own
MAX_SESSIONS = const(512)     # max-dialogs / max-calls knobs are lower)
MAX_AUTH_TRIES = const(2)
RETRY_MS = const(30000)
REFRESH_PCT = const(80)
MIN_REFRESH_MS = const(5000)
MAX_REFER_SUBSCRIPTIONS = const(8)   # REFERs being served at once (503 beyond)
REFER_EXPIRES_S = const(120)         # life of the implicit refer subscription
REFER_WAIT_MS = const(130000)        # transferor: give up waiting for a final NOTIFY

PENDING = "pending"      # on_offer's result when the owner answers later (answer_offer)

CALLING = "calling"
EARLY = "early"
CONFIRMED = "confirmed"
TERMINATED = "terminated"

_SDP = "application/sdp"
_SIPFRAG = "message/sipfrag;version=2.0"
_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER"
_HCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"


def uri_escape(text):
    """%-escape text for a URI header value (RFC 3261 hvalue): everything but
    unreserved characters, so ';', '=', '@' of a Replaces value get escaped."""
    out = []
    for c in text:
        if c in _HCHARS:
            out.append(c)
        else:
            for b in c.encode():
                out.append("%%%02X" % b)
    return "".join(out)


def replaces_for(dialog):
    """The Replaces value that names `dialog` (ours) to the UA at its other
    end (RFC 3891: to-tag is that UA's local tag, from-tag its remote tag)."""
    return "%s;to-tag=%s;from-tag=%s" % (dialog.call_id, dialog.remote_tag, dialog.local_tag)


def parse_replaces(text):
    """'callid;to-tag=X;from-tag=Y[;early-only]' -> (call_id, to_tag,
    from_tag, early_only); ValueError when malformed."""
    parts = [p.strip() for p in text.strip().split(";")]
    cid = parts[0]
    if not cid or " " in cid:
        raise ValueError("no Call-ID")
    tt = ft = None
    early = False
    for p in parts[1:]:
        e = p.find("=")
        name = (p if e < 0 else p[:e]).strip().lower()
        val = None if e < 0 else p[e + 1:].strip()
        if name == "to-tag":
            tt = val
        elif name == "from-tag":
            ft = val
        elif name == "early-only":
            early = True
    if not tt or not ft:
        raise ValueError("to-tag and from-tag required")
    return (cid, tt, ft, early)


def parse_sipfrag(body):
    """The status code of a message/sipfrag status line, or None."""
    if not body:
        return None
    try:
        text = bytes(body).decode()
    except UnicodeError:
        return None
    line = text.split("\n")[0].strip()
    parts = line.split(" ")
    if len(parts) < 2 or parts[0].upper() != "SIP/2.0" or len(parts[1]) != 3 \
            or not parts[1].isdigit():
        return None
    st = int(parts[1])
    if st < 100 or st > 699:
        return None
    return st


def _cb(owner, name, *args):
    fn = getattr(owner, name, None) if owner is not None else None
    if fn is not None:
        return fn(*args)
    return None


def dialog_dest(d):
    """Where requests in dialog d go: its NAT flow (the address the far end's
    packets come from, set by the owner) or else the next hop's address."""
    flow = getattr(d, "flow", None)
    return flow if flow is not None else _dest_of(d.next_hop())


def dialog_transport(d):
    """TCP when the far end's flow is a TCP connection (a phone registered
    over TCP: requests go back over that connection), else UDP."""
    if getattr(d, "flow", None) is not None:
        return getattr(d, "flow_transport", "UDP")
    return "UDP"


def _dest_of(uri):
    return (uri.host.strip("[]"), uri.port or 5060)


def _clone(req):
    return parse(req.serialize())


def shared_ua(app):
    """The appliance's UserAgent, built on first use."""
    ua = getattr(app, "ua", None)
    if ua is None:
        ua = UserAgent(app)
        app.ua = ua
    return ua


class UserAgent:
    """The dialog module of the router (priority DIALOGS): in-dialog requests
    go to their session, an INVITE with Replaces to the session it names."""
    name = "dialogs"
    priority = DIALOGS
    methods = ("INVITE", "BYE", "ACK", "INFO", "NOTIFY", "UPDATE", "REFER")

    def __init__(self, app, core=None):
        self.app = app
        self.core = core or app.sip
        self.layer = self.core.layer
        self.rng = app.rng
        self.dialogs = DialogTable(MAX_DIALOGS)
        self.sessions = []
        self.subscriptions = []   # ReferSubscription being served (notifier side)
        self.identity = app.identity    # host, port, domain: read at every use
        self.user_agent = self.core.server_header
        self.counters = {"invites_in": 0, "invites_out": 0, "byes_in": 0, "byes_out": 0,
                         "cancels_out": 0, "reinvites_in": 0, "reinvites_out": 0,
                         "auth_retries": 0, "dialog_overflow": 0, "session_overflow": 0,
                         "no_dialog": 0, "stray_responses": 0, "errors": 0,
                         "refers_in": 0, "refers_out": 0, "refer_overflow": 0,
                         "notifies_in": 0, "notifies_out": 0, "replaces_in": 0}
        self._serve = {"BYE": self._bye, "ACK": self._ack, "INFO": self._in_dialog_ok,
                       "NOTIFY": self._notify, "UPDATE": self._update, "REFER": self._refer}
        self.core.router.add(self)
        if "replaces" not in self.core.supported:
            self.core.supported.append("replaces")

    def take(self, sreq):
        if sreq.method == "INVITE":
            return self._invite(sreq)
        self._serve[sreq.method](sreq)
        return True

    # -- helpers
    def count(self, name):
        self.counters[name] = self.counters.get(name, 0) + 1

    def now(self):
        return self.app.clock.now()

    @property
    def host(self):
        return self.identity.host

    @property
    def port(self):
        return self.identity.port

    def hostport(self):
        return self.identity.hostport()

    def contact(self, user, params=""):
        return self.identity.contact(user, params)

    def via(self, transport="UDP"):
        return "SIP/2.0/%s %s;branch=%s;rport" % (transport, self.hostport(),
                                                  self.layer.new_branch())

    def new_request(self, method, ruri, from_uri, to_uri, display=None, call_id=None,
                    cseq=1, contact_user=None, headers=(), body=b"", content_type=None,
                    transport="UDP"):
        req = Request(method, ruri)
        req.add("Via", self.via(transport))
        req.add("Max-Forwards", "70")
        frm = "<%s>;tag=%s" % (from_uri, self.rng.token(6))
        if display:
            frm = '"%s" %s' % (display.replace('"', "").replace("\\", ""), frm)
        req.add("From", frm)
        req.add("To", "<%s>" % to_uri)
        req.add("Call-ID", call_id or "%s@%s" % (self.rng.token(10), self.host))
        req.add("CSeq", "%d %s" % (cseq, method))
        if contact_user is not None:
            req.add("Contact", self.contact(contact_user))
        req.add("User-Agent", self.user_agent)
        for name, value in headers:
            req.add(name, value)
        if body:
            req.body = body if isinstance(body, bytes) else body.encode()
            if content_type:
                req.add("Content-Type", content_type)
        return req

    def send(self, req, dest, handler, transport="UDP"):
        """Send req in a new client transaction; handler(resp) gets every
        response (a 408 is synthesised on Timer B/F).  None when the
        transaction table is full (counted; handler gets a 503)."""
        if req.top_via is None:
            req.add("Via", self.via(transport), True)
        try:
            txn = self.layer.send_request(req, dest, transport, self.now())
        except TransactionError:
            self.count("errors")
            handler(Response.for_request(req, 503, "Transaction Table Full"))
            return None
        txn.user = handler
        self.core._flush()
        return txn

    def send_ack(self, txn, ack, dest, transport="UDP"):
        self.layer.send_ack(txn, ack, dest, transport, self.now())
        self.core._flush()

    def in_dialog(self, dialog, method, handler, body=b"", content_type=None, headers=()):
        t = dialog_transport(dialog)
        req = dialog.create_request(method, self.rng, body, content_type, headers,
                                    via=(t, self.hostport()))
        req.add("User-Agent", self.user_agent)
        return self.send(req, dialog_dest(dialog), handler, t)

    def stray_response(self, resp, src):
        """A 2xx retransmission after the INVITE transaction ended: ACK again."""
        if resp.status // 100 != 2 or resp.cseq is None or resp.cseq.method != "INVITE":
            return False
        d = self.dialogs.match_response(resp)
        if d is None:
            return False
        try:
            t = dialog_transport(d)
            ack = d.create_ack(resp.cseq.num, self.rng, via=(t, self.hostport()))
            self.layer.send_stateless(ack, dialog_dest(d), t)
            self.core._flush()
        except SipError:
            pass
        return True

    # -- server side
    def _session_for(self, req):
        d = self.dialogs.match_request(req)
        return d.user if d is not None else None

    def _dialog_request(self, sreq):
        """The session an in-dialog request belongs to, after the dialog's CSeq
        check; None once the request has been answered (481, or 500 Out Of Order)."""
        req = sreq.request
        sess = self._session_for(req)
        if sess is None or sess.dialog is None:
            self.count("no_dialog")
            sreq.respond(481)
            return None
        bad = sess.dialog.receive_request(req)
        if bad is not None:
            sreq.respond(bad[0], bad[1])
            return None
        return sess

    def _invite(self, sreq):
        """True when the INVITE was ours: in a dialog, over the session bound,
        or with Replaces; a new INVITE goes on to the next module."""
        req = sreq.request
        if req.to is not None and req.to.tag:
            sess = self._session_for(req)
            if sess is None:
                self.count("no_dialog")
                sreq.respond(481)
                return True
            sess._reinvite_in(sreq)
            return True
        self.count("invites_in")
        if len(self.sessions) >= MAX_SESSIONS or len(self.dialogs) >= MAX_DIALOGS:
            self.count("session_overflow")
            sreq.respond(503, None, (("Retry-After", "5"),))
            return True
        if req.get("replaces") is not None:
            self._replaces(sreq)
            return True
        return False

    def _replaces(self, sreq):
        """RFC 3891 §3: an INVITE that replaces one of our dialogs."""
        req = sreq.request
        vals = req.get_all("replaces")
        try:
            if len(vals) != 1:
                raise ValueError("one Replaces header expected")
            cid, tt, ft, early_only = parse_replaces(vals[0])
        except ValueError:
            sreq.respond(400, "Bad Replaces Header")
            return
        d = self.dialogs.find(cid, tt, ft)
        sess = d.user if d is not None else None
        if sess is None or d.state == TERMINATED or sess.state == TERMINATED:
            self.count("no_dialog")
            sreq.respond(481)
            return
        if d.state != CONFIRMED or sess.state != CONFIRMED:
            if not d.is_uac:
                sreq.respond(481, "Early Dialog Not Replaceable")
            else:
                sreq.respond(486)
            return
        if early_only:
            sreq.respond(486)
            return
        fn = getattr(sess.owner, "on_replace", None) if sess.owner is not None else None
        if fn is None:
            sreq.respond(603)
            return
        self.count("replaces_in")
        fn(sess, sreq)

    def _refer(self, sreq):
        """RFC 3515: an in-dialog REFER (transferee side)."""
        req = sreq.request
        if req.to is None or not req.to.tag:
            sreq.respond(403, "Out-Of-Dialog REFER Not Supported")
            return
        sess = self._dialog_request(sreq)
        if sess is None:
            return
        vals = req.get_all("refer-to")
        if len(vals) != 1:
            sreq.respond(400, "Missing Refer-To" if not vals else "Multiple Refer-To")
            return
        try:
            from sip.headers import parse_name_addr
            na = parse_name_addr(vals[0].strip(), "Refer-To")
        except SipError:
            sreq.respond(400, "Bad Refer-To")
            return
        u = na.uri
        if u.scheme not in ("sip", "sips", "tel"):
            sreq.respond(416)
            return
        replaces = None
        try:
            for name, value in u.headers:
                if name.lower() == "replaces":
                    from sip.uri import unescape
                    replaces = unescape(value).decode()
                    parse_replaces(replaces)
        except (SipError, ValueError, UnicodeError):
            sreq.respond(400, "Bad Replaces In Refer-To")
            return
        if sess.state != CONFIRMED:
            sreq.respond(403, "Dialog Not Confirmed")
            return
        if sess.refer_in is not None:
            sreq.respond(491)
            return
        if len(self.subscriptions) >= MAX_REFER_SUBSCRIPTIONS:
            self.count("refer_overflow")
            sreq.respond(503, None, (("Retry-After", "5"),))
            return
        fn = getattr(sess.owner, "on_refer", None) if sess.owner is not None else None
        if fn is None:
            sreq.respond(603)
            return
        target = u.copy()
        target.headers = []
        sub = ReferSubscription(self, sess, req.cseq.num, str(target), replaces,
                                req.get("referred-by"))
        act = fn(sess, sub)
        if not callable(act):
            sreq.respond(act or 603)
            return
        self.count("refers_in")
        self.subscriptions.append(sub)
        sess.refer_in = sub
        sreq.respond(202, None, (("Contact", self.contact(sess.dialog.local_uri.uri.user or "gw")),))
        sub.start()
        sub.notify(100)
        try:
            act()
        except Exception as e:
            self.count("errors")
            self.app.log.write("error", "UA REFER: %s: %s" % (type(e).__name__, e))
            sub.final(500)

    def _notify(self, sreq):
        req = sreq.request
        sess = self._dialog_request(sreq)
        if sess is None:
            return
        ev = (req.get("event") or "").split(";")[0].strip().lower()
        if ev != "refer":
            sreq.respond(200)       # other in-dialog NOTIFYs: acknowledged, unused
            return
        rc = sess.refer_out
        if rc is None:
            sreq.respond(481, "Subscription Does Not Exist")
            return
        st = parse_sipfrag(req.body)
        if st is None:
            sreq.respond(400, "Bad sipfrag Body")
            return
        self.count("notifies_in")
        ss = (req.get("subscription-state") or "").split(";")[0].strip().lower()
        sreq.respond(200)
        rc.notified(st, ss == "terminated")

    def _bye(self, sreq):
        sess = self._dialog_request(sreq)
        if sess is None:
            return
        self.count("byes_in")
        sreq.respond(200)
        sess._ended("bye")

    def _ack(self, sreq):
        sess = self._session_for(sreq.request)
        if sess is not None:
            sess._acked(sreq.request)

    def _in_dialog_ok(self, sreq):
        sess = self._dialog_request(sreq)
        if sess is None:
            return
        fn = getattr(sess.owner, "on_request", None)
        if fn is not None:
            fn(sess, sreq)        # the owner answers (a B2BUA relays it)
        else:
            sreq.respond(200)

    def _update(self, sreq):
        if self._session_for(sreq.request) is None:
            sreq.respond(481)
        else:
            sreq.respond(501)

    # -- sessions
    def invite(self, ruri, from_uri, to_uri, dest, sdp_body, owner, display=None,
               auth=None, headers=(), contact_user=None, transport="UDP"):
        """Start a UAC INVITE session; None when the session table is full."""
        if len(self.sessions) >= MAX_SESSIONS:
            self.count("session_overflow")
            return None
        s = InviteSession(self, owner, True)
        user = contact_user
        if user is None:
            try:
                from sip.uri import parse_uri
                user = parse_uri(from_uri).user or "gw"
            except SipParseError:
                user = "gw"
        req = self.new_request("INVITE", ruri, from_uri, to_uri, display,
                               contact_user=user, headers=headers, body=sdp_body,
                               content_type=_SDP, transport=transport)
        req.add("Allow", _ALLOW)
        s.invite = req
        s.dest = dest
        s.transport = transport
        s.auth = auth
        s.call_id = req.call_id
        s.local_tag = req.from_.tag
        self.sessions.append(s)
        self.count("invites_out")
        s.txn = self.send(req, dest, s._uac_response, transport)
        return s

    def remove(self, sess):
        if sess in self.sessions:
            self.sessions.remove(sess)
        for d in sess.dialogs:
            self.dialogs.remove(d)
        sess.dialogs = []


class InviteSession:
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
        self._rsdp = None         # remote_sdp, parsed on first use
        self._sdp_pending = None  # SDP bytes received and not parsed yet
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

    # The far end's SDP is parsed only when someone looks at it: a B2BUA leg
    # passes the bytes on and never does (some 3 KB per leg on MicroPython).
    @property
    def remote_sdp(self):
        raw = self._sdp_pending
        if raw is not None:
            self._sdp_pending = None
            try:
                self._rsdp = parse_sdp(raw)
            except SipError:
                pass              # unparsable: keep what was there
        return self._rsdp

    @remote_sdp.setter
    def remote_sdp(self, value):
        self._rsdp = value
        self._sdp_pending = None

    # ---- UAC ----
    def _uac_response(self, resp):
        st = resp.status
        ua = self.ua
        if self.cancel_pending and 100 < st < 200:
            self.provisional = True
            self._send_cancel()
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
                self._send_cancel()
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
                self._send_2xx_ack(d, self.txn, None)
            if late:
                # cancelled meanwhile, or a second fork answered: end that dialog
                ua.in_dialog(d, "BYE", _ignore)
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
                    self.txn = ua.send(req, self.dest, self._uac_response, self.transport)
                    return
        self.final_status = st
        was = self.state
        self._terminate("failed")
        if was != TERMINATED and not self.cancel_pending:
            _cb(self.owner, "on_failed", self, st)

    def _send_cancel(self):
        ua = self.ua
        self.cancel_pending = False
        self.state = TERMINATED
        self.end_reason = "cancelled"
        c = create_cancel(self.invite)
        ua.count("cancels_out")
        ua.send(c, self.dest, _ignore, self.transport)
        try:
            if self.txn is not None:
                ua.layer.cancel_sent(self.txn, ua.now())
        except TransactionError:
            pass
        # the 487 (or a racing 2xx) still arrives; dialogs go once it does or now
        ua.remove(self)

    def cancel(self):
        if not self.is_uac or self.state not in (CALLING, EARLY):
            return False
        if self.provisional:
            self._send_cancel()
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
        if req.body:
            s.remote_body = req.body
            s._sdp_pending = req.body
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

    def answer(self, sdp):
        if self.is_uac or self.sreq is None or self.state not in (CALLING, EARLY):
            return None
        self.local_sdp = sdp
        r = self.sreq.respond(200, None, self._uas_headers(), sdp, _SDP)
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
    def _send_2xx_ack(self, d, txn, body):
        ua = self.ua
        t = dialog_transport(d)
        ack = d.create_ack(self.invite.cseq.num, ua.rng, via=(t, ua.hostport()))
        if body:
            ack.body = body
            ack.add("Content-Type", _SDP)
        ua.send_ack(txn, ack, dialog_dest(d), t)

    def send_ack(self, sdp):
        """The ACK held back for a delayed offer, with the answer sdp (None:
        an empty ACK, when the answer never came).  False when none waits."""
        held = self._held_ack
        if held is None:
            return False
        self._held_ack = None
        self._send_2xx_ack(held[0], held[1], sdp)
        if sdp:
            self.local_sdp = sdp
        return True

    def _ack_timeout(self):
        """Timer H of our 2xx's transaction fired."""
        if self.state == CONFIRMED and not self.acked:
            self._no_ack()

    def _no_ack(self):
        self.ua.count("errors")
        self.bye()
        _cb(self.owner, "on_ended", self, "timeout")

    # ---- both ----
    def _take_sdp(self, msg):
        if msg.body and msg.content_type == _SDP:
            self.remote_body = msg.body
            self._sdp_pending = msg.body

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

    def bye(self):
        if self.state != CONFIRMED or self.dialog is None:
            return False
        ua = self.ua
        self.send_ack(None)       # a 2xx is ACKed before its dialog is ended (§13.2.2.4)
        ua.count("byes_out")
        try:
            ua.in_dialog(self.dialog, "BYE", _ignore)
        except SipError:
            ua.count("errors")
        self._terminate("bye")
        return True

    def hangup(self):
        """End the session whatever its state."""
        if self.state == TERMINATED:
            return
        if self.state == CONFIRMED:
            self.bye()
        elif self.is_uac:
            self.cancel()
        else:
            self.reject(480)

    def reinvite(self, sdp, on_done=None):
        """Send a re-INVITE with a new offer; on_done(status) when answered."""
        if self.state != CONFIRMED or self.dialog is None:
            return False
        ua = self.ua
        ua.count("reinvites_out")
        self.local_sdp = sdp
        d = self.dialog

        def handler(resp, self=self, d=d, on_done=on_done):
            if resp.status < 200:
                return
            if resp.status < 300 and d.state != "terminated":
                d.on_response(self._last_reinvite, resp)
                t = dialog_transport(d)
                ack = d.create_ack(resp.cseq.num, ua.rng, via=(t, ua.hostport()))
                ua.send_ack(self._reinvite, ack, dialog_dest(d), t)
                self._take_sdp(resp)
            if on_done is not None:
                on_done(resp.status)

        req = d.create_request("INVITE", ua.rng, sdp, _SDP,
                               (("Contact", ua.contact(d.local_uri.uri.user or "gw")),),
                               via=(dialog_transport(d), ua.hostport()))
        self._last_reinvite = req
        self._reinvite = ua.send(req, dialog_dest(d), handler, dialog_transport(d))
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

    def refer(self, refer_to, referred_by, on_event):
        """Transferor: REFER in this confirmed dialog (see the module notes)."""
        if self.state != CONFIRMED or self.dialog is None or self.refer_out is not None:
            return False
        rc = ReferClient(self, on_event)
        self.refer_out = rc
        if not rc.send(refer_to, referred_by):
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


class ReferClient:
    """Transferor side of one REFER: its transaction and the NOTIFYs of the
    implicit subscription, until one outcome (on_event) is reported."""

    def __init__(self, session, on_event):
        self.session = session
        self.on_event = on_event
        self.done = False
        self.accepted = False
        self.last = None
        self.timer = None

    def send(self, refer_to, referred_by):
        s = self.session
        ua = s.ua
        hs = [("Refer-To", "<%s>" % refer_to)]
        if referred_by:
            hs.append(("Referred-By", "<%s>" % referred_by))
        try:
            ua.in_dialog(s.dialog, "REFER", self._response, headers=hs)
        except SipError:
            ua.count("errors")
            return False
        ua.count("refers_out")
        try:
            self.timer = ua.core.call_later(REFER_WAIT_MS, self._timeout)
        except Exception:
            self.timer = None
        return True

    def _response(self, resp):
        st = resp.status
        if st < 200 or self.done:
            return
        if st < 300:
            self.accepted = True
            if self.on_event is not None:
                self.on_event("accepted", st)
            return
        self._finish("rejected", st)

    def notified(self, status, terminated):
        if self.done:
            return
        self.last = status
        if status >= 200:
            self._finish("final", status)
        elif terminated:
            self._finish("final", status)

    def _timeout(self):
        self.timer = None
        if not self.done:
            self._finish("timeout", 408)

    def stop(self):
        """The dialog ended: report nothing more."""
        self.done = True
        self._cancel_timer()
        if self.session.refer_out is self:
            self.session.refer_out = None

    def _cancel_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _finish(self, kind, status):
        self.stop()
        if self.on_event is not None:
            self.on_event(kind, status)


class ReferSubscription:
    """Notifier side of the implicit refer subscription (RFC 3515 §2.4.4):
    NOTIFYs with message/sipfrag bodies in the REFER's dialog."""

    def __init__(self, ua, session, event_id, target, replaces, referred_by):
        self.ua = ua
        self.session = session
        self.event_id = event_id
        self.target = target              # Refer-To URI, its headers removed
        self.replaces = replaces          # unescaped Replaces value or None
        self.referred_by = referred_by
        self.done = False
        self.timer = None
        self.started = None
        self.on_expire = None
        self.last = None

    def __repr__(self):
        return "<ReferSubscription %s %s>" % (self.target, "done" if self.done else "active")

    def start(self):
        self.started = self.ua.now()
        try:
            self.timer = self.ua.core.call_later(REFER_EXPIRES_S * 1000, self._expire)
        except Exception:
            self.timer = None

    def notify(self, status, final=False, reason="noresource"):
        ua = self.ua
        self.last = status
        d = self.session.dialog
        if final:
            state = "terminated;reason=%s" % reason
        else:
            left = REFER_EXPIRES_S - (ua.now() - (self.started or ua.now())) // 1000
            state = "active;expires=%d" % max(1, left)
        if d is None or d.state == TERMINATED:
            ua.count("no_dialog")
            return False
        from sip.errors import reason_phrase
        body = "SIP/2.0 %d %s\r\n" % (status, reason_phrase(status))
        try:
            ua.in_dialog(d, "NOTIFY", _ignore, body, _SIPFRAG,
                         (("Event", "refer;id=%d" % self.event_id), ("Subscription-State", state)))
        except SipError:
            ua.count("errors")
            return False
        ua.count("notifies_out")
        return True

    def final(self, status, reason="noresource"):
        """The new INVITE ended with `status`: last NOTIFY, subscription over."""
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.notify(status, True, reason)
        if self in self.ua.subscriptions:
            self.ua.subscriptions.remove(self)
        if self.session.refer_in is self:
            self.session.refer_in = None

    def _expire(self):
        self.timer = None
        if self.done:
            return
        fn = self.on_expire
        self.on_expire = None
        if fn is not None:
            try:
                fn()
            except Exception as e:
                self.ua.count("errors")
                self.ua.app.log.write("error", "UA refer expiry: %s" % e)
        self.final(487, "timeout")


def _ignore(resp):
    pass


class Registration:
    """One AoR's registration with a registrar (RFC 3261 §10.2)."""

    def __init__(self, ua, user, domain, dest, username=None, password=None,
                 expires=3600, on_state=None, contact_user=None, contact_params=""):
        self.ua = ua
        self.contact_params = contact_params
        self.secret_id = None
        self.user = user
        self.domain = domain
        self.dest = dest
        self.username = username or user
        self.password = password
        self.expires = expires
        self.on_state = on_state
        self.contact_user = contact_user or user
        self.state = "idle"
        self.status = None
        self.granted = None
        self.call_id = "%s@%s" % (ua.rng.token(10), ua.host)
        self.cseq = 0
        self.tries = 0
        self.timer = None
        self.registered_at = None
        self.count = 0
        self.failures = 0

    def __repr__(self):
        return "<Registration %s %s>" % (self.user, self.state)

    def _set(self, state, status=None):
        self.state = state
        self.status = status
        if self.on_state is not None:
            self.on_state(self)

    def start(self):
        self.tries = 0
        self._send(None, self.expires)

    def stop(self):
        self._cancel_timer()
        if self.state == "registered":
            self._send(None, 0)
        self.state = "idle"

    def _cancel_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _later(self, ms, fn):
        self._cancel_timer()
        try:
            self.timer = self.ua.core.call_later(ms, fn)
        except Exception:
            self.timer = None

    def _send(self, challenge, expires, is_proxy=False):
        ua = self.ua
        self.cseq += 1
        ruri = "sip:%s" % self.domain
        aor = "sip:%s@%s" % (self.user, self.domain)
        req = ua.new_request("REGISTER", ruri, aor, aor, call_id=self.call_id, cseq=self.cseq)
        req.add("Contact", "%s;expires=%d" % (ua.contact(self.contact_user, self.contact_params),
                                               expires))
        req.add("Expires", str(expires))
        if challenge is not None and self.password:
            val = DigestClient().authorize("REGISTER", ruri, challenge, self.username,
                                           self.password, ua.rng)
            req.add("Proxy-Authorization" if is_proxy else "Authorization", val)
        if expires:
            self._set("registering")
        ua.send(req, self.dest, lambda r, e=expires: self._response(r, e))

    def _response(self, resp, expires):
        st = resp.status
        if st < 200:
            return
        if expires == 0:
            return
        if st in (401, 407) and self.password and self.tries < MAX_AUTH_TRIES:
            ch = resp.get_all("www-authenticate" if st == 401 else "proxy-authenticate")
            if ch:
                self.tries += 1
                self.ua.count("auth_retries")
                try:
                    self._send(ch, expires, st == 407)
                    return
                except SipError:
                    pass
        self.tries = 0
        if 200 <= st < 300:
            granted = expires
            for c in resp.contact:
                if c != "*" and c.uri.user == self.contact_user:
                    e = c.params.get("expires")
                    if e and e.isdigit():
                        granted = int(e)
            if resp.expires is not None and granted == expires and resp.expires < granted:
                granted = resp.expires
            self.granted = granted
            self.count += 1
            self.registered_at = self.ua.now()
            self._set("registered", st)
            self._later(max(MIN_REFRESH_MS, granted * 10 * REFRESH_PCT), self.start)
            return
        if st == 423:
            m = resp.min_expires
            if m and m > self.expires:
                self.expires = m
                self._send(None, m)
                return
        self.failures += 1
        self._set("failed", st)
        self._later(RETRY_MS, self.start)
