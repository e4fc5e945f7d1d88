"""SIP dialogs (RFC 3261 §12, §13.2.2.4, §9.1).

API
    Dialog.uac(request, response, secure=None) -> Dialog
        from the UAC's INVITE (or other dialog-creating request) and a 1xx
        with To tag (state "early") or a 2xx ("confirmed"), §12.1.2.
    Dialog.from_notify(subscribe, notify, secure=None) -> Dialog
        the subscriber's dialog created by a NOTIFY (RFC 6665 §4.1.2.4).
    Dialog.uas(request, response, secure=None) -> Dialog
        from the received request and the 1xx/2xx the UAS sends (its To tag
        is the local tag), §12.1.1.  uas_response_headers(request, response)
        copies Record-Route into that response.
    d.id -> (call_id, local_tag, remote_tag)   d.state  d.is_uac
    d.local_uri d.remote_uri (NameAddr without tag) d.remote_target (URI)
    d.route_set [NameAddr]  d.local_cseq d.remote_cseq  d.secure
    d.local_contact (str or None; sent as Contact in requests we build)
    d.confirm(response)            early -> confirmed on a 2xx (UAC; the route
                                   set is recomputed from the 2xx)
    d.create_request(method, rng=None, body=b"", content_type=None,
                     headers=(), via=None) -> Request
        in-dialog request (§12.2.1.1): CSeq = ++local_cseq, Request-URI and
        Route per loose/strict routing.  via: (transport, "host[:port]") to
        add a Via with a new branch from rng; else the transaction layer adds
        it.
    d.create_ack(cseq_num=None, rng=None, body=b"", content_type=None,
                 via=None) -> ACK for a 2xx (CSeq of the INVITE, default the
                 last INVITE sent from this dialog)
    d.receive_request(req) -> None | (status, reason)
        §12.2.2 CSeq check (lower than remote_cseq -> 500); updates
        remote_cseq.  ACK and CANCEL are not checked.
    d.refresh_target(msg)          remote target := msg's Contact
    d.on_response(request, response)       UAC: 2xx to re-INVITE/UPDATE
                                           refreshes the target
    d.on_sent_response(request, response)  UAS: same, from the request
    d.next_hop() -> URI            first Route, else remote target
    create_cancel(invite) -> Request        §9.1
    uas_response_headers(request, response)

    table = DialogTable(max_dialogs=MAX_DIALOGS)
    table.add(d)   raises DialogTableFull when full (the TU answers 503)
    table.find(call_id, local_tag, remote_tag) / table.remove(d) / len(table)
    table.match_request(req)  -> Dialog | None   (local tag = To tag)
    table.match_response(resp) -> Dialog | None  (local tag = From tag)
    table.on_uac_response(request, response) -> (dialog | None, is_new)
        UAC side of a dialog-creating request, forking aware: 1xx with a new
        To tag -> new early dialog; 2xx -> confirms the matching early
        dialog, or creates a new confirmed one (a second 2xx from another
        fork: the TU ACKs it and sends BYE); a final >= 300 terminates all
        early dialogs of that request (returns (None, False)).
    table.early_dialogs(call_id, local_tag) -> [Dialog]
    table.terminate_early(call_id, local_tag, keep=None) -> [removed]

Bounds: MAX_DIALOGS (DialogTable), MAX_ROUTE_SET entries in a route set
(longer Record-Route lists are a DialogError, answered 500 / dropped by the TU).
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from sip.errors import SipError
from sip.headers import NameAddr
from sip.message import Request

MAX_DIALOGS = const(128)
MAX_ROUTE_SET = const(16)
MAGIC = "z9hG4bK"

EARLY = "early"
CONFIRMED = "confirmed"
TERMINATED = "terminated"

_NO_CSEQ_CHECK = ("ACK", "CANCEL")
_TARGET_REFRESH = ("INVITE", "UPDATE")


class DialogError(SipError):
    """Invalid dialog operation or input."""


class DialogTableFull(DialogError):
    """MAX_DIALOGS reached."""


def _strip_tag(na):
    c = na.copy()
    c.tag = None
    return c


def _contact_uri(msg):
    cs = msg.contact
    if cs and cs[0] != "*":
        return cs[0].uri.copy()
    return None


def _route_set(msg, reverse):
    rr = msg.record_route
    if len(rr) > MAX_ROUTE_SET:
        raise DialogError("route set too long")
    rs = [r.copy() for r in rr]
    if reverse:
        rs.reverse()
    return rs


def _is_secure(request):
    return request.uri.scheme == "sips"


class Dialog:
    def __init__(self, call_id, local_tag, remote_tag, local_uri, remote_uri,
                 remote_target, route_set, local_cseq, remote_cseq, secure,
                 state, is_uac):
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        self.route_set = route_set
        self.local_cseq = local_cseq
        self.remote_cseq = remote_cseq
        self.secure = secure
        self.state = state
        self.is_uac = is_uac
        self.local_contact = None
        self.invite_cseq = None     # CSeq number of the last INVITE we sent
        self.user = None            # free slot for the TU / usage

    @property
    def id(self):
        return (self.call_id, self.local_tag, self.remote_tag)

    def __repr__(self):
        return "<Dialog %s %s/%s %s>" % (self.call_id, self.local_tag,
                                         self.remote_tag, self.state)

    # ---- creation ----
    @staticmethod
    def uac(request, response, secure=None):
        st = response.status
        if st < 101 or st >= 300:
            raise DialogError("dialog needs a 101-299 response")
        rt = response.to.tag if response.to is not None else None
        if rt is None and st < 200:
            raise DialogError("provisional response without To tag")
        if secure is None:
            secure = _is_secure(request)
        d = Dialog(request.call_id, request.from_.tag, rt,
                   _strip_tag(request.from_), _strip_tag(request.to),
                   _contact_uri(response) or request.uri.copy(),
                   _route_set(response, True), request.cseq.num, None, secure,
                   EARLY if st < 200 else CONFIRMED, True)
        if request.method == "INVITE":
            d.invite_cseq = request.cseq.num
        cs = request.contact
        if cs and cs[0] != "*":
            d.local_contact = str(cs[0])
        return d

    @staticmethod
    def uas(request, response, secure=None):
        st = response.status
        if st < 101 or st >= 300:
            raise DialogError("dialog needs a 101-299 response")
        lt = response.to.tag if response.to is not None else None
        if lt is None:
            raise DialogError("response without To tag")
        if secure is None:
            secure = _is_secure(request)
        d = Dialog(request.call_id, lt, request.from_.tag,
                   _strip_tag(request.to), _strip_tag(request.from_),
                   _contact_uri(request) or request.uri.copy(),
                   _route_set(request, False), None, request.cseq.num, secure,
                   EARLY if st < 200 else CONFIRMED, False)
        cs = response.contact
        if cs and cs[0] != "*":
            d.local_contact = str(cs[0])
        return d

    @staticmethod
    def from_notify(subscribe, notify, secure=None):
        """The subscriber's dialog created by a NOTIFY (RFC 6665 §4.1.2.4),
        which may arrive before the SUBSCRIBE's 2xx, or from another fork:
        the remote tag is the NOTIFY's From tag, the route set its
        Record-Route as received, the target its Contact."""
        if secure is None:
            secure = _is_secure(subscribe)
        d = Dialog(subscribe.call_id, subscribe.from_.tag, notify.from_.tag,
                   _strip_tag(subscribe.from_), _strip_tag(subscribe.to),
                   _contact_uri(notify) or subscribe.uri.copy(),
                   _route_set(notify, False), subscribe.cseq.num, notify.cseq.num, secure,
                   CONFIRMED, True)
        cs = subscribe.contact
        if cs and cs[0] != "*":
            d.local_contact = str(cs[0])
        return d

    def confirm(self, response):
        """Early -> confirmed on a 2xx; the UAC recomputes the route set and
        takes the remote target from the 2xx (§13.2.2.4)."""
        if self.state == TERMINATED:
            raise DialogError("dialog terminated")
        if self.state == EARLY and self.is_uac:
            self.route_set = _route_set(response, True)
        t = _contact_uri(response)
        if t is not None and self.is_uac:
            self.remote_target = t
        self.state = CONFIRMED

    # ---- target refresh / CSeq ----
    def refresh_target(self, msg):
        t = _contact_uri(msg)
        if t is not None:
            self.remote_target = t

    def on_response(self, request, response):
        """UAC: a response to an in-dialog request we sent."""
        if 200 <= response.status < 300 and request.method in _TARGET_REFRESH:
            self.refresh_target(response)

    def on_sent_response(self, request, response):
        """UAS: we answered an in-dialog request."""
        if 200 <= response.status < 300 and request.method in _TARGET_REFRESH:
            self.refresh_target(request)

    def receive_request(self, req):
        """§12.2.2: None when in order, else (500, reason) to answer."""
        if req.method in _NO_CSEQ_CHECK:
            return None
        n = req.cseq.num
        if self.remote_cseq is not None and n < self.remote_cseq:
            return (500, "Out Of Order")
        self.remote_cseq = n
        return None

    # ---- building requests ----
    def next_hop(self):
        if self.route_set:
            return self.route_set[0].uri
        return self.remote_target

    def _base(self, method, cseq_num, rng, via):
        rs = self.route_set
        routes = []
        if not rs:
            ruri = self.remote_target.copy()
        elif rs[0].uri.lr:
            ruri = self.remote_target.copy()
            routes = [str(r) for r in rs]
        else:
            # strict routing §12.2.1.1: first route becomes the Request-URI
            ruri = rs[0].uri.copy()
            for name in ("method", "maddr", "ttl", "transport", "lr"):
                ruri.params.remove(name)
            ruri.headers = []
            routes = [str(r) for r in rs[1:]]
            routes.append("<%s>" % self.remote_target)
        req = Request(method, ruri)
        if via is not None:
            if rng is None:
                raise DialogError("via given without rng")
            req.add("Via", "SIP/2.0/%s %s;branch=%s%s;rport" %
                    (via[0].upper(), via[1], MAGIC, rng.token(8)))
        req.add("Max-Forwards", "70")
        frm = self.local_uri.copy()
        frm.tag = self.local_tag
        to = self.remote_uri.copy()
        to.tag = self.remote_tag
        req.add("From", str(frm))
        req.add("To", str(to))
        req.add("Call-ID", self.call_id)
        req.add("CSeq", "%d %s" % (cseq_num, method))
        for r in routes:
            req.add("Route", r)
        return req

    def create_request(self, method, rng=None, body=b"", content_type=None,
                       headers=(), via=None):
        if self.state == TERMINATED:
            raise DialogError("dialog terminated")
        if method in ("ACK", "CANCEL"):
            raise DialogError("use create_ack / create_cancel for " + method)
        if self.local_cseq is None:
            # UAS side, first request: any value below 2**31 (§12.2.1.1)
            self.local_cseq = (rng.randbelow(0x7FFF) + 1) if rng is not None else 1
        else:
            self.local_cseq += 1
        req = self._base(method, self.local_cseq, rng, via)
        if method == "INVITE":
            self.invite_cseq = self.local_cseq
        if self.local_contact is not None and method in ("INVITE", "UPDATE",
                                                          "SUBSCRIBE", "REFER",
                                                          "NOTIFY"):
            req.add("Contact", self.local_contact)
        for name, value in headers:
            req.add(name, value)
        if body:
            if content_type:
                req.add("Content-Type", content_type)
            req.body = body if isinstance(body, bytes) else body.encode()
        return req

    def create_ack(self, cseq_num=None, rng=None, body=b"", content_type=None,
                   via=None):
        """ACK for a 2xx to INVITE (§13.2.2.4): new transaction-less request
        with the INVITE's CSeq number and the dialog's route set."""
        if cseq_num is None:
            cseq_num = self.invite_cseq
        if cseq_num is None:
            raise DialogError("no INVITE to acknowledge")
        req = self._base("ACK", cseq_num, rng, via)
        if body:
            if content_type:
                req.add("Content-Type", content_type)
            req.body = body if isinstance(body, bytes) else body.encode()
        return req


def create_cancel(invite):
    """CANCEL for a sent INVITE (§9.1): same Request-URI, top Via (branch),
    Call-ID, To, From, CSeq number and Route headers."""
    c = Request("CANCEL", invite.uri.copy())
    c.add("Via", str(invite.top_via))
    c.add("Max-Forwards", "70")
    for e in invite.headers:
        if e[0] in ("from", "to", "call-id"):
            c.headers.append([e[0], e[1], e[2], 0])
    c.add("CSeq", "%d CANCEL" % invite.cseq.num)
    for e in invite.headers:
        if e[0] == "route":
            c.headers.append([e[0], e[1], e[2], 0])
    return c


def uas_response_headers(request, response):
    """Copy Record-Route from a dialog-creating request into the response
    (§12.1.1) unless the response already carries it."""
    if response.get("record-route") is None:
        for v in request.get_all("record-route"):
            response.add("Record-Route", v)


class DialogTable:
    def __init__(self, max_dialogs=MAX_DIALOGS):
        self.max_dialogs = max_dialogs
        self._d = {}
        self.peak = 0             # most dialogs held at once
        self.stats = {"overflow": 0}

    def __len__(self):
        return len(self._d)

    def dialogs(self):
        return list(self._d.values())

    def add(self, d):
        k = d.id
        if k in self._d:
            raise DialogError("dialog exists: %r" % (k,))
        if len(self._d) >= self.max_dialogs:
            self.stats["overflow"] += 1
            raise DialogTableFull("dialog table full (%d)" % self.max_dialogs)
        self._d[k] = d
        if len(self._d) > self.peak:
            self.peak = len(self._d)
        return d

    def find(self, call_id, local_tag, remote_tag):
        return self._d.get((call_id, local_tag, remote_tag))

    def remove(self, d):
        if self._d.get(d.id) is d:
            del self._d[d.id]
        d.state = TERMINATED

    def match_request(self, req):
        f = req.from_
        t = req.to
        if f is None or t is None or t.tag is None:
            return None
        return self._d.get((req.call_id, t.tag, f.tag))

    def match_response(self, resp):
        f = resp.from_
        t = resp.to
        if f is None or t is None:
            return None
        return self._d.get((resp.call_id, f.tag, t.tag))

    def early_dialogs(self, call_id, local_tag):
        return [d for d in self._d.values()
                if d.call_id == call_id and d.local_tag == local_tag and
                d.state == EARLY]

    def terminate_early(self, call_id, local_tag, keep=None):
        out = []
        for d in self.early_dialogs(call_id, local_tag):
            if d is not keep:
                self.remove(d)
                out.append(d)
        return out

    def on_uac_response(self, request, response):
        st = response.status
        if st < 101:
            return (None, False)
        if st >= 300:
            self.terminate_early(request.call_id, request.from_.tag)
            return (None, False)
        d = self.match_response(response)
        if d is not None:
            if st >= 200 and d.state == EARLY:
                d.confirm(response)
            return (d, False)
        if response.to is None or response.to.tag is None:
            if st >= 200:
                raise DialogError("2xx without To tag")
            return (None, False)
        d = Dialog.uac(request, response)
        self.add(d)
        return (d, True)
