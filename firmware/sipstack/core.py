"""The appliance's SIP core: drives the transports and the server transactions,
and answers requests addressed to the appliance itself.

    core = SipCore(app, transports)   # transports: firmware.sipstack.transport.Transports
    core.start()                      # spawns the socket tasks and the timer task

Layers (DESIGN.md principle 2): transport (firmware/sipstack/transport.py) →
transactions (sip.transaction.TransactionLayer, sans-I/O; this module feeds
it parsed messages, sends what take_outgoing() returns, and runs one timer
task on the layer's next_deadline()/on_timer(now) merged with the TU timers)
→ dispatcher → transaction user (TU).

The transaction user plugs in through the router (firmware/sipstack/router.py):

    core.router.add(module)   module.name, .priority, .methods, .take(sreq) -> bool
        take(sreq) is offered each new request of its methods that passed the
        checks below, in priority order, until one module takes it.  sreq is
        a ServerRequest:
            .request (sip.message.Request; None once a final was sent)
            .source (transport.Source)
            .method  .to_tag  .cancelled  .final_sent
            .respond(status, reason=None, headers=None, body=b"",
                     content_type=None) -> Response    (any number of 1xx, one
                     final; later calls after a final are ignored and counted)
            .on_cancel = fn(sreq)  set by an INVITE's owner to learn of CANCEL
                     (the core has already answered the CANCEL with 200);
                     when unset the core answers the INVITE 487 itself.
            .on_no_ack = fn(now)  set by an INVITE's owner: its 2xx was
                     never ACKed (Timer H)
        The module may answer at once or later (keep sreq; use
        core.call_later(ms, fn) for timers).  A request still unanswered
        after PROCEEDING_LIMIT_MS (INVITE: 480) or NON_INVITE_LIMIT_MS
        (others: 500) is answered by the core.  A module that raises gets a
        500 sent for it and the error logged; the core keeps serving.
        ACKs for 2xx responses (no transaction) go to the modules of "ACK".
    core.call_later(ms, fn) -> Timer (.cancel()); bounded by MAX_TU_TIMERS
    core.set_domain(name) / core.add_local_host(host) / core.is_local_uri(uri)
    core.supported (option tags accepted in Require), core.allow()
    core.send_response(req, src, status, ...)  stateless answer
    Client transactions: the owner sets txn.user = fn(resp, now) when it sends;
        every response of the transaction goes to it, and a 408 is made
        for it on Timer B/F.  A response with no transaction is offered to
        the modules' stray_response(resp, src) (the dialog module re-ACKs a
        retransmitted 2xx), else counted.
    core.stat_sections.append((title, fn))   more lines for show sip statistics
    core.watch(fn)   fn(kind, dest, now) for every client transaction:
        kind "response" (a response came back from dest) or "transaction timeout" (Timer
        B/F); the survivability monitor's passive signals (MAX_WATCHERS)

Request dispatch order for a new request (RFC 3261 §8.2; documented choices):
  0. the router's screen (security: allow list, blocked sources, rate limit)
  1. missing Via/From/To/Call-ID/CSeq → 400 "Missing ..." (stateless); the
     transaction key is computed here, once, and handed to the layer
  2. method no module takes: known SIP method → 405, unknown → 501; both
     with Allow
  3. Request-URI scheme other than sip (and tel) → 416
     (sips is refused too: there is no TLS transport)
  4. core.relay (the outbound proxy, firmware/proxy/outbound.py, when a peer
     is configured) may take a request routed through us (our Route on top,
     or a Request-URI not ours) from a phone or the peer; ACKs are offered
     to it first too.  Otherwise a Request-URI host not one of ours (domain,
     host name, bound and loopback addresses, add_local_host()):
     Max-Forwards 0 → 483, otherwise 404.  Requests addressed to us are
     answered even with Max-Forwards 0 (RFC 4475 zeromf).
  5. Require (and Proxy-Require: the appliance is also the phones' first-hop
     proxy) with option tags not in `supported` → 420 with Unsupported
  6. INVITE: body with a Content-Type other than application/sdp (or a
     Content-Encoding other than identity) → 415 with Accept; Accept present
     without application/sdp → 406
  7. the router: the first module that takes it (none: 481 in a dialog, else 404).
The built-in module, last in the table: OPTIONS → 200 with Allow,
Accept, Accept-Language, Supported; REGISTER → 401 with a Digest challenge
(realm = domain; no stations are configured, so every credential fails alike;
a malformed Digest header → 400); INVITE → 100 Trying, then 480 after
`invite_no_answer_ms` (or 487 on CANCEL); BYE → 481.
A request that reuses the branch of a live transaction but is a different
request (other Call-ID, CSeq or From tag) is answered statelessly and counted
("branch_collisions") instead of getting the other request's response.
ACK and CANCEL are handled by the transaction layer: CANCEL → 200 and 487 to
the pending INVITE, or 481 when none matches.

Bounds: MAX_SERVER_TRANSACTIONS (the layer's table; beyond: stateless 503
with Retry-After),
MAX_TU_TIMERS (beyond: call_later raises TimerTableFull).  Every drop is
counted; `show sip statistics` lists the counters of both layers.
"""
from firmware.compat import const
from firmware.sched import TimeoutError, RESTART, Event
from firmware.sipstack.transport import Source
from sip.message import Response, validate_request
from sip.errors import SipParseError
from sip.transaction import TransactionLayer, TransactionError, _req_key
from sip.transport import is_broadcast, is_ip, stateless_response, response_address
from firmware.sipstack.router import Router, BUILT_IN
from sip.timers import TimerTable, TimerTableFull

MAX_SERVER_TRANSACTIONS = const(128)
# Up to three TU timers per call (the INVITE's guard and no-answer timers,
# the B2BUA's ring timeout), plus the registrar's and security's deadlines.
MAX_TU_TIMERS = const(1024)
MAX_WATCHERS = const(4)        # core.watchers (beyond: watch() raises ValueError)
INVITE_NO_ANSWER_MS = const(3000)
PROCEEDING_LIMIT_MS = const(180000)   # a TU that never answers an INVITE gets 480
NON_INVITE_LIMIT_MS = const(30000)    # ... a non-INVITE: 500 (before Timer F fires)

_KNOWN_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER",
                  "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER",
                  "MESSAGE", "UPDATE")
_SDP = "application/sdp"

CORE_COUNTERS = ("requests_dispatched", "branch_collisions", "stray_acks", "stray_responses",
                 "dropped_broadcast_via", "cancels", "cancels_unmatched",
                 "tu_errors", "late_responses", "invite_no_ack",
                 "responses_sent", "tu_no_answer", "bad_requests")


class ServerRequest:
    """A server transaction as the TU sees it (txn.user of the layer's
    transaction points back here)."""

    def __init__(self, core, request, source, txn):
        self.core = core
        self.request = request
        self.source = source
        self.method = request.method
        self.txn = txn
        self.to_tag = core.app.rng.token(6)
        self.final_sent = False
        self.cancelled = False
        self.on_cancel = None
        self.on_no_ack = None     # fn() when our 2xx was never ACKed (Timer H)
        self.timers = []          # TU timers tied to this request (cancelled at final)
        self.stateless = False    # answered without a transaction (branch collision)
        self.proxied = False      # relayed by the outbound proxy: downstream answers it
        self.ident = _ident(request)
        if txn is not None:
            txn.user = self

    @property
    def state(self):
        return self.txn.state if self.txn is not None else None

    def respond(self, status, reason=None, headers=None, body=b"", content_type=None):
        """Send a response through the server transaction; None (and counted)
        when a final was already sent or the transaction has ended."""
        core = self.core
        if self.final_sent or (self.txn is None and not self.stateless):
            core.count("late_responses")
            return None
        r = Response.for_request(self.request, status, reason,
                                 None if status == 100 else self.to_tag)
        if headers:
            for name, value in headers:
                r.add(name, value)
        if body:
            r.body = body if isinstance(body, bytes) else body.encode()
            if content_type:
                r.set("Content-Type", content_type)
        r.set("Server", core.server_header)
        if self.stateless:
            core.count("responses_sent")
            core.transports.send(r.serialize(), core.response_dest(self.request, self.source))
            if status >= 200:
                self.final_sent = True
                for t in self.timers:
                    t.cancel()
            return r
        try:
            events = core.layer.respond(self.txn, r, core.app.clock.now())
        except TransactionError:
            core.count("late_responses")
            return None
        core.count("responses_sent")
        if status >= 200:
            self.final_sent = True
            for t in self.timers:
                t.cancel()
            self.timers = []
            self.request = None     # memory: the transaction keeps the response bytes
        core._events(events)
        core._flush()
        return r

    def forward(self, resp):
        """A proxy relays resp (from downstream, its own Via removed) through
        this server transaction; a 2xx after the final (an INVITE's 2xx
        retransmitted by the UAS) goes statelessly, as §16.7 step 10 asks."""
        core = self.core
        done = resp.status >= 200
        if self.txn is None or (self.final_sent and done):
            if self.method == "INVITE" and resp.status // 100 == 2:
                core.count("responses_sent")
                core.transports.send(resp.serialize(), core.response_dest(resp, self.source))
                return resp
            core.count("late_responses")
            return None
        try:
            events = core.layer.respond(self.txn, resp, core.app.clock.now(), False)
        except TransactionError:
            core.count("late_responses")
            return None
        core.count("responses_sent")
        if done:
            self.final_sent = True
            for t in self.timers:
                t.cancel()
            self.timers = []
        core._events(events)
        core._flush()
        return resp

    def __repr__(self):
        return "<ServerRequest %s %s>" % (self.method, self.ident[0])


class SipCore:
    def __init__(self, app, transports):
        self.app = app
        self.transports = transports
        transports.on_message = self.on_message
        self.layer = TransactionLayer(app.rng, max_transactions=MAX_SERVER_TRANSACTIONS)
        self.router = Router()
        self.timers = TimerTable(MAX_TU_TIMERS)
        self.invite_no_answer_ms = INVITE_NO_ANSWER_MS
        self.supported = []
        self.stat_sections = []   # (title, fn() -> [(name, value)]) for show sip statistics
        self.watchers = []        # fn(kind, dest, now): client transaction outcomes
        self.relay = None         # the outbound proxy: foreign(sreq) -> bool, before step 4
        self.domain = (getattr(app, "sip_domain", None) or "localdomain").lower()
        self.local_hosts = set()
        self.server_header = "branch-voice"
        self.counters = {}
        for c in CORE_COUNTERS:
            self.counters[c] = 0
        self._wake = Event(app.sched)
        self._digest = None
        self.task = None
        try:
            from firmware import version
            self.server_header = "%s/%s" % (version.PRODUCT.replace(" ", "-"), version.VERSION)
        except Exception:
            pass
        self.router.add(BuiltIn(self))
        self._local_defaults()

    # -- configuration
    def set_domain(self, name):
        self.domain = name.lower()
        self._digest = None
        self._local_defaults()

    def add_local_host(self, host):
        self.local_hosts.add(host.lower().strip("[]"))

    def _local_defaults(self):
        for h in (self.domain, getattr(self.app, "hostname", None), "localhost",
                  "127.0.0.1", "::1", self.transports.host):
            if h and h not in ("0.0.0.0", "::"):
                self.add_local_host(h)

    def is_local_uri(self, uri):
        return (uri.host or "").lower().strip("[]") in self.local_hosts

    def count(self, name, n=1):
        self.counters[name] = self.counters.get(name, 0) + n

    # -- TU hook
    def allow(self):
        ms = [m for m in self.router.methods() if m != "ACK"]
        for m in ("ACK", "CANCEL"):
            ms.append(m)
        order = list(_KNOWN_METHODS)
        ms.sort(key=lambda m: order.index(m) if m in order else 99)
        return ", ".join(ms)

    def call_later(self, ms, fn):
        t = self.timers.add(self.app.clock.now() + ms, fn)
        self._wake.set()
        return t

    def watch(self, fn):
        if len(self.watchers) >= MAX_WATCHERS:
            raise ValueError("more than %d SIP core watchers" % MAX_WATCHERS)
        self.watchers.append(fn)

    def _tell(self, kind, txn):
        dest = getattr(txn, "dest", None)
        if dest is None or not self.watchers:
            return
        now = self.app.clock.now()
        for fn in self.watchers:
            try:
                fn(kind, (dest[0], dest[1]), now)
            except Exception as e:
                self.count("tu_errors")
                self.app.log.write("error", "SIP watcher failed: %s: %s" % (type(e).__name__, e))

    def kick(self):
        """Something outside a message or timer event queued output or a
        timer (a usage driven by an owner): send it, recompute the deadline."""
        self._flush()

    # -- running
    def start(self):
        self.transports.start()
        self.task = self.app.sched.spawn(self._timer_task, "sip-timers", RESTART)

    async def _timer_task(self):
        while True:
            d = self.next_deadline()
            self._wake.clear()
            if d is None:
                await self._wake.wait()
            else:
                wait = d - self.app.clock.now()
                if wait > 0:
                    try:
                        await self._wake.wait(wait)
                    except TimeoutError:
                        pass
            self.on_timer(self.app.clock.now())

    def next_deadline(self):
        d = self.layer.next_deadline()
        t = self.timers.next_deadline()
        if t is not None and (d is None or t < d):
            d = t
        return d

    def on_timer(self, now):
        self._events(self.layer.on_timer(now))
        self._flush()
        for t in self.timers.due(now):
            try:
                t.fire(now)
            except Exception as e:
                self.count("tu_errors")
                self.app.log.write("error", "SIP timer callback failed: %s: %s" % (
                    type(e).__name__, e))
        self._flush()

    def _flush(self):
        tp = self.transports
        for data, addr, transport in self.layer.take_outgoing():
            tp.send(data, Source(transport.upper(), addr))
        self._wake.set()

    # -- addressing
    def response_dest(self, req, src):
        """RFC 3261 §18.2.2 with RFC 3581: the connection for TCP, else the
        Via's received/rport (stamped by the transport) or sent-by."""
        if src.transport != "UDP":
            return src
        a = response_address(req)
        if a is None or not is_ip(a[0]):
            return Source("UDP", src.addr)
        return Source("UDP", (a[0].strip("[]"), a[1]))

    def send_response(self, req, src, status, reason=None, headers=()):
        """A stateless response (no transaction; the To tag is stable)."""
        r = stateless_response(req, status, reason, headers)
        r.set("Server", self.server_header)
        self.count("responses_sent")
        self.transports.send(r.serialize(), self.response_dest(req, src))
        return r

    # -- receiving
    def on_message(self, msg, src):
        key = None
        if msg.is_request:
            verdict = self.router.screen(msg, src)
            if verdict is not None:
                # security: allow list, blocked source, rate limit (counted there)
                if verdict != "drop" and msg.method != "ACK" and msg.get("via") is not None:
                    self.send_response(msg, src, verdict[0], verdict[1])
                return
            bad = validate_request(msg)
            if bad is None and msg.top_via is None:
                bad = (400, "Missing Via")
            if bad is not None:
                self.count("bad_requests")
                if msg.method != "ACK" and msg.get("via") is not None:
                    self.send_response(msg, src, bad[0], bad[1])
                return
            key = _req_key(msg)       # once: the collision check and the layer share it
            if msg.method != "ACK" and self._collides(msg, key):
                # a different request reusing a live transaction's branch (a
                # client bug, and common in test corpora): answer it without
                # a transaction instead of replaying the other one's response
                self.count("branch_collisions")
                sreq = ServerRequest(self, msg, src, None)
                sreq.stateless = True
                self._dispatch(sreq)
                return
        events = self.layer.receive(msg, src.addr, src.transport, self.app.clock.now(), key)
        self._events(events, src)
        self._flush()

    def _collides(self, msg, key):
        txn = self.layer.find(key)
        if txn is None:
            return False
        sreq = txn.user
        if not isinstance(sreq, ServerRequest):
            return False
        return sreq.ident != _ident(msg)

    def _events(self, events, src=None):
        for kind, txn, msg in events:
            if kind == "request":
                if msg.method == "ACK":
                    self._ack(msg, src, txn)
                elif msg.method == "CANCEL":
                    self._cancel(ServerRequest(self, msg, src, txn))
                else:
                    self._dispatch(ServerRequest(self, msg, src, txn))
            elif kind == "response":
                self._response(msg, src, txn)
            elif kind == "timeout":
                self._timeout(txn)
            elif kind == "terminated":
                sreq = txn.user
                if isinstance(sreq, ServerRequest):
                    for t in sreq.timers:
                        t.cancel()
                    sreq.timers = []
                    sreq.txn = None if sreq.final_sent else sreq.txn

    def _response(self, resp, src, txn):
        try:
            vias = resp.via
        except SipParseError:
            vias = []
        for v in vias:
            if is_broadcast(v.received or v.host):
                self.count("dropped_broadcast_via")
                return
        owner = txn.user if txn is not None else None
        if txn is not None:
            self._tell("response", txn)
        if owner is not None and callable(owner):
            # a client response always goes to its transaction's owner
            try:
                owner(resp, self.app.clock.now())
            except Exception as e:
                self.count("tu_errors")
                self.app.log.write("error", "SIP response handler failed: %s: %s" % (
                    type(e).__name__, e))
            return
        if txn is None and self.router.stray_response(resp, src):
            return
        self.count("stray_responses")

    def _timeout(self, txn):
        """Timer B/F (the owner gets a 408) or H (our 2xx never ACKed)."""
        owner = txn.user
        if txn.kind in ("ict", "nict"):
            self._tell("transaction timeout", txn)
            if owner is not None and callable(owner) and txn.request is not None:
                try:
                    owner(Response.for_request(txn.request, 408), self.app.clock.now())
                except Exception as e:
                    self.count("tu_errors")
                    self.app.log.write("error", "SIP timeout handler failed: %s: %s" % (
                        type(e).__name__, e))
            return
        if txn.kind == "ist":
            self.count("invite_no_ack")
            fn = getattr(owner, "on_no_ack", None)
            if fn is not None:
                try:
                    fn(self.app.clock.now())
                except Exception as e:
                    self.count("tu_errors")
                    self.app.log.write("error", "SIP no-ACK handler failed: %s: %s" % (
                        type(e).__name__, e))

    def _ack(self, req, src, txn):
        relay = self.relay
        if relay is not None or self.router.handles("ACK"):
            sreq = ServerRequest(self, req, src, None)
            sreq.final_sent = True
            if relay is not None and relay.foreign(sreq):
                return          # an ACK for a 2xx the outbound proxy relayed
            try:
                if self.router.route(sreq) is not None:
                    return
            except Exception as e:
                self._tu_error(sreq, e)
                return
        self.count("stray_acks")

    def _cancel(self, creq):
        self.count("cancels")
        inv = creq.txn.invite_txn
        isreq = inv.user if inv is not None else None
        if not isinstance(isreq, ServerRequest):
            self.count("cancels_unmatched")
            creq.respond(481)
            return
        creq.to_tag = isreq.to_tag
        creq.respond(200)
        if not isreq.final_sent and not isreq.cancelled:
            isreq.cancelled = True
            fn = isreq.on_cancel
            if fn is None:
                isreq.respond(487)
            else:
                try:
                    fn(isreq)
                except Exception as e:
                    self._tu_error(isreq, e)

    def _tu_error(self, sreq, e):
        self.count("tu_errors")
        self.app.log.write("error", "SIP %s handler failed: %s: %s" % (
            sreq.method, type(e).__name__, e))
        if not sreq.final_sent:
            sreq.respond(500)

    def _guard(self, sreq):
        if not sreq.final_sent:
            self.count("tu_no_answer")
            sreq.respond(480 if sreq.method == "INVITE" else 500)

    # -- dispatch of a new request to the TU
    def _dispatch(self, tx):
        req = tx.request
        method = req.method
        try:
            uri = req.uri
            if method == "ACK" or not self.router.handles(method):
                tx.respond(405 if method in _KNOWN_METHODS else 501, None,
                           (("Allow", self.allow()),))
                return
            if uri.scheme not in ("sip", "tel"):
                tx.respond(416)
                return
            relay = self.relay
            if relay is not None and relay.foreign(tx):
                return          # the outbound proxy relays it (routed through us)
            if uri.scheme == "sip" and not self.is_local_uri(uri):
                mf = req.max_forwards
                tx.respond(483 if mf == 0 else 404)
                return
            bad = [t for t in req.require + req.proxy_require if t not in self.supported]
            if bad:
                tx.respond(420, None, (("Unsupported", ", ".join(bad)),))
                return
            if method == "INVITE":
                if req.body:
                    ct = req.content_type
                    enc = [e.lower() for e in req.values("content-encoding")]
                    if ct != _SDP or [e for e in enc if e != "identity"]:
                        tx.respond(415, None, (("Accept", _SDP), ("Accept-Encoding", "identity")))
                        return
                if req.get("accept") is not None and not _accepts(req.values("accept"), _SDP):
                    tx.respond(406, None, (("Accept", _SDP),))
                    return
        except SipParseError as e:
            tx.respond(e.status, e.reason_phrase)
            return
        self.count("requests_dispatched")
        try:
            if self.router.route(tx) is None:
                # every module of this method left it
                tx.respond(481 if req.to is not None and req.to.tag else 404)
                return
        except Exception as e:
            self._tu_error(tx, e)
            return
        if not tx.final_sent and not tx.proxied:
            try:
                tx.timers.append(self.call_later(
                    PROCEEDING_LIMIT_MS if method == "INVITE" else NON_INVITE_LIMIT_MS,
                    lambda: self._guard(tx)))
            except TimerTableFull:
                self._guard(tx)

    # -- the DigestServer for the built-in REGISTER answer
    def digest(self):
        if self._digest is None:
            from sip.digest import DigestServer
            self._digest = DigestServer(self.domain, self.app.rng.token(16), self.app.rng)
        return self._digest

    def statistics(self):
        tp = self.transports
        lines = ["SIP statistics:",
                 "  Transport: UDP/TCP port %s, IPv6 %s, DSCP %s, TCP connections %d/%d" % (
                     tp.port, "yes" if tp.ipv6 else "no",
                     "-" if tp.dscp is None else tp.dscp, len(tp.conns), tp.max_connections),
                 "  Transactions: %d/%d (peak %d)" % (len(self.layer), self.layer.max_transactions,
                                                      self.layer.peak)]
        for group in (tp.counters, self.layer.stats, self.counters):
            for name in sorted(group):
                lines.append("  %-32s %d" % (name.replace("_", " "), group[name]))
        for title, fn in self.stat_sections:
            lines.append(title + ":")
            for name, value in fn():
                lines.append("  %-32s %s" % (name, value))
        return "\n".join(lines)


def _ident(req):
    f = req.from_
    return (req.call_id, req.cseq.num, f.tag if f is not None else None)


def _accepts(values, mtype):
    major = mtype.split("/")[0] + "/*"
    for v in values:
        t = v.split(";", 1)[0].strip().lower()
        if t in (mtype, major, "*/*"):
            return True
    return False


# --- the built-in module: last in the table ---------------------------------

class BuiltIn:
    """OPTIONS, and what the appliance answers until a service takes the
    method: REGISTER 401, INVITE 480, BYE 481."""
    name = "built-in"
    priority = BUILT_IN
    methods = ("OPTIONS", "REGISTER", "INVITE", "BYE")

    def __init__(self, core):
        self.core = core

    def take(self, sreq):
        _BUILT_IN[sreq.method](sreq)
        return True


def _options(sreq):
    core = sreq.core
    hdrs = [("Allow", core.allow()), ("Accept", _SDP), ("Accept-Encoding", "identity"),
            ("Accept-Language", "en")]
    hdrs.append(("Supported", ", ".join(core.supported)))   # may be empty (§20.37)
    sreq.respond(200, None, hdrs)


def _register(sreq):
    core = sreq.core
    from sip import digest
    now = core.app.clock.now()
    srv = core.digest()
    auth = sreq.request.get("authorization")
    if auth is not None:
        res = srv.verify("REGISTER", auth, lambda user, realm, alg: None, now,
                         uri=str(sreq.request.uri))
        if res.outcome == digest.MALFORMED:
            sreq.respond(400, "Malformed Authorization header")
            return
    sreq.respond(401, None, [("WWW-Authenticate", c) for c in srv.challenge(now)])


def _invite(sreq):
    core = sreq.core
    sreq.respond(100)
    sreq.timers.append(core.call_later(core.invite_no_answer_ms,
                                       lambda: sreq.respond(480)))


def _bye(sreq):
    sreq.respond(481)


_BUILT_IN = {"OPTIONS": _options, "REGISTER": _register, "INVITE": _invite, "BYE": _bye}
