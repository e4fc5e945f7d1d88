"""Simulated SIP phones for whole-appliance simulations, on both interpreters.

Each phone is a sip.usage Agent (sip/usage/: registration, INVITE sessions,
in-dialog requests) run by its own firmware SIP core (firmware.sipstack.core
SipCore: transactions, server requests, CANCEL, Timer B/F 408s, Timer H,
2xx re-ACKs, the dialog module of firmware/sipstack/dialogs.py) on its own
UDP socket of the simulated network (tests/sim/simnet.py SimNetwork; a
loopback socket when PhoneNet has no network).  This file keeps only test
policy: scripted answers (auto-answer after ring_ms, busy, reject codes,
hold/resume), per-phone loss, the trace ring, counters, leaks() and errors.
All phones of a PhoneNet live in one scheduler (the appliance's `app.sched`,
or any Scheduler) and keep every timer on its clock: nothing reads the wall
clock, and every random choice (tags, branches, Call-IDs, refresh jitter,
packet loss) comes from sources seeded from the PhoneNet's seed.

    net = PhoneNet(app.sched, seed=7, loss=0.1, network=app.network)  # drop 10 % each way
    p = net.add("2001", "Secret-2001", "branch.example.com", ("127.0.0.1", app.sip_port))
    net.start()                 # one reader task per phone + one timer task
                                # (net.tasks_needed(); raise sched.max_tasks
                                # when the appliance's table has no room)
    p.register()                # REGISTER (digest on 401/407), refreshed by
                                # sip.usage.registration (80-95 % of the expiry)
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

Who does what:
    usage  sip.usage: Registration (digest, refresh, back-off, 423), Agent
           and InviteSession (INVITE with digest, CANCEL, BYE, re-INVITE,
           in-dialog requests, 2xx ACK and re-ACK, forks)
    shell  SipCore with a _Wire transport (loss and trace at the socket),
           _Registration (counts, the phone's retry policy, no Expires
           when expires is None), the "phone" router module for new INVITEs
    policy Phone and Call below

Phone
    p.user p.password p.auth_user p.domain p.server p.host p.port p.contact
    p.expires (requested, default 600; None: no Expires header, the server's
    default applies; a 423 raises it to Min-Expires)  p.retry_ms (after a
    failed REGISTER, +0-50 % jitter)  p.max_auth_tries (0: the phone answers
    no INVITE challenge; else sip.usage's MAX_AUTH_TRIES)
    p.registered (bool: a 200 listed our Contact and it has not expired)
    p.reg_state in ("idle", "registering", "registered", "failed")
    p.granted (s, last granted expiry)   p.agent  p.core  p.layer
    Incoming INVITEs: p.on_incoming(p, call) -> ("answer", ring_ms) |
        ("reject", status) | ("ring",) (ring until CANCEL or hangup) | None
        (defaults: p.busy -> reject p.busy_status (486); more than
        p.max_calls calls -> 486; else answer after p.ring_ms, or just ring
        when ring_ms is None).  The phone sends 180 (with a To tag) at once.
    p.answer(call) / p.reject(call, status)  by hand
    p.hangup(call): a UAS that has not yet got the ACK for its 2xx sends
        its BYE once the ACK (or Timer H) comes (RFC 3261 §15)
    p.hangup_all()   p.call_later(ms, fn, arg, name) -> timer (fn(arg) on
        the phone's clock; p.cancel_timer(timer))
    p.on_event(p, call_or_None, event): "registered", "register_failed",
        "unregistered"; "incoming", "ringing", "answered", "confirmed" (UAS:
        ACK for our 2xx), "failed", "cancelled", "ended", "bye_done", "held",
        "resumed", "hold_failed", "remote_hold", "remote_resume", "rejected"
    p.on_request(p, request)  a spy: every request received (after loss)
    p.counters  dict of counters: those in COUNTERS below start at 0;
        per-status and rarer ones appear on first use; "no_dialog" and
        "stray_responses" are the agent's and the core's
    p.leaks() -> {"transactions", "dialogs", "calls", "timers"}: table sizes
        ("calls": the phone's calls, the agent's sessions and the outcomes
        still awaited; the registration's timer is not counted)
    p.errors  [text]: exceptions raised inside the phone or its core (a
        phone bug); tests assert it stays empty
    p.trace   when PhoneNet(trace=N): the last N datagrams as (ms, dir,
        first line, Call-ID, CSeq); dir in tx, rx, tx-lost, rx-lost.
        p.trace_for(call_id) filters them.
    net.leaks() / net.counters() / net.errors(): sums over the phones

Call (the phone's view of one InviteSession, its owner)
    .role "uac" | "uas"   .state "calling" | "ringing" | "connected" |
    "terminated"   .remote (the other party's user part: To of our INVITE,
    From of an incoming one)  .call_id  .status (final INVITE status)
    .end_reason: "bye_sent", "bye_received", "cancelled" (we cancelled: 487,
    or 200 / 408), "cancelled_by_remote", "rejected", "failed" (status in
    .status), "ack_timeout", "reinvite_failed"; .bye_status (2xx, 481, 408
    ... of our BYE, once known)  .held (we put it on hold)  .remote_held
    .acked (UAS)  .cancel_pending  .session  .answered_at .ended_at
    .history [(ms, event)]  .user (free slot)

The sessions report no outcome once we cancelled or sent BYE; the shell
shows the phone the final response of each such INVITE, BYE (and the 408
of Timer B/F) so that .status and .bye_status are known.

Losses are applied at the phone's socket: `loss` on send, `rx_loss`
(default: the same) on receive, so a PhoneNet with loss=0.1 emulates a link
that drops 10 % of the datagrams in each direction between every phone and
the server.  Retransmissions are the transaction layer's (Timers A/E/G).

Bounds: the core's (transactions, TU timers), MAX_CALLS calls per phone
(beyond: a local 503 for p.call(), 503 + Retry-After for an incoming INVITE),
the agent's tables, TRACE ring of PhoneNet(trace=N) entries, MAX_ERRORS
recorded errors.
"""
import socket
import sys

from firmware.compat import Random, MICROPYTHON
from firmware.sched import Event, TimeoutError
from firmware.sipstack.core import SipCore
from firmware.sipstack.dialogs import user_agent
from firmware.sipstack.identity import SipIdentity
from firmware.sipstack.router import Module, GATEWAY
from firmware.sipstack.transport import Source, sockaddr, peer
from sip.message import parse, Response
from sip.errors import SipError
from sip.transport import stamp_via
from sip.digest import DigestClient
from sip.usage.agent import PENDING
from sip.usage.invite import InviteSession
from sip.usage.registration import Registration
from sip import sdp

MAX_CALLS = 8
MAX_ERRORS = 16
MAX_DATAGRAM = 4096    # MicroPython's recvfrom(n) allocates n bytes, even for EAGAIN
PORT_TRIES = 32
CODECS = ("PCMU", "PCMA", "telephone-event")

CALLING = "calling"
RINGING = "ringing"
CONNECTED = "connected"
TERMINATED = "terminated"

_EAGAIN = (11, 35)

# documented counters (all start at 0; per-status ones are added on first use)
COUNTERS = (
    "tx", "rx", "tx_lost", "rx_lost", "parse_errors", "send_errors", "recv_errors",
    "errors",
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
    "byes_deferred", "calls_cancelled_2xx",
)


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


# ---- the shell: a firmware SIP core per phone --------------------------------

class _Log:
    """The core's and the agent's log: errors are the phone's errors."""

    def __init__(self, phone):
        self.phone = phone

    def write(self, level, text):
        if level == "error":
            self.phone._error_text(text)


class _App:
    """What SipCore and the dialog module read of an appliance."""

    def __init__(self, phone):
        self.clock = phone.net.clock
        self.sched = phone.net.sched
        self.rng = phone.rng
        self.log = _Log(phone)
        self.identity = SipIdentity(phone.host, phone.port, phone.domain)
        self.sip = None


class _Wire:
    """The core's transport: the phone's socket, through its loss and trace."""

    def __init__(self, phone):
        self.phone = phone
        self.host = phone.host
        self.port = phone.port
        self.on_message = None

    def send(self, data, dest):
        self.phone._send(data, dest.addr)

    def start(self):
        pass


class _Core(SipCore):
    """SipCore that tells PhoneNet of new deadlines and shows the phone the
    outcome of the requests its sessions no longer report (see Phone._outcome)."""

    def __init__(self, phone):
        self.phone = phone
        app = _App(phone)
        SipCore.__init__(self, app, _Wire(phone))
        app.sip = self

    def _flush(self):
        SipCore._flush(self)
        self.phone.net._changed(self.phone)

    def _response(self, resp, src, txn):
        SipCore._response(self, resp, src, txn)
        if txn is not None and resp.status >= 200:
            self.phone._outcome(resp)

    def _timeout(self, txn):
        SipCore._timeout(self, txn)
        if txn.kind in ("ict", "nict") and txn.request is not None:
            self.phone._outcome(Response.for_request(txn.request, 408))


class _Registration(Registration):
    """sip.usage's registration with the phone's counters, its retry policy
    (p.retry_ms + 0-50 %) and REGISTER without Expires (p.expires None)."""

    def __init__(self, phone):
        Registration.__init__(self, phone.agent, phone.user, phone.domain, phone.server,
                              phone.auth_user, phone.password, phone.expires,
                              phone._reg_changed)
        self.phone = phone

    def start(self, now):
        # the refresh and retry timers; Phone.register() calls Registration.start
        if self.state == "registered":
            self.phone.count("reg_refreshes")
        Registration.start(self, now)

    def retry_ms(self):
        ms = self.phone.retry_ms
        return ms + self.phone.rng.randbelow(ms // 2 + 1)

    def _send(self, challenge, expires, now, is_proxy=False):
        self.phone.count("reg_sent")
        if expires is not None:
            Registration._send(self, challenge, expires, now, is_proxy)
            return
        # no Expires: the registrar's default lifetime
        ua = self.ua
        self.cseq += 1
        ruri = "sip:%s" % self.domain
        aor = "sip:%s@%s" % (self.user, self.domain)
        req = ua.new_request("REGISTER", ruri, aor, aor, call_id=self.call_id, cseq=self.cseq)
        req.add("Contact", ua.contact(self.contact_user))
        if challenge is not None:
            req.add("Proxy-Authorization" if is_proxy else "Authorization",
                    DigestClient().authorize("REGISTER", ruri, challenge, self.username,
                                             self.password, ua.rng))
        self._set("registering")
        ua.send(req, self.dest, lambda r, n: self._response(r, n, None), now)

    def _response(self, resp, now, expires):
        p = self.phone
        st = resp.status
        if st >= 200:
            if expires != 0 and not p._reg_wanted:
                return      # a REGISTER answered after unregister(): not wanted now
            if st in (401, 407):
                p.count("reg_challenged")
            elif st == 423 and expires:
                p.count("reg_423")
            elif expires == 0:
                if st < 300:
                    p.count("unreg_ok")
                    p._emit(None, "unregistered")
                else:
                    p.count("unreg_failed")
                    p.count("unreg_failed_%d" % st)
        Registration._response(self, resp, now, expires)


# ---- the policy: calls and phones ---------------------------------------------

class Call:
    """The phone's view of one INVITE session, and the session's owner."""

    def __init__(self, phone, role):
        self.phone = phone
        self.role = role
        self.state = CALLING
        self.session = None
        self.remote = None
        self.call_id = None
        self.status = None
        self.end_reason = None
        self.bye_status = None
        self.held = False
        self.remote_held = False
        self.confirmed = False    # UAS: the ACK for our 2xx came
        self.started_at = phone.now()
        self.answered_at = None
        self.ended_at = None
        self.history = []
        self.user = None
        self.offer = None         # UAS: the parsed offer of the INVITE
        self.timer = None
        self.cancelling = False
        self.reinviting = False
        self.bye_pending = False
        self.sdp_version = 1
        self.rtp_port = phone.rtp_port

    @property
    def acked(self):
        return self.confirmed

    @property
    def cancel_pending(self):
        return self.session is not None and self.session.cancel_pending

    @property
    def dialog(self):
        return self.session.dialog if self.session is not None else None

    def note(self, event):
        self.history.append((self.phone.now(), event))

    def __repr__(self):
        return "<Call %s %s %s->%s %s %s>" % (self.role, self.call_id, self.phone.user,
                                             self.remote, self.state, self.end_reason)

    # -- the session's callbacks (sip/usage/agent.py "Owner callbacks")
    def on_progress(self, s, status):
        if self.state == CALLING:
            self.state = RINGING
            self.phone.count("calls_ringing")
            self.phone._emit(self, "ringing")

    def on_answer(self, s):
        p = self.phone
        self.state = CONNECTED
        self.status = 200
        self.answered_at = p.now()
        p.count("calls_answered")
        p.count("calls_auth_retries", s.auth_tries)
        p._emit(self, "answered")

    def on_failed(self, s, status):
        p = self.phone
        self.status = status
        p.count("calls_auth_retries", s.auth_tries)
        p.count("calls_failed")
        p.count("calls_failed_%d" % status)
        p._end(self, "failed")
        p._emit(self, "failed")

    def on_confirmed(self, s):
        p = self.phone
        if self.role != "uas" or self.confirmed:
            return            # the ACK of a re-INVITE's 2xx, or a repeated one
        self.confirmed = True
        p.count("calls_in_confirmed")
        p._emit(self, "confirmed")
        if self.bye_pending and self.state == CONNECTED:
            p._bye(self)

    def on_ended(self, s, reason):
        p = self.phone
        if reason == "bye":
            p.count("byes_received")
            if self.role == "uas" and self.state == RINGING and s.sreq is not None:
                s.sreq.respond(487)            # BYE in the early dialog
            p._end(self, "bye_received")
            p._emit(self, "ended")
        elif reason == "cancel":
            self.status = 487
            p.count("calls_in_cancelled")
            p._end(self, "cancelled_by_remote")
            p._emit(self, "cancelled")
        else:                   # "timeout": Timer H, the session has sent BYE
            p.count("ack_timeouts")
            p._await(self, "BYE")
            p._end(self, "bye_sent" if self.bye_pending else "ack_timeout")
            p._emit(self, "ended")

    def on_offer(self, s, offer):
        p = self.phone
        p.count("reinvites_received")
        if self.state != CONNECTED or self.reinviting or (self.role == "uas" and
                                                          not self.confirmed):
            # §14.2: an INVITE of ours is pending (or our 2xx is not ACKed yet)
            p.count("reinvites_rejected_491")
            s.ua.later(p.now(), 0, lambda now: s.answer_offer(None, 491))
            return PENDING
        if offer is None:
            return p._offer(self, "sendonly" if self.held else "sendrecv")
        held = False
        try:
            body = sdp.answer(offer, CODECS, p.host, self.rtp_port,
                              "sendonly" if self.held else "sendrecv",
                              p.index + 1, self.sdp_version).serialize()
        except SipError:
            return None         # 488
        self.sdp_version += 1
        for m in offer.media:
            if m.kind == "audio" and sdp.is_hold(m, offer):
                held = True
        was = self.remote_held
        self.remote_held = held
        if held != was:
            p._emit(self, "remote_hold" if held else "remote_resume")
        return body


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
        self.retry_ms = 30000
        self.max_auth_tries = 2
        self.ring_ms = 1000
        self.busy = False
        self.busy_status = 486
        self.max_calls = 1
        self.on_incoming = None
        self.on_event = None
        self.on_request = None
        self.rtp_port = 40000 + 2 * index
        self.counters_own = {}
        for name in COUNTERS:
            self.counters_own[name] = 0
        self.errors = []
        self.calls = []
        self._awaited = {}          # (Call-ID, method) -> Call: see _outcome
        self.sock = None
        self.port = None
        self._bind()
        self.contact = "<sip:%s@%s:%d>" % (user, host, self.port)
        self.aor = "sip:%s@%s" % (user, domain)
        self.next_at = None         # earliest deadline of the core, for PhoneNet
        # tracing
        n = net.trace
        self.trace = [] if n else None
        self._trace_max = n
        self._trace_pos = 0
        # the shell and the usages
        self.core = _Core(self)
        self.agent = user_agent(self.core.app)
        self.agent.user_agent = "sipphone"
        self.core.router.add(Module("phone", GATEWAY, ("INVITE",), self._invite_in))
        self._reg_wanted = False
        self._reg_ok = False
        self._reg_state = "idle"
        self.reg = _Registration(self)

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

    @property
    def layer(self):
        return self.core.layer

    @property
    def counters(self):
        out = dict(self.counters_own)
        out["no_dialog"] = self.agent.counters.get("no_dialog", 0)
        out["stray_responses"] = self.core.counters.get("stray_responses", 0)
        return out

    def now(self):
        return self.net.clock.now()

    def count(self, name, n=1):
        self.counters_own[name] = self.counters_own.get(name, 0) + n

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

    def _error_text(self, text):
        self.count("errors")
        if len(self.errors) < MAX_ERRORS:
            self.errors.append("phone %s at %d ms: %s" % (self.user, self.now(), text))

    def _error(self, e):
        self._error_text(_format_exc(e))

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
                if self.on_request is not None:
                    self.on_request(self, msg)
            self.core.on_message(msg, Source("UDP", src))
        except Exception as e:
            self._error(e)

    def on_timer(self, now):
        try:
            self.core.on_timer(now)
        except Exception as e:
            self._error(e)
            self.net._changed(self)

    def next_deadline(self):
        return self.core.next_deadline()

    def call_later(self, ms, fn, arg=None, name="call"):
        t = self.core.timers.add(self.now() + max(0, int(ms)), lambda: fn(arg))
        self.net._changed(self)
        return t

    @staticmethod
    def cancel_timer(t):
        if t is not None:
            t.cancel()

    def leaks(self):
        reg = self.reg.timer
        timers = 0
        for t in self.core.timers.live():
            if t is not reg:
                timers += 1
        return {"transactions": len(self.core.layer), "dialogs": len(self.agent.dialogs),
                "calls": len(self.calls) + len(self.agent.sessions) + len(self._awaited),
                "timers": timers}

    def _await(self, c, method):
        self._awaited[(c.call_id, method)] = c

    def _outcome(self, resp):
        """The final response (or Timer B/F 408) of a client transaction: the
        outcome of an INVITE we cancelled, or of our BYE."""
        cs = resp.cseq
        if cs is None or not self._awaited:
            return
        c = self._awaited.pop((resp.call_id, cs.method), None)
        if c is None:
            return
        st = resp.status
        if cs.method == "BYE":
            c.bye_status = st
            if st < 300:
                self.count("bye_ok")
            else:
                self.count("bye_failed")
                self.count("bye_failed_%d" % st)
            self._emit(c, "bye_done")
            return
        # INVITE: 487, a 2xx that crossed the CANCEL (ACKed and ended with BYE
        # by the session), or 408 when nothing came back
        c.status = st
        self.count("calls_cancelled")
        if st < 300:
            self.count("calls_cancelled_2xx")
        elif st != 487:
            self.count("calls_cancelled_%d" % st)
        self._end(c, "cancelled")
        self._emit(c, "cancelled")

    # ---- registration -----------------------------------------------------
    @property
    def registered(self):
        r = self.reg
        return self._reg_ok and r.registered_at is not None and \
            self.now() < r.registered_at + r.granted * 1000

    @property
    def reg_state(self):
        return self._reg_state

    @property
    def granted(self):
        return self.reg.granted

    def _reg_changed(self, reg):
        st = reg.state
        if st == "registering":
            if not self.registered:
                self._reg_state = "registering"
        elif st == "registered":
            self._reg_ok = True
            self._reg_state = "registered"
            self.count("reg_ok")
            self._emit(None, "registered")
        elif st == "failed":
            self._reg_state = "failed"
            self.count("reg_failed")
            self.count("reg_failed_%d" % reg.status)
            self._emit(None, "register_failed")

    def register(self, expires=None):
        """Register (again) now; keeps refreshing until unregister()."""
        if expires is not None:
            self.expires = self.reg.expires = expires
        self._reg_wanted = True
        Registration.start(self.reg, self.now())

    def unregister(self):
        self._reg_wanted = False
        self.reg.stop(self.now())
        self._reg_ok = False
        self._reg_state = "idle"

    # ---- outgoing calls ---------------------------------------------------
    def _offer(self, call, direction="sendrecv"):
        s = sdp.offer(CODECS, self.host, call.rtp_port, self.index + 1, call.sdp_version,
                      direction)
        call.sdp_version += 1
        return s.serialize()

    def _fail_local(self, c, status):
        c.status = status
        c.state = TERMINATED
        c.end_reason = "failed"
        self.count("calls_failed")
        self.count("calls_failed_local")

    def call(self, ext, headers=()):
        """INVITE sip:ext@domain to the server; returns the Call (already
        failed with status 503 when the phone's call table is full)."""
        c = Call(self, "uac")
        c.remote = ext
        self.count("calls_placed")
        if len(self.calls) >= MAX_CALLS:
            self._fail_local(c, 503)
            return c
        ruri = "sip:%s@%s" % (ext, self.domain)
        auth = (self.auth_user, self.password) if self.max_auth_tries > 0 else None
        c.note("invite")
        s = self.agent.invite(ruri, self.aor, ruri, self.server, self._offer(c), c, self.now(),
                              auth=auth, headers=headers, contact_user=self.user)
        if s is None:
            self._fail_local(c, 503)
            return c
        c.session = s
        c.call_id = s.call_id
        if c.state != TERMINATED:
            self.calls.append(c)
        return c

    # ---- incoming calls ---------------------------------------------------
    def _invite_in(self, sreq):
        """The router's "phone" module: a new INVITE (the agent took the rest)."""
        self.count("calls_incoming")
        req = sreq.request
        c = Call(self, "uas")
        c.call_id = req.call_id
        c.remote = req.from_.uri.user if req.from_ is not None else None
        if len(self.calls) >= MAX_CALLS:
            self.count("calls_in_rejected")
            self.count("calls_in_rejected_503")
            sreq.respond(503, None, (("Retry-After", "5"),))
            return True
        if req.body:
            try:
                c.offer = sdp.parse_sdp(req.body)
                sdp.answer(c.offer, CODECS, self.host, c.rtp_port)
            except SipError:
                self.count("calls_in_rejected")
                self.count("calls_in_rejected_488")
                sreq.respond(488)
                return True
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
            sreq.respond(st)
            self._emit(c, "rejected")
            return True
        s = InviteSession.uas(self.agent, sreq, c)
        c.session = s
        self.calls.append(c)
        s.ring()
        c.state = RINGING
        self._emit(c, "incoming")
        if decision[0] == "answer" and c.state == RINGING:
            c.timer = self.call_later(decision[1], self.answer, c)
        return True

    def answer(self, c):
        """Answer a ringing incoming call with 200 + SDP answer (or an offer
        when the INVITE had none: the answer comes in the ACK)."""
        if c.role != "uas" or c.state != RINGING:
            return False
        self.cancel_timer(c.timer)
        c.timer = None
        if c.offer is not None:
            body = sdp.answer(c.offer, CODECS, self.host, c.rtp_port, "sendrecv",
                              self.index + 1, c.sdp_version).serialize()
            c.sdp_version += 1
        else:
            body = self._offer(c)
        if c.session.answer(body) is None:
            return False
        c.state = CONNECTED
        c.status = 200
        c.answered_at = self.now()
        self.count("calls_in_answered")
        c.note("answer")
        return True

    def reject(self, c, status=486):
        if c.role != "uas" or c.state != RINGING:
            return False
        self.cancel_timer(c.timer)
        c.timer = None
        c.status = status
        self.count("calls_in_rejected")
        self.count("calls_in_rejected_%d" % status)
        c.session.reject(status)
        self._end(c, "rejected")
        self._emit(c, "rejected")
        return True

    # ---- hold / resume ----------------------------------------------------
    def hold(self, c):
        return self._reinvite(c, "sendonly")

    def resume(self, c):
        return self._reinvite(c, "sendrecv")

    def _reinvite(self, c, direction):
        """re-INVITE with a new offer; False when not possible now (not
        connected, an INVITE pending in either direction)."""
        s = c.session
        if c.state != CONNECTED or s is None or c.reinviting:
            return False
        if c.role == "uas" and not c.confirmed:
            return False
        if s.offer_sreq is not None:
            return False
        body = self._offer(c, direction)
        if not s.reinvite(body, self.now(), lambda st: self._reinvite_done(c, direction, st)):
            return False
        c.reinviting = True
        self.count("reinvites_sent")
        c.note("reinvite-" + direction)
        return True

    def _reinvite_done(self, c, direction, st):
        c.reinviting = False
        if c.state != CONNECTED:
            return
        if 200 <= st < 300:
            self.count("reinvite_ok")
            c.held = direction != "sendrecv"
            self._emit(c, "held" if c.held else "resumed")
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
            # §12.2.1.2: the dialog is gone (481) or unreachable (408): BYE
            self._bye(c, "reinvite_failed")
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
            if c.cancelling:
                return False
            c.cancelling = True
            self.count("cancels_sent")
            c.note("cancel")
            self._await(c, "INVITE")
            c.session.cancel(self.now())
            return True
        if c.role == "uas" and c.state == RINGING:
            self.count("calls_in_declined")
            return self.reject(c, 603)
        if c.role == "uas" and not c.confirmed:
            # §15: no BYE before the ACK for our 2xx (or Timer H) arrived
            c.bye_pending = True
            self.count("byes_deferred")
            return True
        self._bye(c)
        return True

    def _bye(self, c, reason="bye_sent"):
        self.count("byes_sent")
        c.note("bye")
        self._await(c, "BYE")
        if not c.session.bye(self.now()):
            self._awaited.pop((c.call_id, "BYE"), None)
        self._end(c, reason)
        self._emit(c, "ended")

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
