"""Simulated SIP phones for whole-appliance simulations, on both interpreters.

Each phone is a SIP user agent with its own UDP socket on the simulated
network (tests/sim/simnet.py SimNetwork; a loopback socket when PhoneNet has
no network), built from the sans-I/O modules in sip/ (TransactionLayer,
DialogTable, DigestClient, SDP offer/answer).  All phones of a PhoneNet live in one scheduler (the
appliance's `app.sched`, or any Scheduler) and keep every timer on its
clock: nothing reads the wall clock, and every random choice (tags, branches,
Call-IDs, refresh jitter, packet loss) comes from sources seeded from the
PhoneNet's seed.

    net = PhoneNet(app.sched, seed=7, loss=0.1, network=app.network)  # drop 10 % each way
    p = net.add("2001", "Secret-2001", "branch.example.com", ("127.0.0.1", app.sip_port))
    net.start()                 # one reader task per phone + one timer task
                                # (net.tasks_needed(); raise sched.max_tasks
                                # when the appliance's table has no room)
    p.register()                # REGISTER (digest on 401/407), refresh at
                                # 50-80 % of the granted expiry
    c = p.call("2002")          # INVITE sip:2002@domain to the server
    p.hold(c) / p.resume(c)     # re-INVITE with a=sendonly / a=sendrecv
    p.hangup(c)                 # CANCEL, reject (603) or BYE, as the state needs
    p.unregister()              # REGISTER Expires: 0
    net.close()

Addresses: phone i binds 127.0.1.<i+1> (hosts="distinct", the default: each
phone is its own source IP, as on a LAN; on a SimNetwork each is a host named
by that address) or 127.0.0.1 (hosts="shared"), on an ephemeral port (the
network's next one; on real sockets, CPython: getsockname; MicroPython has
none: a port drawn from the seeded source, retried when taken).

Phone
    p.user p.password p.auth_user p.domain p.server p.host p.port p.contact
    p.expires (requested, default 600; None: no Expires header, the server's
    default applies; a 423 raises it to Min-Expires)  p.refresh (fractions,
    default (0.5, 0.8))  p.retry_ms (after a failed REGISTER, +0-50 %
    jitter)  p.max_auth_tries (digest retries per request, default 2; a
    refresh first reuses the last challenge with the next nc)
    p.registered (bool: a 200 listed our Contact and it has not expired)
    p.reg_state in ("idle", "registering", "registered", "failed")
    p.granted (s, last granted expiry)
    Incoming INVITEs: p.on_incoming(p, call) -> ("answer", ring_ms) |
        ("reject", status) | ("ring",) (ring until CANCEL or hangup) | None
        (defaults: p.busy -> reject p.busy_status (486); more than
        p.max_calls calls -> 486; else answer after p.ring_ms, or just ring
        when ring_ms is None).  The phone sends 180 (with a To tag) at once.
    p.answer(call) / p.reject(call, status)  by hand
    p.hangup(call): a UAS that has not yet got the ACK for its 2xx sends
        its BYE once the ACK (or Timer L) comes (RFC 3261 §15)
    p.hangup_all()   p.call_later(ms, fn, arg, name) -> entry (fn(arg) on
        the phone's clock; p.cancel_timer(entry))
    p.on_event(p, call_or_None, event): "registered", "register_failed",
        "unregistered"; "incoming", "ringing", "answered", "confirmed" (UAS:
        ACK for our 2xx), "failed", "cancelled", "ended", "bye_done", "held",
        "resumed", "hold_failed", "remote_hold", "remote_resume", "rejected"
    p.counters  dict of counters: those in COUNTERS below start at 0;
        per-status and rarer ones ("calls_failed_486", "reg_failed_403",
        "bye_failed_481", "reg_423", "late_2xx" ...) appear on first use
    p.leaks() -> {"transactions", "dialogs", "calls", "timers"}: table sizes
        (the registration refresh timer is not counted: it lives as long as
        the registration)
    p.errors  [text]: exceptions raised inside the phone (a phone bug); tests
        assert it stays empty
    p.trace   when PhoneNet(trace=N): the last N datagrams as (ms, dir,
        first line, Call-ID, CSeq); dir in tx, rx, tx-lost, rx-lost.
        p.trace_for(call_id) filters them.
    net.leaks() / net.counters() / net.errors(): sums over the phones

Call (the phone's view of one INVITE session)
    .role "uac" | "uas"   .state "calling" | "ringing" | "connected" |
    "terminated"   .remote (the other party's user part: To of our INVITE,
    From of an incoming one)  .call_id  .status (final INVITE status)
    .end_reason: "bye_sent", "bye_received", "cancelled" (we cancelled, 487),
    "cancelled_by_remote", "rejected", "failed" (status in .status),
    "ack_timeout", "reinvite_failed"; .bye_status (2xx, 481, 408 ... of our
    BYE, once known)  .held (we put it on hold)  .remote_held  .acked (UAS)
    .answered_at .ended_at  .history [(ms, event)]  .user (free slot)

Losses are applied at the phone's socket: `loss` on send, `rx_loss`
(default: the same) on receive, so a PhoneNet with loss=0.1 emulates a link
that drops 10 % of the datagrams in each direction between every phone and
the server.  Retransmissions are the transaction layer's (Timers A/E/G).

Bounds: MAX_TRANSACTIONS per phone's transaction layer, MAX_CALLS calls per phone (beyond: a local 503 for p.call(), 503 +
Retry-After for an incoming INVITE), the transaction layer's and dialog
table's own bounds, TRACE ring of PhoneNet(trace=N) entries, MAX_ERRORS
recorded errors.
"""
import heapq
import socket
import sys

from firmware.compat import Random, MICROPYTHON
from firmware.sched import Event, TimeoutError
from firmware.sipstack.transport import sockaddr, peer
from sip.message import parse, Request, Response
from sip.errors import SipError
from sip.transaction import TransactionLayer, TransactionError
from sip.transport import stamp_via
from sip.dialog import Dialog, DialogTable, DialogError, create_cancel, uas_response_headers
from sip.digest import DigestClient
from sip import sdp

MAX_CALLS = 8
MAX_TRANSACTIONS = 32  # per phone (a phone has a few at a time; the layer's default is 256)
MAX_AUTH_TRIES = 2
MAX_ERRORS = 16
MAX_DATAGRAM = 4096    # MicroPython's recvfrom(n) allocates n bytes, even for EAGAIN
PORT_TRIES = 32
CODECS = ("PCMU", "PCMA", "telephone-event")
SDP_TYPE = "application/sdp"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"

CALLING = "calling"
RINGING = "ringing"
CONNECTED = "connected"
TERMINATED = "terminated"

_EAGAIN = (11, 35)

# documented counters (all start at 0; per-status ones are added on first use)
COUNTERS = (
    "tx", "rx", "tx_lost", "rx_lost", "parse_errors", "send_errors", "recv_errors",
    "stray_responses", "no_dialog", "errors",
    "reg_sent", "reg_challenged", "reg_ok", "reg_refreshes", "reg_failed", "unreg_ok",
    "unreg_failed", "reg_auth_retries",
    "calls_placed", "calls_ringing", "calls_answered", "calls_failed", "calls_cancelled",
    "calls_auth_retries", "cancels_sent", "calls_completed",
    "calls_incoming", "calls_in_answered", "calls_in_confirmed", "calls_in_rejected",
    "calls_in_cancelled", "calls_in_declined", "ack_timeouts",
    "byes_sent", "bye_ok", "bye_failed", "byes_received",
    "reinvites_sent", "reinvite_ok", "reinvite_failed", "reinvite_glare",
    "reinvites_received", "reinvites_rejected_491",
    # frequent per-status and rarer ones, preallocated so that a long run keeps
    # a fixed footprint (others appear on first use)
    "calls_failed_404", "calls_failed_408", "calls_failed_480", "calls_failed_486",
    "calls_failed_603", "calls_in_rejected_486", "calls_in_rejected_603",
    "reg_failed_401", "reg_failed_403", "reg_failed_408", "reg_423", "bye_failed_481",
    "cancels_received", "cancel_200", "byes_deferred", "late_2xx", "stray_acks",
)


def _dest_of(uri):
    return (uri.host.strip("[]"), uri.port or 5060)


def _errno(e):
    return e.args[0] if e.args else None


def _format_exc(e):
    if MICROPYTHON:
        import io
        s = io.StringIO()
        sys.print_exception(e, s)
        return s.getvalue()
    import traceback
    return "".join(traceback.format_exception(type(e), e, e.__traceback__))


def _summary(data):
    """(first line, Call-ID, CSeq) of a datagram, for traces."""
    try:
        text = bytes(data).decode()
    except UnicodeError:
        return ("?", "", "")
    end = text.find("\r\n\r\n")
    lines = (text if end < 0 else text[:end]).split("\r\n")
    cid = cseq = ""
    for ln in lines[1:]:
        i = ln.find(":")
        if i < 0:
            continue
        name = ln[:i].strip().lower()
        if name in ("call-id", "i"):
            cid = ln[i + 1:].strip()
        elif name == "cseq":
            cseq = ln[i + 1:].strip()
    return (lines[0], cid, cseq)


class Call:
    def __init__(self, phone, role):
        self.phone = phone
        self.role = role
        self.state = CALLING
        self.remote = None
        self.call_id = None
        self.local_tag = None
        self.dialog = None
        self.status = None
        self.end_reason = None
        self.bye_status = None
        self.held = False
        self.remote_held = False
        self.acked = False
        self.started_at = phone.now()
        self.answered_at = None
        self.ended_at = None
        self.history = []
        self.user = None
        # UAC
        self.ruri = None
        self.invite = None
        self.ict = None
        self.cseq = 1
        self.body = b""
        self.headers = ()
        self.auth_tries = 0
        self.provisional = False
        self.cancel_pending = False
        self.cancel_sent = False
        # UAS
        self.request = None
        self.ist = None
        self.offer = None
        self.timer = None
        # both
        self.reinvite_txn = None
        self.bye_pending = False
        self.sdp_version = 1
        self.rtp_port = phone.rtp_port

    def note(self, event):
        self.history.append((self.phone.now(), event))

    def __repr__(self):
        return "<Call %s %s %s->%s %s %s>" % (self.role, self.call_id, self.phone.user,
                                             self.remote, self.state, self.end_reason)


class Phone:
    def __init__(self, net, index, user, password, domain, server, host, rng,
                 auth_user=None, expires=600, loss=0.0, rx_loss=None):
        self.net = net
        self.index = index
        self.user = user
        self.password = password
        self.auth_user = auth_user or user
        self.domain = domain
        self.server = server
        self.host = host
        self.rng = rng
        self.loss_rng = Random(rng.next64())
        self.tx_loss = loss
        self.rx_loss = loss if rx_loss is None else rx_loss
        self.expires = expires
        self.refresh = (0.5, 0.8)
        self.retry_ms = 30000
        self.max_auth_tries = MAX_AUTH_TRIES
        self.ring_ms = 1000
        self.busy = False
        self.busy_status = 486
        self.max_calls = 1
        self.on_incoming = None
        self.on_event = None
        self.rtp_port = 40000 + 2 * index
        self.counters = {}
        for name in COUNTERS:
            self.counters[name] = 0
        self.errors = []
        self.calls = []
        self.dialogs = DialogTable()
        self.digest = DigestClient()
        self.digest.MAX_NONCES = 2      # a phone only reuses its latest challenges
        self.sock = None
        self.port = None
        self._bind()
        self.contact = "<sip:%s@%s:%d>" % (user, host, self.port)
        self.aor = "sip:%s@%s" % (user, domain)
        self.layer = TransactionLayer(rng, via_host=host, via_port=self.port,
                                      max_transactions=MAX_TRANSACTIONS)
        self._timers = []          # heap of [at, seq, fn, arg, name]; fn None = cancelled
        self._tseq = 0
        self.next_at = None        # earliest deadline (layer or own timers), for PhoneNet
        # registration
        self.reg_state = "idle"
        self.reg_wanted = False
        self.reg_call_id = "%s@%s" % (rng.token(8), host)
        self.reg_tag = rng.token(4)
        self.reg_cseq = 0
        self.reg_txn = None
        self.reg_challenge = None  # (header name, [challenge values])
        self.reg_auth_tries = 0
        self.reg_ok = False
        self.reg_expires_at = 0
        self.granted = None
        self._reg_timer = None
        self._reg_again = False
        # tracing
        n = net.trace
        self.trace = [] if n else None
        self._trace_max = n
        self._trace_pos = 0

    # ---- plumbing -------------------------------------------------------
    def _bind(self):
        network = self.net.network
        if network is not None:
            s = network.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((self.host, 0))
            self.sock = s
            self.port = s.getsockname()[1]
            return
        err = None
        for _ in range(PORT_TRIES):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            p = 20000 + self.net.port_rng.randbelow(40000) if MICROPYTHON else 0
            try:
                s.bind(sockaddr(self.host, p))
            except OSError as e:
                s.close()
                err = e
                continue
            if p == 0:
                p = s.getsockname()[1]
            s.setblocking(False)
            self.sock = s
            self.port = p
            return
        raise err

    def now(self):
        return self.net.clock.now()

    def count(self, name, n=1):
        self.counters[name] = self.counters.get(name, 0) + n

    def _emit(self, call, event):
        if call is not None:
            call.note(event)
        fn = self.on_event
        if fn is not None:
            fn(self, call, event)

    def _trace(self, direction, data):
        if self.trace is None:
            return
        e = (self.now(), direction) + _summary(data)
        if len(self.trace) < self._trace_max:
            self.trace.append(e)
        else:
            self.trace[self._trace_pos] = e
            self._trace_pos = (self._trace_pos + 1) % self._trace_max

    def trace_for(self, call_id):
        """Trace entries of one Call-ID, oldest first."""
        if self.trace is None:
            return []
        t = self.trace[self._trace_pos:] + self.trace[:self._trace_pos]
        return [e for e in t if e[3] == call_id]

    def _error(self, e):
        self.count("errors")
        if len(self.errors) < MAX_ERRORS:
            self.errors.append("phone %s at %d ms: %s" % (self.user, self.now(), _format_exc(e)))

    def _send(self, data, addr):
        self.count("tx")
        if self.tx_loss and self.loss_rng.random() < self.tx_loss:
            self.count("tx_lost")
            self._trace("tx-lost", data)
            return
        self._trace("tx", data)
        try:
            self.sock.sendto(data, self.net.sockaddr(addr))
        except OSError:
            self.count("send_errors")

    def _flush(self):
        for data, addr, tp in self.layer.take_outgoing():
            self._send(data, addr)
        self.net._changed(self)

    def datagram(self, data, src):
        """One datagram from the socket (after receive loss)."""
        self.count("rx")
        if self.rx_loss and self.loss_rng.random() < self.rx_loss:
            self.count("rx_lost")
            self._trace("rx-lost", data)
            return
        self._trace("rx", data)
        try:
            try:
                msg = parse(data)
            except SipError:
                self.count("parse_errors")
                return
            if msg.is_request:
                stamp_via(msg, src)
            for ev in self.layer.receive(msg, src, "UDP", self.now()):
                self._event(ev)
        except Exception as e:
            self._error(e)
        self._flush()

    def on_timer(self, now):
        try:
            for ev in self.layer.on_timer(now):
                self._event(ev)
            h = self._timers
            while h and h[0][0] <= now:
                e = heapq.heappop(h)
                fn = e[2]
                if fn is not None:
                    e[2] = None
                    fn(e[3])
        except Exception as e:
            self._error(e)
        self._flush()

    def next_deadline(self):
        best = self.layer.next_deadline()
        h = self._timers
        while h and h[0][2] is None:
            heapq.heappop(h)
        if h and (best is None or h[0][0] < best):
            best = h[0][0]
        return best

    def call_later(self, ms, fn, arg=None, name="call"):
        self._tseq += 1
        e = [self.now() + max(0, int(ms)), self._tseq, fn, arg, name]
        heapq.heappush(self._timers, e)
        self.net._changed(self)
        return e

    @staticmethod
    def cancel_timer(e):
        if e is not None:
            e[2] = None

    def leaks(self):
        timers = 0
        for e in self._timers:
            if e[2] is not None and e[4] != "register":
                timers += 1
        return {"transactions": len(self.layer), "dialogs": len(self.dialogs),
                "calls": len(self.calls), "timers": timers}

    def _send_request(self, req, dest, handler, ctx):
        """New client transaction; handler(txn, status, resp or None, ctx) gets
        every response and a 408 (resp None) on timeout.  None when the
        table is full (handler got a local 503)."""
        try:
            txn = self.layer.send_request(req, dest, "UDP", self.now())
        except TransactionError:
            self.count("errors_table_full")
            handler(None, 503, None, ctx)
            return None
        txn.user = (handler, ctx)
        return txn

    def _respond(self, txn, req, status, to_tag=None, headers=(), body=b"", reason=None):
        r = Response.for_request(req, status, reason, to_tag)
        for name, value in headers:
            r.add(name, value)
        if body:
            r.add("Content-Type", SDP_TYPE)
            r.body = body
        try:
            self.layer.respond(txn, r, self.now())
        except TransactionError:
            self.count("respond_errors")
        return r

    # ---- events from the transaction layer --------------------------------
    def _event(self, ev):
        kind, txn, msg = ev
        if kind == "request":
            self._request(txn, msg)
        elif kind == "response":
            if txn is None:
                self._stray(msg)
            elif txn.user is not None:
                h = txn.user
                h[0](txn, msg.status, msg, h[1])
        elif kind == "timeout" or kind == "transport_error":
            if txn.kind in ("ict", "nict"):
                if txn.user is not None:
                    h = txn.user
                    h[0](txn, 408, None, h[1])
            elif txn.kind == "ist" and txn.user is not None:
                self._no_ack(txn.user)

    def _stray(self, resp):
        cs = resp.cseq
        if cs is not None and cs.method == "INVITE" and 200 <= resp.status < 300:
            d = self.dialogs.match_response(resp)
            if d is not None:       # a 2xx retransmission after the transaction ended
                self.count("stray_2xx_acked")
                self.layer.send_stateless(d.create_ack(cs.num), _dest_of(d.next_hop()), "UDP")
                return
        self.count("stray_responses")

    def _request(self, txn, req):
        m = req.method
        if m == "ACK":
            self._ack_in(txn, req)
        elif m == "CANCEL":
            self._cancel_in(txn, req)
        elif req.to is not None and req.to.tag:
            self._in_dialog(txn, req)
        elif m == "INVITE":
            self._invite_in(txn, req)
        elif m == "OPTIONS":
            self._respond(txn, req, 200, self.rng.token(4), (("Allow", ALLOW),))
        elif m == "BYE":
            self.count("no_dialog")
            self._respond(txn, req, 481, self.rng.token(4))
        else:
            self._respond(txn, req, 405, self.rng.token(4), (("Allow", ALLOW),))

    # ---- registration -----------------------------------------------------
    @property
    def registered(self):
        return self.reg_ok and self.now() < self.reg_expires_at

    def register(self, expires=None):
        """Register (again) now; keeps refreshing until unregister()."""
        if expires is not None:
            self.expires = expires
        self.reg_wanted = True
        self.reg_state = "registering" if not self.registered else self.reg_state
        self._reg_start()
        self._flush()

    def unregister(self):
        self.reg_wanted = False
        self._reg_start()
        self._flush()

    def _reg_start(self):
        self.cancel_timer(self._reg_timer)
        self._reg_timer = None
        if self.reg_txn is not None:
            self._reg_again = True      # after the pending REGISTER
            return
        self.reg_auth_tries = 0
        self._reg_send()

    def _reg_timer_fired(self, arg):
        self._reg_timer = None
        if arg == "refresh":
            self.count("reg_refreshes")
        self._reg_start()

    def _reg_send(self):
        exp = self.expires if self.reg_wanted else 0
        self.reg_cseq += 1
        ruri = "sip:" + self.domain
        req = Request("REGISTER", ruri)
        req.add("Max-Forwards", "70")
        req.add("From", "<%s>;tag=%s" % (self.aor, self.reg_tag))
        req.add("To", "<%s>" % self.aor)
        req.add("Call-ID", self.reg_call_id)
        req.add("CSeq", "%d REGISTER" % self.reg_cseq)
        req.add("Contact", self.contact)
        if exp is not None:
            req.add("Expires", str(exp))
        req.add("User-Agent", "sipphone")
        if self.reg_challenge is not None:
            hdr, ch = self.reg_challenge
            try:
                val = self.digest.authorize("REGISTER", ruri, ch, self.auth_user,
                                            self.password, self.rng)
                req.add("Authorization" if hdr == "www-authenticate" else
                        "Proxy-Authorization", val)
            except SipError:
                self.reg_challenge = None
        self.count("reg_sent")
        self.reg_txn = self._send_request(req, self.server, self._reg_response, exp)

    def _granted(self, resp, requested):
        """Expiry granted to our Contact in a 2xx, or None when not listed."""
        hexp = resp.expires
        for c in resp.contact:
            if c == "*":
                continue
            u = c.uri
            if u.user == self.user and u.host == self.host and u.port == self.port:
                e = c.params.get("expires")
                if e is not None and e.isdigit():
                    return int(e)
                if hexp is not None:
                    return hexp
                return requested if requested is not None else 3600
        return None

    def _reg_response(self, txn, st, resp, exp):
        if st < 200:
            return
        self.reg_txn = None
        again = self._reg_again
        self._reg_again = False
        if st in (401, 407) and resp is not None:
            self.count("reg_challenged")
            hdr = "www-authenticate" if st == 401 else "proxy-authenticate"
            ch = resp.get_all(hdr)
            if ch and self.reg_auth_tries < self.max_auth_tries:
                self.reg_auth_tries += 1
                self.count("reg_auth_retries")
                self.reg_challenge = (hdr, ch)
                self._reg_send()
                return
        elif st == 423 and resp is not None and resp.min_expires and exp:
            self.expires = max(self.expires, resp.min_expires)
            self.count("reg_423")
            self._reg_send()
            return
        self.reg_auth_tries = 0
        if again and (exp == 0) == self.reg_wanted:
            self._reg_start()           # wanted state changed meanwhile
            return
        if 200 <= st < 300:
            if exp == 0:
                self.reg_ok = False
                self.reg_state = "idle"
                self.count("unreg_ok")
                self._emit(None, "unregistered")
                return
            g = self._granted(resp, exp)
            if g is not None and g > 0:
                self.reg_ok = True
                self.reg_state = "registered"
                self.granted = g
                self.reg_expires_at = self.now() + g * 1000
                self.count("reg_ok")
                lo, hi = self.refresh
                frac = lo + (hi - lo) * self.rng.random()
                self._reg_timer = self.call_later(int(g * 1000 * frac), self._reg_timer_fired,
                                                  "refresh", "register")
                self._emit(None, "registered")
                return
            st = 0      # 2xx without our Contact
        if exp == 0:
            self.count("unreg_failed")
            self.count("unreg_failed_%d" % st)
            return
        self.count("reg_failed")
        self.count("reg_failed_%d" % st)
        self.reg_state = "failed"
        if st in (401, 407, 403):
            self.reg_challenge = None
        if self.reg_wanted:
            wait = self.retry_ms + self.rng.randbelow(self.retry_ms // 2 + 1)
            self._reg_timer = self.call_later(wait, self._reg_timer_fired, "retry", "register")
        self._emit(None, "register_failed")

    # ---- outgoing calls ---------------------------------------------------
    def _offer(self, call, direction="sendrecv"):
        s = sdp.offer(CODECS, self.host, call.rtp_port, self.index + 1, call.sdp_version,
                      direction)
        call.sdp_version += 1
        return s.serialize()

    def call(self, ext, headers=()):
        """INVITE sip:ext@domain to the server; returns the Call (already
        failed with status 503 when the phone's call table is full)."""
        c = Call(self, "uac")
        c.remote = ext
        self.count("calls_placed")
        if len(self.calls) >= MAX_CALLS:
            c.status = 503
            c.state = TERMINATED
            c.end_reason = "failed"
            self.count("calls_failed")
            self.count("calls_failed_local")
            return c
        c.call_id = "%s@%s" % (self.rng.token(8), self.host)
        c.local_tag = self.rng.token(4)
        c.ruri = "sip:%s@%s" % (ext, self.domain)
        c.body = self._offer(c)
        c.headers = headers
        self.calls.append(c)
        c.note("invite")
        try:
            self._send_invite(c, None)
        except Exception as e:
            self._error(e)
        self._flush()
        return c

    def _send_invite(self, c, auth):
        req = Request("INVITE", c.ruri)
        req.add("Max-Forwards", "70")
        req.add("From", "<%s>;tag=%s" % (self.aor, c.local_tag))
        req.add("To", "<%s>" % c.ruri)
        req.add("Call-ID", c.call_id)
        req.add("CSeq", "%d INVITE" % c.cseq)
        req.add("Contact", self.contact)
        req.add("Allow", ALLOW)
        req.add("User-Agent", "sipphone")
        for name, value in c.headers:
            req.add(name, value)
        if auth is not None:
            req.add(auth[0], auth[1])
        req.add("Content-Type", SDP_TYPE)
        req.body = c.body
        c.invite = req
        c.provisional = False
        c.ict = self._send_request(req, self.server, self._invite_response, c)

    def _invite_response(self, txn, st, resp, c):
        if txn is not None and txn is not c.ict:
            if resp is not None and 200 <= st < 300:
                self._late_2xx(txn, resp, c)
            return
        if st < 200:
            c.provisional = True
            if c.cancel_pending:
                self._send_cancel(c)
            if st > 100 and c.state != TERMINATED:
                try:
                    d, new = self.dialogs.on_uac_response(c.invite, resp)
                except DialogError:
                    d = None
                if d is not None:
                    d.user = c
                if c.state == CALLING:
                    c.state = RINGING
                    self.count("calls_ringing")
                    self._emit(c, "ringing")
            return
        if st < 300:
            if c.state == TERMINATED or c.cancel_sent or c.cancel_pending:
                self._late_2xx(txn, resp, c)    # hung up meanwhile: ACK, then BYE
                return
            try:
                d, new = self.dialogs.on_uac_response(c.invite, resp)
            except DialogError:
                d = None
            if d is None:
                self.count("errors_2xx_no_dialog")
                return
            d.user = c
            self.layer.send_ack(txn, d.create_ack(c.invite.cseq.num), _dest_of(d.next_hop()),
                                "UDP", self.now())
            if c.dialog is not None and d is not c.dialog:
                self._bye_orphan(d)      # a second fork answered
                return
            c.dialog = d
            self.dialogs.terminate_early(c.call_id, c.local_tag, keep=d)
            c.state = CONNECTED
            c.status = st
            c.answered_at = self.now()
            self.count("calls_answered")
            self._emit(c, "answered")
            return
        # final >= 300 (or 408 on Timer B / C)
        if st in (401, 407) and resp is not None and c.auth_tries < self.max_auth_tries \
                and not c.cancel_sent and not c.cancel_pending and c.state != TERMINATED:
            hdr = "www-authenticate" if st == 401 else "proxy-authenticate"
            ch = resp.get_all(hdr)
            if ch:
                try:
                    val = self.digest.authorize("INVITE", c.ruri, ch, self.auth_user,
                                                self.password, self.rng)
                except SipError:
                    val = None
                if val is not None:
                    self.dialogs.terminate_early(c.call_id, c.local_tag)
                    c.auth_tries += 1
                    c.cseq += 1
                    self.count("calls_auth_retries")
                    self._send_invite(c, ("Authorization" if st == 401 else
                                          "Proxy-Authorization", val))
                    return
        self.dialogs.terminate_early(c.call_id, c.local_tag)
        if c.state == TERMINATED:
            return
        c.status = st
        if c.cancel_sent or c.cancel_pending:
            self.count("calls_cancelled")
            if st != 487:
                self.count("calls_cancelled_%d" % st)
            self._end(c, "cancelled")
            self._emit(c, "cancelled")
        else:
            self.count("calls_failed")
            self.count("calls_failed_%d" % st)
            self._end(c, "failed")
            self._emit(c, "failed")

    def _late_2xx(self, txn, resp, c):
        """A 2xx for a call we no longer want (cancelled, ended): ACK, then
        BYE unless the far end already ended it."""
        try:
            d, new = self.dialogs.on_uac_response(c.invite, resp)
        except DialogError:
            return
        if d is None:
            return
        self.layer.send_ack(txn, d.create_ack(resp.cseq.num), _dest_of(d.next_hop()),
                            "UDP", self.now())
        self.count("late_2xx")
        if c.end_reason == "bye_received":
            self.dialogs.remove(d)      # the far end has already ended it
            return
        if (c.cancel_sent or c.cancel_pending) and c.state != TERMINATED:
            c.status = resp.status
            self._end(c, "cancelled")
            self.count("calls_cancelled")
            self.count("calls_cancelled_2xx")
            self._emit(c, "cancelled")
        self._bye_orphan(d)

    def _bye_orphan(self, d):
        req = d.create_request("BYE", self.rng)
        self.dialogs.remove(d)
        self.count("byes_sent_orphan")
        self._send_request(req, _dest_of(d.next_hop()), self._orphan_bye_response, None)

    def _orphan_bye_response(self, txn, st, resp, ctx):
        if st >= 200:
            self.count("bye_orphan_%d" % st)

    def _send_cancel(self, c):
        c.cancel_pending = False
        c.cancel_sent = True
        self.count("cancels_sent")
        c.note("cancel")
        self._send_request(create_cancel(c.invite), self.server, self._cancel_response, c)
        if c.ict is not None:
            self.layer.cancel_sent(c.ict, self.now())

    def _cancel_response(self, txn, st, resp, c):
        if st >= 200:
            self.count("cancel_%d" % st)

    # ---- incoming calls ---------------------------------------------------
    def _invite_in(self, txn, req):
        self.count("calls_incoming")
        c = Call(self, "uas")
        c.call_id = req.call_id
        c.remote = req.from_.uri.user if req.from_ is not None else None
        c.local_tag = self.rng.token(4)
        c.request = req
        c.ist = txn
        if len(self.calls) >= MAX_CALLS:
            self.count("calls_in_rejected")
            self.count("calls_in_rejected_503")
            self._respond(txn, req, 503, c.local_tag, (("Retry-After", "5"),))
            return
        if req.body:
            try:
                c.offer = sdp.parse_sdp(req.body)
                sdp.answer(c.offer, CODECS, self.host, c.rtp_port)
            except SipError:
                self.count("calls_in_rejected")
                self.count("calls_in_rejected_488")
                self._respond(txn, req, 488, c.local_tag)
                return
        decision = None
        if self.on_incoming is not None:
            decision = self.on_incoming(self, c)
        if decision is None:
            active = 0
            for other in self.calls:
                if other.state != TERMINATED:
                    active += 1
            if self.busy or active >= self.max_calls:
                decision = ("reject", self.busy_status)
            elif self.ring_ms is None:
                decision = ("ring",)
            else:
                decision = ("answer", self.ring_ms)
        if decision[0] == "reject":
            st = decision[1]
            c.status = st
            c.state = TERMINATED
            c.end_reason = "rejected"
            c.ended_at = self.now()
            self.count("calls_in_rejected")
            self.count("calls_in_rejected_%d" % st)
            self._respond(txn, req, st, c.local_tag)
            self._emit(c, "rejected")
            return
        txn.user = c
        self.calls.append(c)
        r = Response.for_request(req, 180, None, c.local_tag)
        r.add("Contact", self.contact)
        uas_response_headers(req, r)
        self.layer.respond(txn, r, self.now())
        try:
            d = self.dialogs.add(Dialog.uas(req, r))
        except DialogError:
            d = None
            self.count("dialog_errors")
        if d is not None:
            d.user = c
            c.dialog = d
        c.state = RINGING
        self._emit(c, "incoming")
        if decision[0] == "answer" and c.state == RINGING:
            c.timer = self.call_later(decision[1], self._answer_timer, c)

    def _answer_timer(self, c):
        c.timer = None
        self.answer(c)

    def answer(self, c):
        """Answer a ringing incoming call with 200 + SDP answer."""
        if c.role != "uas" or c.state != RINGING:
            return False
        self.cancel_timer(c.timer)
        c.timer = None
        body = b""
        if c.offer is not None:
            body = sdp.answer(c.offer, CODECS, self.host, c.rtp_port, "sendrecv",
                              self.index + 1, c.sdp_version).serialize()
            c.sdp_version += 1
        else:
            body = self._offer(c)       # offer in the 2xx; the answer comes in the ACK
        r = Response.for_request(c.request, 200, None, c.local_tag)
        r.add("Contact", self.contact)
        uas_response_headers(c.request, r)
        r.add("Allow", ALLOW)
        r.add("Content-Type", SDP_TYPE)
        r.body = body
        self.layer.respond(c.ist, r, self.now())
        if c.dialog is not None:
            c.dialog.confirm(r)
        c.state = CONNECTED
        c.status = 200
        c.answered_at = self.now()
        self.count("calls_in_answered")
        c.note("answer")
        self._flush()
        return True

    def reject(self, c, status=486):
        if c.role != "uas" or c.state != RINGING:
            return False
        self.cancel_timer(c.timer)
        c.timer = None
        c.status = status
        self.count("calls_in_rejected")
        self.count("calls_in_rejected_%d" % status)
        self._respond(c.ist, c.request, status, c.local_tag)
        self._end(c, "rejected")
        self._emit(c, "rejected")
        self._flush()
        return True

    def _ack_in(self, txn, req):
        d = self.dialogs.match_request(req)
        c = d.user if d is not None else None
        if c is None:
            self.count("stray_acks")
            return
        if not c.acked and c.request is not None and req.cseq.num == c.request.cseq.num:
            c.acked = True
            self.count("calls_in_confirmed")
            self._emit(c, "confirmed")
            if c.bye_pending and c.state == CONNECTED:
                self._send_bye(c)
                self._end(c, "bye_sent")
                self._emit(c, "ended")

    def _cancel_in(self, txn, req):
        inv = txn.invite_txn
        c = inv.user if inv is not None else None
        if not isinstance(c, Call):
            c = None
        if inv is None:
            self._respond(txn, req, 481, self.rng.token(4))
            return
        self._respond(txn, req, 200, c.local_tag if c is not None else self.rng.token(4))
        self.count("cancels_received")
        if c is None or c.state != RINGING:
            return
        self.cancel_timer(c.timer)
        c.timer = None
        c.status = 487
        self._respond(inv, c.request, 487, c.local_tag)
        self.count("calls_in_cancelled")
        self._end(c, "cancelled_by_remote")
        self._emit(c, "cancelled")

    def _no_ack(self, c):
        """Timer L: our 2xx (initial or re-INVITE) was never ACKed: BYE."""
        if not isinstance(c, Call):
            c = c[1]
        if c.state != CONNECTED:
            return
        self.count("ack_timeouts")
        if c.bye_pending:
            self._send_bye(c)
            self._end(c, "bye_sent")
            self._emit(c, "ended")
            return
        self._send_bye(c)
        self._end(c, "ack_timeout")
        self._emit(c, "ended")

    # ---- in-dialog requests -----------------------------------------------
    def _in_dialog(self, txn, req):
        d = self.dialogs.match_request(req)
        if d is None or d.user is None:
            self.count("no_dialog")
            self._respond(txn, req, 481)
            return
        c = d.user
        bad = d.receive_request(req)
        if bad is not None:
            self._respond(txn, req, bad[0], None, (), b"", bad[1])
            return
        m = req.method
        if m == "BYE":
            self._respond(txn, req, 200)
            self.count("byes_received")
            if c.state == RINGING and c.role == "uas" and c.ist is not None:
                self._respond(c.ist, c.request, 487, c.local_tag)   # BYE in an early dialog
            self._end(c, "bye_received")
            self._emit(c, "ended")
        elif m == "INVITE":
            self._reinvite_in(txn, req, c, d)
        elif m in ("OPTIONS", "INFO", "NOTIFY", "UPDATE"):
            self._respond(txn, req, 200)
        else:
            self._respond(txn, req, 405, None, (("Allow", ALLOW),))

    def _reinvite_in(self, txn, req, c, d):
        self.count("reinvites_received")
        if c.state != CONNECTED:
            self._respond(txn, req, 491)
            self.count("reinvites_rejected_491")
            return
        if c.reinvite_txn is not None or (c.role == "uas" and not c.acked):
            self._respond(txn, req, 491)    # §14.2: our own INVITE is pending
            self.count("reinvites_rejected_491")
            return
        body = b""
        held = False
        if req.body:
            try:
                off = sdp.parse_sdp(req.body)
                body = sdp.answer(off, CODECS, self.host, c.rtp_port,
                                  "sendonly" if c.held else "sendrecv",
                                  self.index + 1, c.sdp_version).serialize()
                c.sdp_version += 1
                for m in off.media:
                    if m.kind == "audio" and sdp.is_hold(m, off):
                        held = True
            except SipError:
                self._respond(txn, req, 488)
                return
        else:
            body = self._offer(c)
        txn.user = ("reinvite", c)
        self._respond(txn, req, 200, None, (("Contact", self.contact),), body)
        d.refresh_target(req)
        was = c.remote_held
        c.remote_held = held
        if held != was:
            self._emit(c, "remote_hold" if held else "remote_resume")

    # ---- hold / resume ----------------------------------------------------
    def hold(self, c):
        return self._reinvite(c, "sendonly")

    def resume(self, c):
        return self._reinvite(c, "sendrecv")

    def _reinvite(self, c, direction):
        """re-INVITE with a new offer; False when not possible now (not
        connected, an INVITE pending in either direction)."""
        if c.state != CONNECTED or c.dialog is None or c.reinvite_txn is not None:
            return False
        if c.role == "uas" and not c.acked:
            return False
        d = c.dialog
        req = d.create_request("INVITE", self.rng, self._offer(c, direction), SDP_TYPE)
        self.count("reinvites_sent")
        c.note("reinvite-" + direction)
        c.reinvite_txn = self._send_request(req, _dest_of(d.next_hop()), self._reinvite_response,
                                            (c, direction, req, d))
        self._flush()
        return True

    def _reinvite_response(self, txn, st, resp, ctx):
        c, direction, req, d = ctx
        if st < 200:
            return
        if c.reinvite_txn is txn:
            c.reinvite_txn = None
        if 200 <= st < 300 and resp is not None:
            self.layer.send_ack(txn, d.create_ack(resp.cseq.num), _dest_of(d.next_hop()),
                                "UDP", self.now())
            if c.state != CONNECTED:
                return
            d.on_response(req, resp)
            self.count("reinvite_ok")
            c.held = direction != "sendrecv"
            self._emit(c, "held" if c.held else "resumed")
            return
        if c.state != CONNECTED:
            return
        if st == 491:
            self.count("reinvite_glare")
            # §14.1: the Call-ID's owner waits 2.1-4 s, the other side 0-2 s
            lo = 2100 if c.role == "uac" else 0
            wait = lo + self.rng.randbelow(2000 if c.role == "uas" else 1901)
            c.timer = self.call_later(wait, self._reinvite_retry, (c, direction))
            return
        self.count("reinvite_failed")
        self.count("reinvite_failed_%d" % st)
        if st in (408, 481):
            # §12.2.1.2: the dialog is gone (481) or unreachable (408)
            if st == 408:
                self._send_bye(c)
            self._end(c, "reinvite_failed")
            self._emit(c, "ended")
            return
        self._emit(c, "hold_failed")

    def _reinvite_retry(self, arg):
        c, direction = arg
        c.timer = None
        if c.state == CONNECTED and not self._reinvite(c, direction):
            self.count("reinvite_retry_skipped")

    # ---- ending -----------------------------------------------------------
    def hangup(self, c):
        """End the call whatever its state: CANCEL (UAC before a 2xx; sent
        once a provisional arrived, §9.1), 603 (UAS ringing) or BYE."""
        if c.state == TERMINATED:
            return False
        if c.role == "uac" and c.state in (CALLING, RINGING):
            if c.cancel_sent or c.cancel_pending:
                return False
            if c.provisional:
                self._send_cancel(c)
            else:
                c.cancel_pending = True
            self._flush()
            return True
        if c.role == "uas" and c.state == RINGING:
            self.count("calls_in_declined")
            return self.reject(c, 603)
        if c.role == "uas" and not c.acked:
            # §15: no BYE before the ACK for our 2xx (or Timer L) arrived
            c.bye_pending = True
            self.count("byes_deferred")
            return True
        self._send_bye(c)
        self._end(c, "bye_sent")
        self._emit(c, "ended")
        self._flush()
        return True

    def _send_bye(self, c):
        d = c.dialog
        if d is None:
            return
        req = d.create_request("BYE", self.rng)
        self.count("byes_sent")
        c.note("bye")
        self._send_request(req, _dest_of(d.next_hop()), self._bye_response, c)

    def _bye_response(self, txn, st, resp, c):
        if st < 200:
            return
        c.bye_status = st
        if 200 <= st < 300:
            self.count("bye_ok")
        else:
            self.count("bye_failed")
            self.count("bye_failed_%d" % st)
        self._emit(c, "bye_done")

    def _end(self, c, reason):
        if c.state == TERMINATED:
            return
        if c.state == CONNECTED:
            self.count("calls_completed")
        c.state = TERMINATED
        c.end_reason = reason
        c.ended_at = self.now()
        c.note("end:" + reason)
        self.cancel_timer(c.timer)
        c.timer = None
        if c.dialog is not None:
            self.dialogs.remove(c.dialog)
        if c.call_id is not None and c.local_tag is not None:
            self.dialogs.terminate_early(c.call_id, c.local_tag)
        if c in self.calls:
            self.calls.remove(c)

    def hangup_all(self):
        for c in list(self.calls):
            self.hangup(c)


class PhoneNet:
    """The phones of one simulation: their sockets, one reader task per
    phone and one timer task, all in `sched` (see the module notes)."""

    def __init__(self, sched, seed=1, loss=0.0, rx_loss=None, hosts="distinct", trace=0,
                 network=None):
        self.sched = sched
        self.network = network      # a SimNetwork, or None: loopback sockets
        self.clock = sched.clock
        self.seed = seed
        self.rng = Random(seed)
        self.port_rng = Random(seed + 7919)
        self.loss = loss
        self.rx_loss = rx_loss
        self.hosts = hosts
        self.trace = trace
        self.phones = []
        self.tasks = []
        self._wake = Event(sched)
        self._sleeping = False
        self._sleep_until = None
        self._sa = {}

    def host_for(self, i):
        if self.hosts == "shared":
            return "127.0.0.1"
        return "127.0.1.%d" % (i + 1)

    def add(self, user, password, domain, server, host=None, **kw):
        i = len(self.phones)
        if host is None:
            host = self.host_for(i)
        loss = kw.pop("loss", self.loss)
        rx_loss = kw.pop("rx_loss", self.rx_loss)
        p = Phone(self, i, user, password, domain, server, host, Random(self.rng.next64()),
                  loss=loss, rx_loss=rx_loss, **kw)
        self.phones.append(p)
        if self.tasks:
            self.tasks.append(self.sched.spawn(self._reader(p), "phone-%s" % user))
        return p

    def sockaddr(self, addr):
        if self.network is not None:
            return addr
        sa = self._sa.get(addr)
        if sa is None:
            if len(self._sa) > 64:
                self._sa = {}
            sa = self._sa[addr] = sockaddr(addr[0], addr[1])
        return sa

    def tasks_needed(self):
        return len(self.phones) + 1

    def start(self):
        s = self.sched
        if len(s.tasks) + self.tasks_needed() > s.max_tasks:
            raise ValueError("PhoneNet needs %d tasks, the scheduler has room for %d: "
                             "raise sched.max_tasks" % (self.tasks_needed(),
                                                        s.max_tasks - len(s.tasks)))
        self.tasks.append(s.spawn(self._timer_task(), "phones-timers"))
        for p in self.phones:
            self.tasks.append(s.spawn(self._reader(p), "phone-%s" % p.user))

    def close(self):
        for t in self.tasks:
            if not t.done():
                t.cancel()
        self.tasks = []         # cancel() has already released the sockets' fds in the poller
        for p in self.phones:
            if p.sock is not None:
                p.sock.close()
                p.sock = None

    async def _reader(self, p):
        # one recvfrom per readiness: a loop that reads until EAGAIN would
        # allocate one more receive buffer per wake-up for nothing
        sched = self.sched
        sock = p.sock
        sim = self.network is not None
        while True:
            await (sock.wait_readable() if sim else sched.readable(sock))
            try:
                data, raw = sock.recvfrom(MAX_DATAGRAM)
            except OSError as e:
                if _errno(e) not in _EAGAIN:
                    p.count("recv_errors")
                continue
            except MemoryError:
                p.count("recv_no_memory")       # a fragmented heap; try again later
                await sched.sleep(10)
                continue
            p.datagram(data, peer(raw))

    async def _timer_task(self):
        clock = self.clock
        phones = self.phones
        while True:
            now = clock.now()
            nxt = None
            for p in phones:
                a = p.next_at
                if a is not None and (nxt is None or a < nxt):
                    nxt = a
            if nxt is not None and nxt <= now:
                for p in phones:
                    a = p.next_at
                    if a is not None and a <= now:
                        p.on_timer(now)
                continue
            self._sleep_until = nxt
            self._sleeping = True
            # a fresh Event per wait: an Event keeps the waiter entry of a
            # wait that timed out until its next set(), and here timeouts
            # are the rule, so one long-lived Event would grow without bound
            self._wake = Event(self.sched)
            try:
                await self._wake.wait(None if nxt is None else nxt - now)
            except TimeoutError:
                pass
            self._sleeping = False

    def _changed(self, p):
        a = p.next_at = p.next_deadline()
        if self._sleeping and a is not None and (self._sleep_until is None or
                                                 a < self._sleep_until):
            self._sleeping = False
            self._wake.set()

    # ---- introspection ----------------------------------------------------
    def leaks(self):
        out = {"transactions": 0, "dialogs": 0, "calls": 0, "timers": 0}
        for p in self.phones:
            for k, v in p.leaks().items():
                out[k] += v
        return out

    def counters(self):
        out = {}
        for p in self.phones:
            for k, v in p.counters.items():
                out[k] = out.get(k, 0) + v
        return out

    def errors(self):
        out = []
        for p in self.phones:
            out.extend(p.errors)
        return out
