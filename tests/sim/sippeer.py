"""A minimal peer call server for the analog-line simulation tests.

Runs as a task in the appliance's scheduler on its own UDP socket, on the
simulated network when given one (tests/sim/simnet.py), else on loopback:

    peer = SipPeer(app.sched, users={"1001": "pw1", ...}, realm="hq", network=net)
    peer.start()                     # binds host:<ephemeral>; peer.port
    peer.gateways.append(("9", "127.0.0.1", app.sip_port))   # PSTN prefix routing

domains: SIP domains it is the authority for besides its own address (a
branch's phones use the enterprise domain and the appliance as their
outbound proxy).  max_registers_per_s: an overloaded registrar's limit,
503 with Retry-After beyond it; register_times: (ms, status) of every
REGISTER answered (the benchmark's upstream rate).  path=True: RFC 3327,
Supported: path in every answer, a binding's Path headers become the Route
of requests to it.
Registrar: REGISTER needs digest credentials (sip.digest.DigestServer,
MD5/SHA-256, qop=auth); bindings[user] = contact URI, honouring expires
(0 removes).  Optionally INVITEs are challenged too (challenge_invites:
407 Proxy-Authenticate).
Proxy: transaction-stateless, record-routing (RFC 3261 §16.11): an INVITE
for a registered extension goes to its contact; a user part starting with a
gateway prefix goes to that gateway unchanged; anything else -> 404.
In-dialog requests follow Route (our own entry is removed) or the
Request-URI.  The proxy adds its Via with a branch derived from the
incoming one (so CANCEL and the ACK for a non-2xx take the INVITE's path),
decrements Max-Forwards (483 at 0) and relays responses along the Via
stack.  log: every request seen as (method, request-uri).
"""
import hashlib
import socket

from sip.message import parse, Response
from sip.transport import stateless_response
from sip.digest import DigestServer, ha1, OK, STALE
from sip.errors import SipError
from firmware.sched import RESTART
from firmware.compat import hexlify

MAGIC = "z9hG4bK"


class SipPeer:
    def __init__(self, sched, users=None, realm="hq.example", host="127.0.0.1",
                 challenge_invites=False, rng=None, network=None, domains=(),
                 max_registers_per_s=None, path=False):
        self.sched = sched
        self.network = network   # a SimNetwork, or None: a loopback socket
        self.users = dict(users or {})
        self.realm = realm
        self.host = host
        self.challenge_invites = challenge_invites
        self.domains = tuple(d.lower() for d in domains)   # SIP domains it serves too
        self.max_registers_per_s = max_registers_per_s     # overload: 503 beyond
        self.path = path             # RFC 3327: Supported: path; Path kept per binding
        self.paths = {}              # user -> [Path header values] of its binding
        self.register_times = []     # (ms, status) of every REGISTER answered
        self._second = (None, 0)
        self.bindings = {}       # user -> (contact uri str, expires)
        self.gateways = []       # (prefix, host, port)
        self.log = []
        self.responses = []      # (status, cseq method) relayed
        self.counters = {"registers_ok": 0, "challenges": 0, "forwarded": 0, "not_found": 0,
                         "responses_relayed": 0, "dropped": 0, "overloaded": 0}
        from firmware.compat import Random
        self.digest = DigestServer(realm, "peer-secret", rng or Random(7))
        self.sock = None
        self.port = None
        self.task = None
        self.now = lambda: self.sched.clock.now()

    # -- socket
    def bind(self):
        maker = socket if self.network is None else self.network
        s = maker.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((self.host, 0))
        s.setblocking(False)
        self.sock = s
        self.port = s.getsockname()[1]
        return self.port

    def start(self, sched=None):
        if sched is not None:
            self.sched = sched
        if self.sock is None:
            self.bind()
        self.task = self.sched.spawn(self._run, "sippeer", RESTART)
        return self.port

    def close(self):
        if self.task is not None:
            self.task.cancel()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    async def _run(self):
        while True:
            if self.network is not None:
                await self.sock.wait_readable()
            else:
                await self.sched.readable(self.sock)
            while True:
                try:
                    data, addr = self.sock.recvfrom(65535)
                except OSError:         # EAGAIN (BlockingIOError on CPython)
                    break
                self.datagram(data, addr)

    def send(self, msg, addr):
        self.sock.sendto(msg.serialize(), addr)

    def me(self):
        return "%s:%d" % (self.host, self.port)

    def _is_me(self, uri):
        if (uri.host or "").lower() in self.domains and uri.port is None:
            return True
        return uri.host == self.host and (uri.port or 5060) == self.port

    # -- dispatch
    def datagram(self, data, addr):
        try:
            msg = parse(data)
        except SipError:
            self.counters["dropped"] += 1
            return
        if msg.is_request:
            v = msg.top_via
            if v is not None:
                if v.host != addr[0]:
                    v.params.set("received", addr[0])
                if v.has_rport:
                    v.params.set("rport", str(addr[1]))
                msg.set_first("via", str(v))
            self.log.append((msg.method, str(msg.uri)))
            if msg.method == "REGISTER":
                self._register(msg, addr)
            else:
                self._proxy(msg, addr)
        else:
            self._response(msg)

    def _reply(self, req, status, reason=None, headers=()):
        if req.method == "ACK":
            return
        r = stateless_response(req, status, reason, headers)
        if self.path:
            r.add("Supported", "path")
        v = req.top_via
        host = v.received or v.host
        port = v.rport or v.port or 5060
        self.send(r, (host, port))

    def _lookup(self, user, realm, alg):
        pw = self.users.get(user)
        return None if pw is None else ha1(user, realm, pw, alg)

    def _auth(self, req, header, challenge_header, status):
        auth = req.get(header)
        now = self.now()
        if auth is not None:
            res = self.digest.verify(req.method, auth, self._lookup, now, uri=str(req.uri))
            if res.outcome == OK:
                return res.username
            stale = res.outcome == STALE
        else:
            stale = False
        self.counters["challenges"] += 1
        self._reply(req, status, None, [(challenge_header, c)
                                        for c in self.digest.challenge(now, stale=stale)])
        return None

    def _register(self, req, addr):
        now = self.now()
        sec, n = self._second
        if sec != now // 1000:
            sec, n = now // 1000, 0
        self._second = (sec, n + 1)
        if self.max_registers_per_s is not None and n >= self.max_registers_per_s:
            self.counters["overloaded"] += 1
            self.register_times.append((now, 503))
            self._reply(req, 503, None, (("Retry-After", "30"),))
            return
        user = self._auth(req, "authorization", "WWW-Authenticate", 401)
        if user is None:
            self.register_times.append((now, 401))
            return
        self.register_times.append((now, 200))
        self._register_ok(req, user)

    def _register_ok(self, req, user):
        aor = req.to.uri.user
        if aor != user:
            self._reply(req, 403, "Wrong User")
            return
        exp = req.expires if req.expires is not None else 3600
        hdrs = []
        for c in req.contact:
            if c == "*":
                continue
            e = c.params.get("expires")
            e = int(e) if e and e.isdigit() else exp
            if e == 0:
                self.bindings.pop(aor, None)
                self.paths.pop(aor, None)
            else:
                e = min(e, 3600)
                self.bindings[aor] = (str(c.uri), e)
                if self.path:
                    self.paths[aor] = req.get_all("path")
                hdrs.append(("Contact", "<%s>;expires=%d" % (c.uri, e)))
        self.counters["registers_ok"] += 1
        self._reply(req, 200, None, hdrs)

    def _branch(self, req):
        b = req.top_via.branch or ""
        # hexlify: MicroPython's md5 has no hexdigest()
        return MAGIC + hexlify(hashlib.md5(("%s|%s" % (b, self.port)).encode()).digest())[:16]

    def _proxy(self, req, addr):
        m = req.method
        mf = req.max_forwards
        if mf is not None and mf <= 0:
            self._reply(req, 483)
            return
        routes = req.route
        if routes and self._is_me(routes[0].uri):
            req.remove_first("route")
            routes = req.route
        if self.challenge_invites and m == "INVITE" and (req.to is None or req.to.tag is None):
            if self._auth(req, "proxy-authorization", "Proxy-Authenticate", 407) is None:
                return
        if routes:
            u = routes[0].uri
            dest = (u.host, u.port or 5060)
        elif self._is_me(req.uri):
            user = req.uri.user or ""
            b = self.bindings.get(user)
            target = None
            if b is not None:
                from sip.uri import parse_uri
                target = parse_uri(b[0])
                path = self.paths.get(user)
                if path:          # RFC 3327: the Path becomes the Route set
                    for v in reversed(path):
                        req.add("Route", v, True)
                    routes = req.route
            else:
                for prefix, host, port in self.gateways:
                    if user.startswith(prefix):
                        from sip.uri import URI
                        target = URI("sip", user, host, port)
                        break
            if target is None:
                if m in ("INVITE", "OPTIONS", "MESSAGE", "SUBSCRIBE"):
                    self.counters["not_found"] += 1
                    self._reply(req, 404)
                else:
                    self._reply(req, 481 if req.to and req.to.tag else 404)
                return
            req.uri = target
            dest = (target.host, target.port or 5060)
            if routes:
                dest = (routes[0].uri.host, routes[0].uri.port or 5060)
        else:
            dest = (req.uri.host, req.uri.port or 5060)
        req.set("Max-Forwards", str((mf if mf is not None else 70) - 1))
        if m == "INVITE" and (req.to is None or req.to.tag is None):
            req.add("Record-Route", "<sip:%s;lr>" % self.me(), True)
        req.add("Via", "SIP/2.0/UDP %s;branch=%s" % (self.me(), self._branch(req)), True)
        self.counters["forwarded"] += 1
        self.send(req, dest)

    def _response(self, resp):
        vias = resp.via
        if not vias or vias[0].host != self.host or vias[0].port != self.port:
            self.counters["dropped"] += 1
            return
        resp.remove_first("via")
        if len(vias) < 2:
            return
        v = vias[1]
        host = v.received or v.host
        port = v.rport or v.port or 5060
        self.counters["responses_relayed"] += 1
        self.responses.append((resp.status, resp.cseq.method))
        self.send(resp, (host, port))
