"""The outbound proxy with shadow registrations (issue 13 point 3): the
router's slot 50, for the branch SIP phones (the SIP stations of the call
server), active while a peer call server is in control
(firmware/voice/control.py).

A transaction-stateful proxy (RFC 3261 §16) over the SIP core's transaction
layer: every relayed request is a server transaction (the phone's or the
peer's) paired with one client transaction toward one target (no forking).

    px = OutboundProxy(app, cs)     # cs: the CallServer (registrar, settings);
                                    # built by it, app.outbound, core.relay
    px.claims(sreq) -> bool         # the router hooks of the gateway (30), the
                                    # registrar (40) and the call server (45) leave
                                    # these requests to slot 50
    px.foreign(sreq) -> bool        # the core, before its "not our URI" 404/483,
                                    # and for every ACK: requests routed through us

What is relayed, and where to:
  - REGISTER from a phone while a peer is in control -> the peer's registrar,
    Request-URI unchanged.  When the peer has advertised `path` in Supported
    (RFC 3327) we add Path: <sip:us;lr> and leave the Contacts alone; else each
    Contact becomes <sip:user@us;ob=KEY> (KEY: a hash of station and contact,
    stable across refreshes) so that the peer's requests for the phone come
    to us.  Challenges (401/407) go back unchanged: the peer authenticates,
    we do not.  On the peer's 2xx every contact it lists is held as a SHADOW
    binding in the local registrar (its bounded table) with the expiry the
    peer granted; the phone sees its own contacts in the 2xx.  An AoR that
    names no station -> 404; an analog station's AoR -> 403; a binding the
    local table cannot hold -> 403 as the local registrar answers (the
    licence).
  - a new request (INVITE, SUBSCRIBE, ...) from a phone while a peer is in
    control -> the peer, Request-URI unchanged, with Record-Route.  Emergency
    numbers are not claimed: the local call server sends them out of a
    local line in both modes.  A From that names no SIP station is not ours
    (the gateway's 403 stays).
  - the peer's request to <sip:user@us;ob=KEY> or to a phone's contact ->
    the phone's binding (its NAT address), with Record-Route.
  - requests with our Route on top (in-dialog requests of relayed dialogs,
    the peer's requests along Path) and ACKs for relayed 2xx: our Route is
    removed (§16.4), then the next Route, else the Request-URI (a phone's
    contact -> its binding).  ACK goes statelessly (§16.11 style, a new
    branch); ACKs for non-2xx end in our server transaction and our client
    transaction sends its own (§17.1.1.3).
  - CANCEL: the core answers it 200; we CANCEL our client transaction once
    it has had a provisional (§9.1, §16.10); the 487 comes back through.
  Max-Forwards 0 -> 483, else decremented (70 when absent); a request that
  carries a Via of ours whose loop hash (§16.3 item 4: Request-URI, top
  Route, From/To tags, Call-ID, CSeq, Proxy-Require, as received) equals its
  own -> 482.  Record-Route entries carry ;obr=u (toward the peer) or ;obr=d
  (toward a phone) so that a spiral through the peer back to a phone of
  this appliance is not a loop.  Responses go back along the Via stack: our
  Via removed, 100 not relayed (we send our own), a 2xx of an INVITE
  relayed again when the UAS retransmits it.  Only phones with a binding,
  phones naming a SIP station and the peer's addresses get relayed: the
  appliance is no open relay.

Bounds: MAX_RELAYS transactions relayed at once; beyond, and when the
transaction table is full: 503 with Retry-After RETRY_AFTER_S.  Shadow
bindings live in the registrar's table (call-server max-registrations).

Survival (LOCAL control): the registrar takes REGISTER again (local
credentials, the short survival-registration-expiry) and the call server
takes calls, with the shadow bindings already held: no phone re-registers at
failover.  After failback the phones' next REGISTERs come through here; the
survival grants, drawn from the upper half of that expiry, spread them over
it (docs/outbound-proxy.md).

Console: `show sip outbound-proxy`; `show sip registrations` marks shadow
bindings.
"""
from firmware.compat import const, md5, hexlify
from firmware.sipstack.router import OUTBOUND_PROXY
from firmware.voice.control import PEER
from sip.message import parse
from sip.transaction import TransactionError
from sip.transport import uri_address
from sip.dialog import create_cancel
from sip.errors import SipError

MAX_RELAYS = const(256)        # relayed transactions at once (503 + Retry-After beyond)
RETRY_AFTER_S = const(5)
DEFAULT_PEER_EXPIRES = const(3600)   # a 2xx that states no lifetime (RFC 3261 §10.2.4 default)
KEY_PARAM = "ob"               # our Contact upstream for a phone's contact
RR_PARAM = "obr"               # u: toward the peer, d: toward a phone
_MAGIC = "z9hG4bK"
_BRANCH = _MAGIC + "op"        # our branches: _BRANCH + 8 hex of loop hash + random

METHODS = ("INVITE", "REGISTER", "BYE", "INFO", "NOTIFY", "UPDATE", "REFER", "SUBSCRIBE")
_DIALOG_FORMING = ("INVITE", "SUBSCRIBE", "REFER")

COUNTERS = ("registers_relayed", "shadowed", "shadow_removed", "shadow_full",
            "requests_relayed", "acks_relayed", "cancels_relayed", "responses_relayed",
            "unknown_station", "analog_station", "loops", "too_many_hops", "overflow",
            "no_binding", "path_used")


def _hash(text):
    return hexlify(md5(text.encode()).digest())


def binding_key(station, contact):
    return _hash("%s|%s" % (station, contact))[:12]


class Relay:
    """One relayed transaction: the server side (sreq) and our client side."""

    def __init__(self, sreq, req, dest, transport):
        self.sreq = sreq
        self.req = req              # as sent downstream (our Via on top)
        self.dest = dest
        self.transport = transport
        self.txn = None
        self.provisional = False
        self.cancel_pending = False
        self.station = None         # REGISTER: the station, and per contact:
        self.contacts = []          # (original URI text, original URI, key)
        self.star = False
        self.done = False


class OutboundProxy:
    name = "outbound-proxy"
    priority = OUTBOUND_PROXY
    methods = METHODS

    def __init__(self, app, cs):
        self.app = app
        self.cs = cs
        self.core = core = app.sip
        self.relays = {}            # branch -> Relay in progress (MAX_RELAYS)
        self.peak = 0
        self.path_peers = {}        # peer host -> True once it advertised path
        self.keys = {}              # ob= key -> Binding (bounded: _remember)
        self.counters = {}
        for c in COUNTERS:
            self.counters[c] = 0
        core.router.add(self)
        core.relay = self
        core.stat_sections.append(("Outbound proxy", self.rows))
        cmds = getattr(app, "commands", None)
        if cmds is not None:
            cmds.register("show sip outbound-proxy", _show,
                          "Show the outbound proxy: mode, peer, relayed bindings, transactions")

    # -- who
    def active(self):
        ctl = self.app.control
        return ctl.state == PEER and ctl.peer is not None

    def _peers(self):
        g = getattr(self.app, "gateway_settings", None)
        return g.peers if g is not None else ()

    def from_peer(self, src):
        return self.from_peer_addr(src.addr)

    def _phone_source(self, src):
        """A phone with a binding sends from src (scan: bounded by the table)."""
        h, port = src.addr[0], src.addr[1]
        for lst in self.cs.registrar.by_station.values():
            for b in lst:
                if b.host == h and b.port == port:
                    return True
        return False

    def _station(self, na):
        """The SIP station a From/To names, or None."""
        if na is None or na.uri.scheme != "sip":
            return None
        st = self.cs.settings.station_for_aor(na.uri.user_plain or "")
        return st if st is not None and st.type == "sip" else None

    def _is_me(self, uri):
        ident = self.app.identity
        return self.core.is_local_uri(uri) and (uri.port or 5060) == ident.port

    def _remember(self, key, b):
        """key -> binding, at most one entry per live binding: entries of
        bindings that are gone are dropped when the map reaches the table's
        bound."""
        keys = self.keys
        if key not in keys and len(keys) >= self.cs.max_bindings:
            reg = self.cs.registrar
            for k in list(keys):
                v = keys[k]
                if reg.find(v.station, v.contact) is not v:
                    del keys[k]
        keys[key] = b

    def _binding_by_key(self, key):
        """The binding the peer's request names (our ob= contact): the map,
        else a scan (a binding made locally in survival, same key)."""
        reg = self.cs.registrar
        b = self.keys.get(key)
        if b is not None and reg.find(b.station, b.contact) is b:
            return b
        for lst in reg.by_station.values():
            for b in lst:
                if binding_key(b.station, b.contact) == key:
                    self._remember(key, b)
                    return b
        return None

    def _binding_by_contact(self, uri):
        text = str(uri)
        for lst in self.cs.registrar.by_station.values():
            for b in lst:
                if b.contact == text:
                    return b
        return None

    def _our_key(self, uri):
        if uri.scheme != "sip" or not self._is_me(uri):
            return None
        return uri.params.get(KEY_PARAM)

    def _emergency(self, req):
        u = req.uri
        n = u.user_plain if u.scheme == "sip" else u.user
        return n in self.cs.emergency()

    # -- the router hooks
    def claims(self, sreq):
        """Is this new request (Request-URI ours) the proxy's?  Asked by the
        modules before slot 50 so that they leave it."""
        req = sreq.request
        if req is None:
            return False
        if self._our_key(req.uri) is not None:
            return True                    # the peer, to a phone behind us (any mode)
        if not self.active() or sreq.method not in METHODS:
            return False
        if sreq.method == "REGISTER":
            return not self.from_peer(sreq.source)
        if (req.to is not None and req.to.tag) or self.from_peer(sreq.source):
            return False
        if sreq.method == "INVITE" and self._emergency(req):
            return False                   # always the local call server's
        return self._station(req.from_) is not None

    def take(self, sreq):
        if not self.claims(sreq):
            return False
        if sreq.method == "REGISTER":
            self._register(sreq)
        else:
            self._relay(sreq, self._from_phone(sreq))
        return True

    def foreign(self, sreq):
        """A request whose Request-URI is not ours or that carries our Route
        on top (and every ACK): True when relayed or answered here."""
        req = sreq.request
        if not self._peers():
            return False                   # no peer: nothing is relayed (the core's 404)
        routes = req.route
        mine = bool(routes) and self._is_me(routes[0].uri)
        if not mine and self.core.is_local_uri(req.uri):
            return False
        if mine and len(routes) == 1 and self.core.is_local_uri(req.uri) \
                and self._our_key(req.uri) is None:
            return False                   # to us, through us: the appliance's own
        src = sreq.source
        upstream = self._from_phone(sreq)
        if not upstream and not self.from_peer(src):
            return False                   # strangers: the core's 404/483 (no open relay)
        if sreq.method == "ACK":
            self._ack(sreq)
        elif sreq.method == "REGISTER" and self.active():
            self._register(sreq)
        else:
            self._relay(sreq, upstream)
        return True

    def _from_phone(self, sreq):
        src = sreq.source
        if self.from_peer(src):
            return False
        return self._phone_source(src) or (
            self.active() and (sreq.method == "REGISTER" or self._station(sreq.request.from_)
                               is not None))

    # -- §16.3 checks
    def _loop_hash(self, req):
        routes = req.get("route") or ""
        f = req.from_
        t = req.to
        return _hash("|".join((str(req.uri), routes.split(",")[0],
                               (f.tag if f is not None else "") or "",
                               (t.tag if t is not None else "") or "",
                               req.call_id or "", str(req.cseq.num),
                               req.get("proxy-require") or "")))[:8]

    def _check(self, sreq, req):
        """(loop hash) or None once answered (483, 482)."""
        mf = req.max_forwards
        if mf is not None and mf <= 0:
            self.counters["too_many_hops"] += 1
            if req.method != "ACK":
                sreq.respond(483)
            return None
        lh = self._loop_hash(req)
        me = self.app.identity
        for v in req.via:
            b = v.branch or ""
            if b.startswith(_BRANCH) and b[len(_BRANCH):len(_BRANCH) + 8] == lh and \
                    (v.port or 5060) == me.port and \
                    (v.host or "").lower().strip("[]") in self.core.local_hosts:
                self.counters["loops"] += 1
                if req.method != "ACK":
                    sreq.respond(482)
                return None
        return lh

    # -- targets
    def _upstream(self, register=False):
        ref = self.app.control.call_server()
        return (ref.registrar_dest() if register else ref.dest()), ref.transport

    def _target(self, req, upstream):
        """(dest, transport) for req after our Route went, or None (no binding);
        may rewrite the Request-URI (our ob= contact -> the phone's own)."""
        routes = req.route
        if routes and self._is_me(routes[0].uri):
            req.remove_first("route")
            routes = req.route
        if routes:
            return uri_address(routes[0].uri), "UDP"
        key = self._our_key(req.uri)
        if key is not None:
            b = self._binding_by_key(key)
            if b is None:
                return None
            from sip.uri import parse_uri
            req.uri = parse_uri(b.contact)
            return b.dest, b.transport
        b = self._binding_by_contact(req.uri)
        if b is not None:
            return b.dest, b.transport
        if upstream and (req.to is None or not req.to.tag or self.core.is_local_uri(req.uri)):
            if not self.active():
                return None
            return self._upstream()
        return uri_address(req.uri), "UDP"

    def _via(self, lh, transport):
        return "SIP/2.0/%s %s;branch=%s%s%s;rport" % (
            transport, self.app.identity.hostport(), _BRANCH, lh, self.app.rng.token(4))

    def _full(self, sreq):
        if len(self.relays) < MAX_RELAYS:
            return False
        self.counters["overflow"] += 1
        sreq.respond(503, None, (("Retry-After", str(RETRY_AFTER_S)),))
        return True

    # -- relaying requests
    def _relay(self, sreq, upstream):
        req = parse(sreq.request.serialize())      # the server side keeps its own
        lh = self._check(sreq, req)
        if lh is None or self._full(sreq):
            return
        t = self._target(req, upstream)
        if t is None:
            self.counters["no_binding"] += 1
            sreq.respond(480, "Temporarily Unavailable (Not Registered)")
            return
        dest, transport = t
        if req.method in _DIALOG_FORMING and (req.to is None or not req.to.tag):
            req.add("Record-Route", "<sip:%s;lr;%s=%s>" % (
                self.app.identity.hostport(), RR_PARAM, "u" if upstream else "d"), True)
        self._send(sreq, req, lh, dest, transport)
        self.counters["requests_relayed"] += 1

    def _hop(self, req, lh, transport):
        """§16.6 steps 3 and 8: one hop less, our Via on top."""
        mf = req.max_forwards
        req.set("Max-Forwards", str((70 if mf is None else mf) - 1))
        req.add("Via", self._via(lh, transport), True)

    def _send(self, sreq, req, lh, dest, transport, relay=None):
        self._hop(req, lh, transport)
        r = relay or Relay(sreq, req, dest, transport)
        r.req = req
        now = self.app.clock.now()
        try:
            txn = self.core.layer.send_request(req, dest, transport, now)
        except TransactionError:
            self.counters["overflow"] += 1
            sreq.respond(503, None, (("Retry-After", str(RETRY_AFTER_S)),))
            return None
        r.txn = txn
        txn.user = lambda resp, now, r=r: self._response(r, resp, now)
        sreq.proxied = True
        branch = req.top_via.branch
        self.relays[branch] = r
        if len(self.relays) > self.peak:
            self.peak = len(self.relays)
        if sreq.method == "INVITE":
            sreq.on_cancel = lambda s, r=r: self._cancel(r)
            sreq.respond(100)
        self.core.kick()
        return r

    def _ack(self, sreq):
        req = sreq.request
        lh = self._check(sreq, req)
        if lh is None:
            return
        t = self._target(req, False)
        if t is None:
            self.counters["no_binding"] += 1
            return
        self._hop(req, lh, t[1])
        self.core.layer.send_stateless(req, t[0], t[1])
        self.core.kick()
        self.counters["acks_relayed"] += 1

    def _cancel(self, r):
        if r.done:
            return
        if not r.provisional:
            r.cancel_pending = True       # §9.1: not before a provisional
            return
        r.cancel_pending = False
        now = self.app.clock.now()
        try:
            t = self.core.layer.send_request(create_cancel(r.req), r.dest, r.transport, now)
            t.user = _ignore          # its 200 ends here; the INVITE's 487 goes back
            self.core.layer.cancel_sent(r.txn, now)
        except TransactionError:
            self.counters["overflow"] += 1
            return
        self.counters["cancels_relayed"] += 1
        self.core.kick()

    # -- responses
    def peer_answered(self, addr, resp):
        """A response from addr (a relayed request's, or the monitor's probe):
        a peer that advertises path (RFC 3327) gets Path from now on."""
        if "path" in _supported(resp) and self.from_peer_addr(addr):
            self.path_peers[addr[0]] = True

    def _response(self, r, resp, now):
        self.peer_answered(r.dest, resp)
        status = resp.status
        if status < 200:
            r.provisional = True
            if r.cancel_pending:
                self._cancel(r)
            if status == 100:
                return                    # hop by hop: we sent our own
        elif not r.done:
            r.done = True
            self.relays.pop(r.req.top_via.branch, None)
            if r.station is not None and status // 100 == 2:
                self._shadow(r, resp, now)
        resp.remove_first("via")
        if not resp.via:
            return
        if r.station is not None:
            self._restore_contacts(r, resp)
        self.counters["responses_relayed"] += 1
        r.sreq.forward(resp)

    def from_peer_addr(self, addr):
        for p in self._peers():
            if addr[0] == p["address"] or addr[0] == p["registrar"]:
                return True
        return False

    # -- REGISTER
    def _register(self, sreq):
        req = sreq.request
        st = self._station(req.to)
        if st is None:
            to = req.to
            s = self.cs.settings.station_for_aor(to.uri.user_plain or "") if to is not None \
                else None
            if s is not None:
                self.counters["analog_station"] += 1
                sreq.respond(403, "Forbidden (Analog Station)")
            else:
                self.counters["unknown_station"] += 1
                sreq.respond(404, "Not Found (No Such Station)")
            return
        fwd = parse(req.serialize())
        lh = self._check(sreq, fwd)
        if lh is None or self._full(sreq):
            return
        dest, transport = self._upstream(True)
        r = Relay(sreq, fwd, dest, transport)
        r.station = st
        try:
            cs = fwd.contact
        except SipError:
            sreq.respond(400, "Bad Contact")
            return
        path = self.path_peers.get(dest[0], False)
        texts = []
        for c in cs or ():
            if c == "*":
                r.star = True
                continue
            text = str(c.uri)
            texts.append(text)
            r.contacts.append((text, c.uri, binding_key(st.name, text)))
        refused = self.cs.registrar.room_for(st, texts) if _adds(fwd) else None
        if refused is not None:
            sreq.respond(refused[0], refused[1])
            return
        if r.contacts and not path:
            fwd.remove("contact")
            ident = self.app.identity
            for c in cs:
                na = c.copy()
                na.uri = _our_contact(c.uri, st, ident.hostport(), binding_key(st.name, str(c.uri)))
                fwd.add("Contact", str(na))
        elif r.contacts:
            fwd.add("Path", "<sip:%s;lr>" % self.app.identity.hostport(), True)
            self.counters["path_used"] += 1
        if self._send(sreq, fwd, lh, dest, transport, r) is not None:
            self.counters["registers_relayed"] += 1

    def _shadow(self, r, resp, now):
        """The peer's 2xx: hold what it granted (and nothing it did not list)."""
        reg = self.cs.registrar
        st = r.station
        sreq = r.sreq
        req = r.req
        if r.star:
            n = len(reg.contacts(st.name))
            reg.drop_station(st.name)
            self.counters["shadow_removed"] += n
            return
        granted = {}
        try:
            hexp = resp.expires
            for c in resp.contact or ():
                if c == "*":
                    continue
                e = c.params.get("expires")
                life = int(e) if e is not None and e.isdigit() else hexp
                k = c.uri.params.get(KEY_PARAM) or binding_key(st.name, str(c.uri))
                granted[k] = DEFAULT_PEER_EXPIRES if life is None else life
        except (SipError, ValueError):
            return
        ua = req.get("user-agent")
        for text, uri, key in r.contacts:
            life = granted.get(key, 0)
            had = reg.find(st.name, text) is not None
            b = reg.shadow(st, text, uri, sreq.source, life, req.call_id, req.cseq.num, ua, now)
            if b is not None:
                self._remember(key, b)
                self.counters["shadowed"] += 1
            elif life > 0:
                self.counters["shadow_full"] += 1
            elif had:
                self.counters["shadow_removed"] += 1
        self.cs.rearm()

    def _restore_contacts(self, r, resp):
        """The phone sees its own contacts in the peer's answer."""
        try:
            cs = resp.contact
        except SipError:
            return
        if not cs:
            return
        back = {}
        for text, uri, key in r.contacts:
            back[key] = uri
        resp.remove("contact")
        for c in cs:
            if c == "*":
                resp.add("Contact", "*")
                continue
            k = c.uri.params.get(KEY_PARAM) if self._is_me(c.uri) else None
            orig = back.get(k) if k is not None else None
            if orig is None and k is not None:
                b = self._binding_by_key(k)
                if b is not None:
                    from sip.uri import parse_uri
                    orig = parse_uri(b.contact)
            if orig is not None:
                c = c.copy()
                c.uri = orig
            resp.add("Contact", str(c))

    # -- views
    def rows(self):
        reg = self.cs.registrar
        out = [("mode", "relaying to the peer" if self.active() else
                "standby (the local call server is in control)"),
               ("shadow bindings", reg.shadow_count()),
               ("relays", "%d/%d (peak %d)" % (len(self.relays), MAX_RELAYS, self.peak))]
        for k in COUNTERS:
            out.append((k.replace("_", " "), self.counters[k]))
        return out

    def show(self):
        ctl = self.app.control
        lines = ["Outbound proxy: %s" % (
            "relaying the branch phones to %s" % ctl.call_server().describe() if self.active()
            else "standby: %s is in control" % ctl.who())]
        peers = self._peers()
        for p in peers:
            lines.append("  Peer %s: registrar %s:%d, Path (RFC 3327): %s" % (
                p["name"], p["registrar"], p["port"],
                "yes" if self.path_peers.get(p["registrar"]) else "no (our Contact instead)"))
        for name, value in self.rows():
            lines.append("  %-28s %s" % (name, value))
        return "\n".join(lines)


def _show(app, args):
    px = getattr(app, "outbound", None)
    if px is None:
        return "Outbound proxy: off (no SIP station is configured)"
    return px.show()


def _ignore(resp, now):
    pass


def _supported(msg):
    try:
        return [t.lower() for t in msg.supported]
    except SipError:
        return []


def _adds(req):
    """Does this REGISTER bind anything (not a removal)?"""
    try:
        if req.expires == 0:
            return False
    except SipError:
        return False
    return True


def _our_contact(uri, st, hostport, key):
    from sip.uri import parse_uri
    return parse_uri("sip:%s@%s;%s=%s" % (uri.user or st.extension, hostport, KEY_PARAM, key))
