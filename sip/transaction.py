"""SIP transactions (RFC 3261 §17, §18.2.2; RFC 3581 rport; RFC 6026 Accepted).

Sans-I/O: no sockets, no clock.  Every call takes `now` (int ms); datagrams to
send pile up in the layer and are collected with take_outgoing(); events are
returned from the calls.

API
    layer = TransactionLayer(rng, timers=None, max_transactions=MAX_TRANSACTIONS,
                             retry_after=5, via_host=None, via_port=None,
                             trying_delay=200, retransmit_2xx=True)
        rng: object with token(nbytes)->hex, randbelow(n), random()
        timers: Timers(t1=500, t2=4000, t4=5000, d=32000)
        via_host/via_port: sent-by for the Via the layer adds to requests
            that carry none
        trying_delay: ms after which an INVITE server transaction that the
            TU has not answered sends 100 Trying itself (§17.2.1); None = off
        retransmit_2xx: INVITE server transactions in Accepted retransmit
            the 2xx (T1 doubling to T2) until the ACK (UA core duty of
            §13.3.1.4); a proxy passes retransmit_2xx=False to respond().

    layer.receive(msg, source_addr, transport, now) -> [event]
        msg: parsed Request or Response (the transport layer has already
        called stamp_via() on requests).
    layer.send_request(req, dest_addr, transport, now) -> ClientTransaction
        adds Via (if none) and branch (if none); raises TableFull when the
        table is full (the TU treats it like a local 503).
    layer.respond(txn, response, now, retransmit_2xx=None) -> [event]
        the TU's responses go through the server transaction; a response
        with no valid transition (e.g. a second final) raises
        TransactionError.
    layer.send_ack(txn, ack, dest_addr, transport, now)
        ACK for a 2xx (built by the dialog); the INVITE client transaction
        (Accepted, RFC 6026) remembers it per To tag and resends it on 2xx
        retransmissions without bothering the TU again.
    layer.send_stateless(msg, dest_addr, transport)   no transaction
    layer.cancel_sent(txn, now)     arm the §9.1 64*T1 guard after a CANCEL
    layer.transport_error(txn, now) -> [event]    a send of txn failed
    layer.next_deadline() -> ms or None;  layer.on_timer(now) -> [event]
    layer.take_outgoing() -> [(bytes, (host, port), transport)]
    layer.find(key) / len(layer) / layer.stats (dict of counters)

Events: 3-tuples (kind, txn, msg)
    ("request", txn, req)      new server transaction (txn.invite_txn is the
                               matched INVITE server transaction for a CANCEL,
                               or None); for an ACK to a 2xx txn is the
                               Accepted INVITE server transaction or None
    ("response", txn, resp)    a response for a client transaction; a 2xx
                               to INVITE (the TU/dialog sends the ACK);
                               txn None: stray response (no transaction)
    ("timeout", txn, None)     Timer B/F (the TU sees a 408), Timer H (no
                               ACK for a non-2xx), Timer L with retransmit_2xx
                               (no ACK for a 2xx: the UAS should BYE)
    ("transport_error", txn, None)
    ("terminated", txn, None)  txn has left the table

Transactions: txn.kind ("ict", "nict", "ist", "nist"), txn.state, .request,
.status / .to_tag (of the last response sent or received), .method, .branch,
.key, .dest, .transport, .reliable, .user (free slot for the TU: keep there
what a later event needs).  To save memory a server transaction drops its
request (txn.request = None) once the TU has sent a final response; only the
serialised response is kept for retransmission.

Network input with no valid transition is dropped and counted in
stats["dropped"]; TU and timer events with no valid transition raise
TransactionError.

Helpers
    The RFC 3261 §18 rules (Via stamping, response addressing, stateless
    responses, the ACK for a non-2xx, address checks) are in sip/transport.py.
    request_key(request, method=None) -> the server-transaction table key
        (§17.2.3 branch/sent-by/method, ACK -> INVITE; RFC 2543 fallback key
        when the branch lacks the magic cookie); layer.find(key)

Bounds: MAX_TRANSACTIONS (table; when full, the oldest transaction that only
absorbs retransmissions (Completed / Accepted / Confirmed: waiting for Timer
D/I/J/K/L/M) is ended early to make room, counted in stats["evicted"]; when
every entry is live, a new request gets a stateless 503 with Retry-After,
counted in stats["overflow"]), MAX_FORK_ACKS
remembered ACKs per INVITE client transaction.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from sip.errors import SipError, SipParseError
from sip.message import Response, validate_request, validate_response
from sip.transport import (is_reliable, bad_destination, response_address, bare_host,
                           stateless_response, salvage_response, make_ack)

MAX_TRANSACTIONS = const(256)
MAX_FORK_ACKS = const(8)
MAGIC = "z9hG4bK"

T1 = const(500)
T2 = const(4000)
T4 = const(5000)

ICT = "ict"
NICT = "nict"
IST = "ist"
NIST = "nist"

CALLING = "calling"
TRYING = "trying"
PROCEEDING = "proceeding"
COMPLETED = "completed"
CONFIRMED = "confirmed"
ACCEPTED = "accepted"
TERMINATED = "terminated"
_LINGERING = (COMPLETED, ACCEPTED, CONFIRMED)


class TransactionError(SipError):
    """An event with no valid transition, or a misuse of the layer."""


class TableFull(TransactionError):
    """MAX_TRANSACTIONS reached (client side)."""


class Timers:
    """RFC 3261 timer base values (ms).  Derived: A=E=G=t1, B=F=H=J=L=M=64*t1,
    D=d (0 on reliable), I=K=t4 (0 on reliable), J 0 on reliable.
    c: Timer C, restarted by every provisional while an INVITE client
    transaction is in Proceeding (where Timer B no longer applies); its
    expiry is a timeout, so a lost final response cannot leak the
    transaction.  None disables it."""

    def __init__(self, t1=T1, t2=T2, t4=T4, d=32000, c=180000):
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.d = d
        self.c = c      # Timer C: INVITE client in Proceeding; None = off

    def long(self):
        return 64 * self.t1


# ---- transition tables: (state, event) -> new state -----------------------
# Network events: "1xx", "2xx", "300" (any final >= 300), "req" (request
# retransmission), "ack".  TU events: "tu_1xx", "tu_2xx", "tu_300".
# Timers: "A".."M", "T100" (auto 100 Trying), "G2" (2xx retransmission).
_TABLES = {
    ICT: {
        (CALLING, "A"): CALLING,
        (CALLING, "B"): TERMINATED,
        (CALLING, "1xx"): PROCEEDING,
        (CALLING, "2xx"): ACCEPTED,
        (CALLING, "300"): COMPLETED,
        (PROCEEDING, "B"): TERMINATED,   # only when armed by cancel_sent()
        (PROCEEDING, "C"): TERMINATED,
        (PROCEEDING, "1xx"): PROCEEDING,
        (PROCEEDING, "2xx"): ACCEPTED,
        (PROCEEDING, "300"): COMPLETED,
        (COMPLETED, "300"): COMPLETED,
        (COMPLETED, "D"): TERMINATED,
        (ACCEPTED, "2xx"): ACCEPTED,
        (ACCEPTED, "M"): TERMINATED,
    },
    NICT: {
        (TRYING, "E"): TRYING,
        (TRYING, "F"): TERMINATED,
        (TRYING, "1xx"): PROCEEDING,
        (TRYING, "2xx"): COMPLETED,
        (TRYING, "300"): COMPLETED,
        (PROCEEDING, "E"): PROCEEDING,
        (PROCEEDING, "F"): TERMINATED,
        (PROCEEDING, "1xx"): PROCEEDING,
        (PROCEEDING, "2xx"): COMPLETED,
        (PROCEEDING, "300"): COMPLETED,
        (COMPLETED, "2xx"): COMPLETED,
        (COMPLETED, "300"): COMPLETED,
        (COMPLETED, "K"): TERMINATED,
    },
    IST: {
        (PROCEEDING, "req"): PROCEEDING,
        (PROCEEDING, "T100"): PROCEEDING,
        (PROCEEDING, "tu_1xx"): PROCEEDING,
        (PROCEEDING, "tu_2xx"): ACCEPTED,
        (PROCEEDING, "tu_300"): COMPLETED,
        (COMPLETED, "req"): COMPLETED,
        (COMPLETED, "G"): COMPLETED,
        (COMPLETED, "H"): TERMINATED,
        (COMPLETED, "ack"): CONFIRMED,
        (CONFIRMED, "req"): CONFIRMED,
        (CONFIRMED, "ack"): CONFIRMED,
        (CONFIRMED, "I"): TERMINATED,
        (ACCEPTED, "req"): ACCEPTED,
        (ACCEPTED, "ack"): ACCEPTED,
        (ACCEPTED, "tu_2xx"): ACCEPTED,
        (ACCEPTED, "G2"): ACCEPTED,
        (ACCEPTED, "L"): TERMINATED,
    },
    NIST: {
        (TRYING, "req"): TRYING,
        (TRYING, "tu_1xx"): PROCEEDING,
        (TRYING, "tu_2xx"): COMPLETED,
        (TRYING, "tu_300"): COMPLETED,
        (PROCEEDING, "req"): PROCEEDING,
        (PROCEEDING, "tu_1xx"): PROCEEDING,
        (PROCEEDING, "tu_2xx"): COMPLETED,
        (PROCEEDING, "tu_300"): COMPLETED,
        (COMPLETED, "req"): COMPLETED,
        (COMPLETED, "J"): TERMINATED,
    },
}


def _status_event(status, tu=False):
    if status < 200:
        e = "1xx"
    elif status < 300:
        e = "2xx"
    else:
        e = "300"
    return "tu_" + e if tu else e


class Transaction:
    def __init__(self, kind, key, request, dest, transport, now):
        self.kind = kind
        self.key = key
        self.request = request
        self.method = request.method
        tv = request.top_via
        self.branch = tv.branch if tv is not None else None
        self.dest = dest
        self.transport = transport
        self.reliable = is_reliable(transport)
        self.created = now
        self.seq = 0
        self.state = None
        self.status = None       # last status sent (server) / received (client)
        self.to_tag = None       # To tag of that response
        self.req_to_tag = request.to.tag if request.to is not None else None
        self.data = None         # bytes retransmitted (request or response)
        self.timers = {}         # name -> deadline ms
        self.intervals = {}      # name -> current retransmit interval
        self.user = None
        self.invite_txn = None   # CANCEL server txn: the INVITE it cancels
        self.acks = None         # ICT Accepted: to-tag -> (bytes, addr, transport)
        self.ack_key = None      # IST Accepted: index key for the 2xx ACK
        self.ack_seen = False
        self.ack_data = None     # ICT Completed: the ACK for the non-2xx
        self.retx_2xx = False

    @property
    def is_client(self):
        return self.kind == ICT or self.kind == NICT

    @property
    def is_invite(self):
        return self.kind == ICT or self.kind == IST

    def __repr__(self):
        return "<%s %s %s %s>" % (self.kind, self.method, self.branch, self.state)


def _req_key(msg, method=None):
    """Server transaction key (§17.2.3), or RFC 2543 fallback key."""
    via = msg.top_via
    m = method or msg.method
    if m == "ACK":
        m = "INVITE"
    b = via.branch
    if b and b.startswith(MAGIC) and len(b) > 7:
        return "1|%s|%s:%s|%s" % (b, bare_host(via.host), via.port, m)
    ft = msg.from_.tag if msg.from_ is not None else None
    return "2|%s|%s|%d|%s|%s|%s" % (msg.call_id, ft, msg.cseq.num, m, via, msg.uri)


request_key = _req_key     # public name; _req_key stays for existing callers


def _ack2xx_key(call_id, from_tag, to_tag, cseq_num):
    return "%s|%s|%s|%d" % (call_id, from_tag, to_tag, cseq_num)


class TransactionLayer:
    def __init__(self, rng, timers=None, max_transactions=MAX_TRANSACTIONS,
                 retry_after=5, via_host=None, via_port=None, trying_delay=200,
                 retransmit_2xx=True):
        self.rng = rng
        self.timers = timers or Timers()
        self.max_transactions = max_transactions
        self.retry_after = retry_after
        self.via_host = via_host
        self.via_port = via_port
        self.trying_delay = trying_delay
        self.retransmit_2xx = retransmit_2xx
        self._txns = {}
        self.peak = 0             # most transactions held at once (sizing MAX_TRANSACTIONS)
        self._acc = {}          # ACK-to-2xx index -> Accepted IST
        self._seq = 0
        self._out = []
        self.stats = {"overflow": 0, "evicted": 0, "retransmissions": 0, "absorbed": 0,
                      "dropped": 0, "stray_responses": 0, "bad_destination": 0,
                      "bad_requests": 0, "timeouts": 0}

    # ---- table ----
    def __len__(self):
        return len(self._txns)

    def find(self, key):
        return self._txns.get(key)

    def transactions(self):
        return list(self._txns.values())

    def take_outgoing(self):
        out = self._out
        self._out = []
        return out

    def new_branch(self):
        return MAGIC + self.rng.token(8)

    def _emit(self, data, addr, transport):
        if bad_destination(addr):
            self.stats["bad_destination"] += 1
            return
        self._out.append((data, addr, transport))

    def _ensure_via(self, req, transport):
        tv = req.top_via
        if tv is None:
            if self.via_host is None:
                raise TransactionError("request has no Via and no via_host set")
            hp = self.via_host
            if self.via_port is not None:
                hp = "%s:%d" % (hp, self.via_port)
            req.add("Via", "SIP/2.0/%s %s;branch=%s;rport" %
                    (transport.upper(), hp, self.new_branch()), True)
        elif not tv.branch:
            v = tv.copy()
            v.params.set("branch", self.new_branch())
            req.set_first("Via", str(v))

    # ---- transitions ----
    def _go(self, txn, event, network=False):
        new = _TABLES[txn.kind].get((txn.state, event))
        if new is None:
            if network:
                self.stats["dropped"] += 1
                return None
            raise TransactionError("%s: no transition for %s in state %s" %
                                   (txn.kind, event, txn.state))
        old = txn.state
        txn.state = new
        return old

    def _evict_lingering(self):
        """Make room by ending the oldest transaction that only absorbs
        retransmissions (Completed/Accepted/Confirmed); False when none.
        A scan of the table, only when it is full (no index kept: memory)."""
        best = None
        for txn in self._txns.values():
            if txn.state in _LINGERING and (best is None or txn.seq < best.seq):
                best = txn
        if best is None:
            return False
        self.stats["evicted"] += 1
        self._terminate(best, [])
        return True

    def _terminate(self, txn, events):
        txn.state = TERMINATED
        txn.timers = {}
        if self._txns.get(txn.key) is txn:
            del self._txns[txn.key]
        if txn.ack_key is not None and self._acc.get(txn.ack_key) is txn:
            del self._acc[txn.ack_key]
        events.append(("terminated", txn, None))

    def _full(self):
        return len(self._txns) >= self.max_transactions and not self._evict_lingering()

    def _add(self, txn):
        if self._full():
            return False
        self._seq += 1
        txn.seq = self._seq
        self._txns[txn.key] = txn
        if len(self._txns) > self.peak:
            self.peak = len(self._txns)
        return True

    # ---- client side ----
    def send_request(self, req, dest, transport, now):
        if req.method == "ACK":
            raise TransactionError("ACK is not sent in a transaction; use send_ack")
        if self._full():
            raise TableFull("transaction table full (%d)" % self.max_transactions)
        self._ensure_via(req, transport)
        kind = ICT if req.method == "INVITE" else NICT
        key = "c|%s|%s" % (req.top_via.branch, req.cseq.method)
        if key in self._txns:
            raise TransactionError("client transaction exists: " + key)
        txn = Transaction(kind, key, req, dest, transport, now)
        txn.data = req.serialize()
        t = self.timers
        txn.state = CALLING if kind == ICT else TRYING
        self._add(txn)
        if not txn.reliable:
            name = "A" if kind == ICT else "E"
            txn.intervals[name] = t.t1
            txn.timers[name] = now + t.t1
        txn.timers["B" if kind == ICT else "F"] = now + t.long()
        self._emit(txn.data, dest, transport)
        return txn

    def send_ack(self, txn, ack, dest, transport, now=None):
        """Send an ACK for a 2xx; remembered by the Accepted INVITE client
        transaction txn (may be None) for 2xx retransmissions."""
        self._ensure_via(ack, transport)
        data = ack.serialize()
        self._emit(data, dest, transport)
        if txn is not None and txn.state == ACCEPTED:
            if txn.acks is None:
                txn.acks = {}
            tag = ack.to.tag if ack.to is not None else None
            if len(txn.acks) < MAX_FORK_ACKS or tag in txn.acks:
                txn.acks[tag] = (data, dest, transport)

    def send_stateless(self, msg, dest, transport):
        if msg.is_request:
            self._ensure_via(msg, transport)
        self._emit(msg.serialize(), dest, transport)

    def _note(self, txn, resp):
        txn.status = resp.status
        txn.to_tag = resp.to.tag if resp.to is not None else None

    def _client_response(self, resp, now):
        events = []
        tv = resp.top_via
        cs = resp.cseq
        txn = None
        if tv is not None and tv.branch and cs is not None:
            txn = self._txns.get("c|%s|%s" % (tv.branch, cs.method))
        if txn is None:
            self.stats["stray_responses"] += 1
            events.append(("response", None, resp))
            return events
        ev = _status_event(resp.status)
        old = self._go(txn, ev, True)
        if old is None:
            return events
        t = self.timers
        if txn.kind == ICT:
            if ev == "1xx":
                if old == CALLING:
                    txn.timers.pop("A", None)
                    txn.timers.pop("B", None)
                if t.c is not None:
                    txn.timers["C"] = now + t.c
                self._note(txn, resp)
                events.append(("response", txn, resp))
            elif ev == "2xx":
                txn.timers = {"M": now + t.long()} if old != ACCEPTED else txn.timers
                self._note(txn, resp)
                if old == ACCEPTED and txn.acks:
                    tag = resp.to.tag if resp.to is not None else None
                    a = txn.acks.get(tag)
                    if a is not None:
                        self.stats["absorbed"] += 1
                        self._emit(a[0], a[1], a[2])
                        return events
                events.append(("response", txn, resp))
            else:
                if old == COMPLETED:
                    self.stats["absorbed"] += 1
                    self._emit(txn.ack_data, txn.dest, txn.transport)
                    return events
                self._note(txn, resp)
                txn.ack_data = make_ack(txn.request, resp).serialize()
                self._emit(txn.ack_data, txn.dest, txn.transport)
                events.append(("response", txn, resp))
                txn.timers = {}
                if txn.reliable or t.d == 0:
                    self._terminate(txn, events)
                else:
                    txn.timers["D"] = now + t.d
        else:
            if old == COMPLETED:
                self.stats["absorbed"] += 1
                return events
            self._note(txn, resp)
            events.append(("response", txn, resp))
            if ev == "1xx":
                pass
            else:
                txn.timers = {}
                if txn.reliable:
                    self._terminate(txn, events)
                else:
                    txn.timers["K"] = now + t.t4
        return events

    # ---- server side ----
    def receive(self, msg, source, transport, now, key=None):
        """Feed one parsed message from the network; returns events.  `key`:
        the request's transaction key when the caller has already validated
        the request and computed it (the SIP core does, once)."""
        if not msg.is_request:
            if not validate_response(msg):
                self.stats["dropped"] += 1
                return []
            try:
                return self._client_response(msg, now)
            except SipParseError:
                self.stats["dropped"] += 1
                return []
        try:
            if key is None:
                if validate_request(msg) is not None or msg.top_via is None:
                    raise SipParseError("missing mandatory header")
                key = _req_key(msg)
        except SipParseError as e:
            self.stats["bad_requests"] += 1
            if msg.method != "ACK" and msg.get("via") is not None:
                r = salvage_response(msg.serialize(), e.status, e.reason_phrase)
                if r is not None:
                    self._emit(r.serialize(), source, transport)
            return []
        if msg.method == "ACK":
            return self._server_ack(msg, key, now)
        txn = self._txns.get(key)
        if txn is not None:
            return self._server_retx(txn, msg, now)
        kind = IST if msg.method == "INVITE" else NIST
        dest = source if is_reliable(transport) else response_address(msg)
        txn = Transaction(kind, key, msg, dest, transport, now)
        if not self._add(txn):
            self.stats["overflow"] += 1
            r = stateless_response(msg, 503, None,
                                   (("Retry-After", str(self.retry_after)),))
            self._emit(r.serialize(), dest, transport)
            return []
        if kind == IST:
            txn.state = PROCEEDING
            if self.trying_delay is not None:
                txn.timers["T100"] = now + self.trying_delay
        else:
            txn.state = TRYING
        if msg.method == "CANCEL":
            txn.invite_txn = self._txns.get(_req_key(msg, "INVITE"))
        return [("request", txn, msg)]

    def _server_retx(self, txn, msg, now):
        if txn.kind == ICT or txn.kind == NICT:
            self.stats["dropped"] += 1    # a request looped back onto our own
            return []
        if not self._to_tag_ok(txn, msg, False):
            self.stats["dropped"] += 1
            return []
        if self._go(txn, "req", True) is None:
            return []
        self.stats["absorbed"] += 1
        if txn.data is not None and txn.state != CONFIRMED:
            self.stats["retransmissions"] += 1
            self._emit(txn.data, txn.dest, txn.transport)
        return []

    def _to_tag_ok(self, txn, msg, is_ack):
        if txn.key[0] != "2":
            return True
        tag = msg.to.tag if msg.to is not None else None
        if is_ack and txn.status is not None and txn.status >= 200:
            return tag == txn.to_tag
        return tag == txn.req_to_tag

    def _server_ack(self, ack, key, now):
        txn = self._txns.get(key)
        if txn is not None and txn.kind == IST and self._to_tag_ok(txn, ack, True):
            old = self._go(txn, "ack", True)
            if old is None:
                return []
            if old == COMPLETED:
                txn.timers = {}
                txn.data = None
                events = []
                if txn.reliable:
                    self._terminate(txn, events)
                else:
                    txn.timers["I"] = now + self.timers.t4
                return events
            if old == ACCEPTED:
                return self._ack_2xx(txn, ack)
            self.stats["absorbed"] += 1
            return []
        ft = ack.from_.tag if ack.from_ is not None else None
        tt = ack.to.tag if ack.to is not None else None
        t2 = self._acc.get(_ack2xx_key(ack.call_id, ft, tt, ack.cseq.num))
        if t2 is not None:
            return self._ack_2xx(t2, ack)
        return [("request", None, ack)]

    def _ack_2xx(self, txn, ack):
        txn.ack_seen = True
        txn.timers.pop("G2", None)
        return [("request", txn, ack)]

    def respond(self, txn, resp, now, retransmit_2xx=None):
        if txn.kind != IST and txn.kind != NIST:
            raise TransactionError("respond() on a client transaction")
        if txn.state == TERMINATED:
            raise TransactionError("respond() on a terminated transaction")
        ev = _status_event(resp.status, True)
        old = self._go(txn, ev)
        events = []
        t = self.timers
        self._note(txn, resp)
        txn.data = resp.serialize()
        self._emit(txn.data, txn.dest, txn.transport)
        txn.timers.pop("T100", None)
        if ev != "tu_1xx" and old != ACCEPTED:
            req = txn.request
            if txn.kind == IST and ev == "tu_2xx":
                ft = req.from_.tag if req.from_ is not None else None
                k = _ack2xx_key(req.call_id, ft, txn.to_tag, req.cseq.num)
                if k not in self._acc:
                    txn.ack_key = k
                    self._acc[k] = txn
            txn.request = None       # memory: only the response bytes stay
        if txn.kind == IST:
            if ev == "tu_2xx":
                if old == PROCEEDING:
                    txn.timers = {"L": now + t.long()}
                    if retransmit_2xx is None:
                        retransmit_2xx = self.retransmit_2xx
                    txn.retx_2xx = retransmit_2xx
                    if retransmit_2xx:
                        txn.intervals["G2"] = t.t1
                        txn.timers["G2"] = now + t.t1
            elif ev == "tu_300":
                txn.timers = {"H": now + t.long()}
                if not txn.reliable:
                    txn.intervals["G"] = t.t1
                    txn.timers["G"] = now + t.t1
        else:
            if ev != "tu_1xx":
                txn.timers = {}
                if txn.reliable:
                    self._terminate(txn, events)
                else:
                    txn.timers["J"] = now + t.long()
        return events

    def cancel_sent(self, txn, now):
        """The TU has sent a CANCEL for INVITE client transaction txn: if no
        final response arrives within 64*T1 the transaction times out (§9.1)."""
        if txn.kind == ICT and txn.state in (CALLING, PROCEEDING):
            d = now + self.timers.long()
            if txn.timers.get("B", d + 1) > d:
                txn.timers["B"] = d

    def transport_error(self, txn, now):
        events = []
        if txn.state != TERMINATED:
            events.append(("transport_error", txn, None))
            self._terminate(txn, events)
        return events

    # ---- timers ----
    def next_deadline(self):
        best = None
        for txn in self._txns.values():
            for d in txn.timers.values():
                if best is None or d < best:
                    best = d
        return best

    def on_timer(self, now):
        """Fire every timer due at `now`, in (deadline, creation order, name)
        order, so that runs are identical on both interpreters."""
        events = []
        due = []
        for txn in self._txns.values():
            for n in txn.timers:
                d = txn.timers[n]
                if d <= now:
                    due.append((d, txn.seq, n, txn))
        if not due:
            return events
        due.sort()
        for d, seq, name, txn in due:
            if txn.state != TERMINATED and txn.timers.get(name) == d:
                del txn.timers[name]
                self._fire(txn, name, now, events)
        return events

    def _fire(self, txn, name, now, events):
        old = self._go(txn, name)
        t = self.timers
        if name in ("A", "E", "G", "G2"):
            iv = txn.intervals[name]
            self.stats["retransmissions"] += 1
            self._emit(txn.data, txn.dest, txn.transport)
            if name == "A":
                iv = iv * 2
            elif name == "E" and old == PROCEEDING:
                iv = t.t2
            else:
                iv = min(iv * 2, t.t2)
            txn.intervals[name] = iv
            txn.timers[name] = now + iv
        elif name == "T100":
            r = stateless_response(txn.request, 100)
            txn.status = 100
            txn.data = r.serialize()
            self._emit(txn.data, txn.dest, txn.transport)
        elif name in ("B", "C", "F", "H"):
            self.stats["timeouts"] += 1
            events.append(("timeout", txn, None))
            self._terminate(txn, events)
        elif name == "L":
            if txn.retx_2xx and not txn.ack_seen:
                self.stats["timeouts"] += 1
                events.append(("timeout", txn, None))
            self._terminate(txn, events)
        else:   # D, I, J, K, M
            self._terminate(txn, events)
