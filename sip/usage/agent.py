"""The host of the dialog usages of one user agent, sans-I/O.

    agent = Agent(layer, timers, rng, identity, user_agent="", log=None)
        layer: sip.transaction.TransactionLayer; timers: sip.timers.TimerTable;
        identity: host, port, hostport(), contact(user, params) (read at every
        use); log: fn(level, text) or None
    agent.wake = fn()          the shell's hook: output or a timer was queued
    agent.replaces_gate = fn(sreq) -> None | True | (status, reason)   asked
                               before an INVITE with Replaces is matched to
                               any dialog (True: the gate's owner took it)
    agent.notify_hook = fn(sreq, now) -> bool   an out-of-dialog NOTIFY (no To
                               tag, no subscription of ours): True once it took
                               it (e.g. unsolicited message-summary); else 481
    agent.receive(sreq, now) -> bool   a request of METHODS from the router
    agent.invite(ruri, from_uri, to_uri, dest, sdp_body, owner, now, ...)
                                        -> InviteSession (UAC) or None (full)
    agent.send(req, dest, handler, now, transport="UDP")   handler(resp, now)
    agent.in_dialog(dialog, method, handler, now, body=b"", ...)
    agent.later(now, ms, fn) -> Timer   fn(now), on the shared timer table
    agent.stray_response(resp, src) -> bool   a 2xx retransmission: ACK again
    agent.dialogs / .sessions / .subscriptions / .counters

Server side (the requests of METHODS): in-dialog requests after the dialog's
CSeq check go to their session (BYE ends it, re-INVITE asks its owner for an
answer, INFO goes to owner.on_request, REFER to owner.on_refer, a refer
NOTIFY to the session's ReferClient); an INVITE with Replaces to
owner.on_replace of the dialog it names.  A new INVITE without Replaces is
not the agent's (receive returns False): the router offers it to the next
module.  Errors: no dialog 481; REFER out of dialog 403, bad Refer-To 400,
scheme 416, a REFER already served 491, unconfirmed dialog 403, full
MAX_REFER_SUBSCRIPTIONS 503 + Retry-After, owner without on_refer 603;
Replaces: no such dialog 481, an early dialog we did not initiate 481, our
own early dialog or early-only on a confirmed one 486, malformed 400, owner
without on_replace 603.

Owner callbacks (each optional; all get the session first):
    on_progress(s, status)   on_answer(s)   on_failed(s, status)
    on_confirmed(s)          on_ended(s, reason)   ("bye", "cancel", "timeout")
    on_offer(s, sdp) -> answer body, None (488) or PENDING (answer_offer later)
    on_request(s, sreq)      on_refer(s, sub) -> status | fn()
    on_replace(s, sreq)

Bounds: MAX_DIALOGS dialogs, MAX_SESSIONS sessions (a new INVITE beyond
either: 503 with Retry-After), MAX_REFER_SUBSCRIPTIONS, MAX_AUTH_TRIES
digest retries per request; every refusal is counted in agent.counters.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from sip.dialog import DialogTable
from sip.message import Request, Response, parse
from sip.errors import SipError, SipParseError
from sip.transaction import TransactionError
from sip.timers import TimerTableFull
from sip.headers import parse_replaces, parse_sipfrag
from sip.transport import uri_address

MAX_DIALOGS = const(512)      # shared by the gateway and the call server (its own
MAX_SESSIONS = const(512)     # max-dialogs / max-calls knobs are lower)
MAX_AUTH_TRIES = const(2)
MAX_REFER_SUBSCRIPTIONS = const(8)   # REFERs being served at once (503 beyond)
REFER_EXPIRES_S = const(120)         # life of the implicit refer subscription
REFER_WAIT_MS = const(130000)        # transferor: give up waiting for a final NOTIFY

METHODS = ("INVITE", "BYE", "ACK", "INFO", "NOTIFY", "UPDATE", "REFER", "SUBSCRIBE")

PENDING = "pending"      # on_offer's result when the owner answers later (answer_offer)

CALLING = "calling"
EARLY = "early"
CONFIRMED = "confirmed"
TERMINATED = "terminated"

_SDP = "application/sdp"
_SIPFRAG = "message/sipfrag;version=2.0"
_ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER"


def callback(owner, name, *args):
    fn = getattr(owner, name, None) if owner is not None else None
    if fn is not None:
        return fn(*args)
    return None


def dialog_dest(d):
    """Where requests in dialog d go: its NAT flow (the address the far end's
    packets come from, set by the owner) or else the next hop's address."""
    flow = getattr(d, "flow", None)
    return flow if flow is not None else uri_address(d.next_hop())


def dialog_transport(d):
    """TCP when the far end's flow is a TCP connection (a phone registered
    over TCP: requests go back over that connection), else UDP."""
    if getattr(d, "flow", None) is not None:
        return getattr(d, "flow_transport", "UDP")
    return "UDP"


def clone(req):
    return parse(req.serialize())


def ignore(resp, now):
    pass


class Agent:
    """The host of the dialog usages of one user agent (see the module notes)."""

    def __init__(self, layer, timers, rng, identity, user_agent="", log=None):
        self.layer = layer
        self.timers = timers
        self.rng = rng
        self.wake = None          # set by the I/O shell: output or a timer is pending
        self.replaces_gate = None # fn(sreq) -> None | (status, reason): who may replace
        self.notify_hook = None   # fn(sreq, now) -> bool: an out-of-dialog NOTIFY
        self.log = log            # fn(level, text) or None
        self.dialogs = DialogTable(MAX_DIALOGS)
        self.sessions = []
        self.subscriptions = []   # ReferSubscription being served (notifier side)
        self.event_subs = []      # Subscriber / Notifier (sip/usage/subscription.py)
        self.identity = identity  # host, port, contact(): read at every use
        self.user_agent = user_agent
        self.counters = {"invites_in": 0, "invites_out": 0, "byes_in": 0, "byes_out": 0,
                         "cancels_out": 0, "reinvites_in": 0, "reinvites_out": 0,
                         "auth_retries": 0, "dialog_overflow": 0, "session_overflow": 0,
                         "no_dialog": 0, "stray_responses": 0, "errors": 0,
                         "refers_in": 0, "refers_out": 0, "refer_overflow": 0,
                         "notifies_in": 0, "notifies_out": 0, "replaces_in": 0}
        self._serve = {"BYE": self._bye, "ACK": self._ack, "INFO": self._in_dialog_ok,
                       "NOTIFY": self._notify, "UPDATE": self._update, "REFER": self._refer}

    def receive(self, sreq, now):
        """A request of METHODS: True when it was the agent's (answered or
        handed to its session); a new INVITE without Replaces is not."""
        if sreq.method == "INVITE":
            return self._invite(sreq)
        if sreq.method == "SUBSCRIBE":
            return self._subscribe(sreq, now)
        self._serve[sreq.method](sreq, now)
        return True

    # -- helpers
    def count(self, name):
        self.counters[name] = self.counters.get(name, 0) + 1

    def _output(self):
        if self.wake is not None:
            self.wake()

    def later(self, now, ms, fn):
        """fn(now) after ms; None when the timer table is full (counted)."""
        try:
            t = self.timers.add(now + ms, fn, True)
        except TimerTableFull:
            self.count("errors")
            return None
        self._output()
        return t

    def error(self, what, e):
        self.count("errors")
        if self.log is not None:
            self.log("error", "SIP %s: %s: %s" % (what, type(e).__name__, e))

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

    def send(self, req, dest, handler, now, transport="UDP"):
        """Send req in a new client transaction; handler(resp, now) gets every
        response (the shell makes a 408 on Timer B/F).  None when the
        transaction table is full (counted; handler gets a 503)."""
        if req.top_via is None:
            req.add("Via", self.via(transport), True)
        try:
            txn = self.layer.send_request(req, dest, transport, now)
        except TransactionError:
            self.count("errors")
            handler(Response.for_request(req, 503, "Transaction Table Full"), now)
            return None
        txn.user = handler
        self._output()
        return txn

    def send_ack(self, txn, ack, dest, now, transport="UDP"):
        self.layer.send_ack(txn, ack, dest, transport, now)
        self._output()

    def in_dialog(self, dialog, method, handler, now, body=b"", content_type=None, headers=()):
        t = dialog_transport(dialog)
        req = dialog.create_request(method, self.rng, body, content_type, headers,
                                    via=(t, self.hostport()))
        req.add("User-Agent", self.user_agent)
        return self.send(req, dialog_dest(dialog), handler, now, t)

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
            self._output()
        except SipError:
            pass
        return True

    # -- server side
    def _session_for(self, req):
        """The INVITE session of req's dialog (not a subscription's)."""
        d = self.dialogs.match_request(req)
        u = d.user if d is not None else None
        return u if getattr(u, "usage", None) == "invite" else None

    def _subscribe(self, sreq, now):
        """An in-dialog SUBSCRIBE refreshes its notifier; a new one is not ours."""
        req = sreq.request
        if req.to is None or not req.to.tag:
            return False
        d = self.dialogs.match_request(req)
        u = d.user if d is not None else None
        if getattr(u, "usage", None) != "notifier":
            self.count("no_dialog")
            sreq.respond(481, "Subscription Does Not Exist")
            return True
        u.receive_refresh(sreq, now)
        return True

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
        """RFC 3891 §3: an INVITE that replaces one of our dialogs.  The gate
        decides first, before any dialog is looked up: what a refused source
        hears says nothing about which dialogs exist."""
        if self.replaces_gate is not None:
            verdict = self.replaces_gate(sreq)
            if verdict is True:
                return            # the gate's owner took the request (a pickup)
            if verdict is not None:
                self.count("replaces_refused")
                sreq.respond(verdict[0], verdict[1])
                return
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

    def _refer(self, sreq, now):
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
        from sip.usage.refer import ReferSubscription
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
        sub.start(now)
        sub.notify(100, now)
        try:
            act()
        except Exception as e:
            self.error("REFER", e)
            sub.final(500, now)

    def _notify(self, sreq, now):
        req = sreq.request
        d = self.dialogs.match_request(req)
        u = d.user if d is not None else None
        if u is None:
            for s in self.event_subs:
                if getattr(s, "usage", None) == "subscriber" and s.matches(req):
                    u = s
                    break
        if getattr(u, "usage", None) == "subscriber":
            u.receive_notify(sreq, now)
            return
        if (u is None and self.notify_hook is not None and (req.to is None or not req.to.tag)
                and self.notify_hook(sreq, now)):
            return
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

    def _bye(self, sreq, now):
        sess = self._dialog_request(sreq)
        if sess is None:
            return
        self.count("byes_in")
        sreq.respond(200)
        sess._ended("bye")

    def _ack(self, sreq, now):
        sess = self._session_for(sreq.request)
        if sess is not None:
            sess._acked(sreq.request)

    def _in_dialog_ok(self, sreq, now):
        sess = self._dialog_request(sreq)
        if sess is None:
            return
        fn = getattr(sess.owner, "on_request", None)
        if fn is not None:
            fn(sess, sreq)        # the owner answers (a B2BUA relays it)
        else:
            sreq.respond(200)

    def _update(self, sreq, now):
        if self._session_for(sreq.request) is None:
            sreq.respond(481)
        else:
            sreq.respond(501)

    # -- sessions
    def invite(self, ruri, from_uri, to_uri, dest, sdp_body, owner, now, display=None,
               auth=None, headers=(), contact_user=None, transport="UDP"):
        """Start a UAC INVITE session; None when the session table is full."""
        if len(self.sessions) >= MAX_SESSIONS:
            self.count("session_overflow")
            return None
        from sip.usage.invite import InviteSession
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
        s.txn = self.send(req, dest, s._uac_response, now, transport)
        return s

    def remove(self, sess):
        if sess in self.sessions:
            self.sessions.remove(sess)
        for d in sess.dialogs:
            self.dialogs.remove(d)
        sess.dialogs = []
