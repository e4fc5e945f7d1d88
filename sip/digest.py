"""HTTP Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760).

Server side (stored credentials are HA1 hex strings, never passwords):
    srv = DigestServer(realm, secret_key, rng, nonce_ttl_ms=300000,
                       algorithms=("SHA-256", "MD5"), qop="auth",
                       max_track=MAX_NONCE_TRACK)
    srv.challenge(now, stale=False, algorithms=None) -> [header value, ...]
        one WWW-Authenticate / Proxy-Authenticate value per algorithm,
        strongest first; stateless nonce = hex(now) + 128-bit salt +
        HMAC-SHA256(key, now, salt, realm, bind)
    srv.verify(method, auth_value, lookup_ha1, now, uri=None, body=b"", bind="")
        -> AuthResult(.outcome, .username, .algorithm, .ok)
        lookup_ha1(username, realm, algorithm) -> HA1 hex or None.
        bind: the source the nonce is tied to (the caller passes the packet's
        "host:port" to challenge() and verify(); "" for none).  A nonce only
        verifies from the source it was issued to.
        The nonce is checked before the credentials: a nonce we did not issue,
        issued to another source, or expired, gives STALE whatever the
        password, so FAILED (which the caller counts toward blocking the
        source) always means "this source received our challenge and answered
        it wrongly": a spoofed source cannot get a phone's address blocked,
        and an unissued nonce is no password oracle.
        outcomes:
          OK              credentials good, nonce fresh, nc increasing
          STALE           nonce expired, unknown, forged or issued to another
                          source (password not checked): answer 401/407 with
                          challenge(now, stale=True, bind=...)
          FAILED          wrong credentials, unknown user (indistinguishable),
                          missing qop, on a nonce we issued to this source:
                          answer 401/407 with a fresh challenge (or 403 after
                          too many attempts)
          REPLAY          nc not above the highest seen for that nonce: fresh
                          challenge
          NO_CREDENTIALS  no/unknown scheme (e.g. "NoOneKnowsThisScheme"),
                          other realm, unsupported algorithm: challenge
          MALFORMED       unparsable Digest header, uri mismatch: 400
    parse_auth(value) -> (scheme, {lower-case name: unquoted value})
        raises SipParseError when malformed
Client side:
    cl = DigestClient()
    cl.authorize(method, uri, challenge, username, password_or_ha1, rng,
                 body=b"", is_ha1=False) -> Authorization header value
        challenge: one WWW-/Proxy-Authenticate value or a list of them (the
        strongest supported algorithm is chosen); nc increments per nonce.
        password_or_ha1 may be a function (realm, algorithm) -> HA1 hex or
        None (stored credentials; None raises SipParseError).
Helpers: ha1(user, realm, password, algorithm="MD5"), hmac_sha256(key, msg),
    hexdigest(algorithm, text).

Bounds: MAX_NONCE_TRACK nonces remembered for nc replay checks (oldest
evicted; nonces older than the evicted one are then answered STALE), and
MAX_AUTH_PARAMS parameters per header.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

import hashlib
from sip.errors import SipParseError
from sip.headers import qend, unquote, quote, is_token

MAX_NONCE_TRACK = const(256)
NONCE_SALT_BYTES = const(16)       # 128 bits from the random source per nonce
_NONCE_KEY = const(44)             # hex chars of time stamp (12) and salt (32)
_NONCE_LEN = const(76)             # ... and of the MAC (32)
MAX_AUTH_PARAMS = const(32)
MAX_AUTH_LEN = const(4096)

OK = "ok"
STALE = "stale"
FAILED = "failed"
REPLAY = "replay"
NO_CREDENTIALS = "no-credentials"
MALFORMED = "malformed"

_ALGS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def _hfun(algorithm):
    a = (algorithm or "MD5").upper()
    if a.endswith("-SESS"):
        a = a[:-5]
    return _ALGS.get(a)


def hexdigest(algorithm, text):
    f = _hfun(algorithm)
    if isinstance(text, str):
        text = text.encode()
    return f(text).digest().hex()


def ha1(user, realm, password, algorithm="MD5"):
    """HA1 = H(user:realm:password) as lower-case hex."""
    return hexdigest(algorithm, "%s:%s:%s" % (user, realm, password))


def hmac_sha256(key, msg):
    if isinstance(key, str):
        key = key.encode()
    if isinstance(msg, str):
        msg = msg.encode()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key + b"\x00" * (64 - len(key))
    ipad = bytes([b ^ 0x36 for b in key])
    opad = bytes([b ^ 0x5C for b in key])
    inner = hashlib.sha256(ipad + msg).digest()
    return hashlib.sha256(opad + inner).digest()


def _eq(a, b):
    """Comparison whose time does not depend on where a and b differ: the
    (fast, C-level) equality runs on SHA-256 digests of both, so where a
    mismatch is found says nothing about a and b themselves."""
    return hashlib.sha256(a.encode()).digest() == hashlib.sha256(b.encode()).digest()


def parse_auth(value):
    """'Digest a=b, c="d"' -> ("digest", {"a": "b", "c": "d"})."""
    if value is None:
        raise SipParseError("no credentials", "Authorization")
    v = value.strip()
    if len(v) > MAX_AUTH_LEN:
        raise SipParseError("credentials too long", "Authorization")
    sp = 0
    while sp < len(v) and v[sp] not in " \t":
        sp += 1
    scheme = v[:sp]
    if not is_token(scheme):
        raise SipParseError("bad auth scheme", "Authorization")
    rest = v[sp:]
    params = {}
    i = 0
    n = len(rest)
    while i < n:
        while i < n and rest[i] in " \t,":
            i += 1
        if i >= n:
            break
        e = rest.find("=", i)
        if e < 0:
            raise SipParseError("bad auth parameter", "Authorization")
        name = rest[i:e].strip().lower()
        if not is_token(name):
            raise SipParseError("bad auth parameter", "Authorization")
        j = e + 1
        while j < n and rest[j] in " \t":
            j += 1
        if j < n and rest[j] == '"':
            q = qend(rest, j, "Authorization")
            val = unquote(rest[j + 1:q])
            i = q + 1
        else:
            c = rest.find(",", j)
            if c < 0:
                c = n
            val = rest[j:c].strip()
            i = c
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] != ",":
            raise SipParseError("bad auth parameter list", "Authorization")
        if name in params:
            raise SipParseError("duplicate auth parameter", "Authorization")
        if len(params) >= MAX_AUTH_PARAMS:
            raise SipParseError("too many auth parameters", "Authorization")
        params[name] = val
    return scheme.lower(), params


def _response(alg, h1, nonce, nc, cnonce, qop, method, uri, body):
    """request-digest of RFC 7616 §3.4.1 (qop auth/auth-int or none)."""
    if (alg or "").upper().endswith("-SESS"):
        h1 = hexdigest(alg, "%s:%s:%s" % (h1, nonce, cnonce))
    if qop == "auth-int":
        a2 = "%s:%s:%s" % (method, uri, hexdigest(alg, body or b""))
    else:
        a2 = "%s:%s" % (method, uri)
    h2 = hexdigest(alg, a2)
    if qop:
        return hexdigest(alg, "%s:%s:%s:%s:%s:%s" % (h1, nonce, nc, cnonce, qop, h2))
    return hexdigest(alg, "%s:%s:%s" % (h1, nonce, h2))


class AuthResult:
    __slots__ = ("outcome", "username", "algorithm")

    def __init__(self, outcome, username=None, algorithm=None):
        self.outcome = outcome
        self.username = username
        self.algorithm = algorithm

    @property
    def ok(self):
        return self.outcome == OK

    def __repr__(self):
        return "AuthResult(%s, %r)" % (self.outcome, self.username)


_HEXCH = "0123456789abcdef"


class DigestServer:
    def __init__(self, realm, secret_key, rng, nonce_ttl_ms=300000,
                 algorithms=("SHA-256", "MD5"), qop="auth", max_track=MAX_NONCE_TRACK):
        self.realm = realm
        self.key = secret_key.encode() if isinstance(secret_key, str) else secret_key
        self.rng = rng
        self.ttl = nonce_ttl_ms
        self.algorithms = algorithms
        self.qop = qop
        self._nc = {}                       # nonce[:_NONCE_KEY] -> highest nc seen
        self.max_track = max_track
        self._ring = [None] * max_track
        self._pos = 0
        self._floor = -1                    # ts of the newest evicted nonce
        self.evicted = 0

    def _mac(self, ts, salt, bind):
        return hmac_sha256(self.key, "%s%s%s\n%s" % (ts, salt, self.realm, bind))[:16].hex()

    def make_nonce(self, now, bind=""):
        ts = "%012x" % (now & 0xFFFFFFFFFFFF)
        salt = self.rng.token(NONCE_SALT_BYTES)
        return ts + salt + self._mac(ts, salt, bind)

    def _nonce_ts(self, nonce, bind=""):
        """Timestamp of a nonce we issued to `bind`, or None."""
        if len(nonce) != _NONCE_LEN:
            return None
        for c in nonce:
            if c not in _HEXCH:
                return None
        ts = nonce[:12]
        if not _eq(self._mac(ts, nonce[12:_NONCE_KEY], bind), nonce[_NONCE_KEY:]):
            return None
        return int(ts, 16)

    def challenge(self, now, stale=False, algorithms=None, bind=""):
        nonce = self.make_nonce(now, bind)
        out = []
        for alg in (algorithms or self.algorithms):
            v = 'Digest realm=%s, nonce="%s", algorithm=%s, qop="%s"' % (
                quote(self.realm), nonce, alg, self.qop)
            if stale:
                v += ", stale=true"
            out.append(v)
        return out

    def verify(self, method, auth_value, lookup_ha1, now, uri=None, body=b"", bind=""):
        if auth_value is None:
            return AuthResult(NO_CREDENTIALS)
        try:
            scheme, p = parse_auth(auth_value)
        except SipParseError:
            # unparsable: if it is not even Digest, it is "no credentials"
            s = auth_value.strip().split(" ", 1)[0].lower()
            return AuthResult(MALFORMED if s == "digest" else NO_CREDENTIALS)
        if scheme != "digest":
            return AuthResult(NO_CREDENTIALS)
        if p.get("realm") != self.realm:
            return AuthResult(NO_CREDENTIALS)
        alg = p.get("algorithm", "MD5")
        algu = alg.upper()
        if algu not in self.algorithms and alg not in self.algorithms:
            return AuthResult(NO_CREDENTIALS)
        user = p.get("username")
        nonce = p.get("nonce")
        duri = p.get("uri")
        resp = p.get("response")
        if not user or nonce is None or duri is None or not resp:
            return AuthResult(MALFORMED, user, algu)
        if uri is not None and duri != str(uri):
            return AuthResult(MALFORMED, user, algu)
        # the nonce first: one we issued, to this source, still fresh; else
        # STALE without looking at the password (see the module docstring)
        ts = self._nonce_ts(nonce, bind)
        if ts is None or now - ts > self.ttl or ts - now > self.ttl:
            return AuthResult(STALE, user, algu)
        qop = p.get("qop")
        if qop != self.qop:
            return AuthResult(FAILED, user, algu)
        nc = p.get("nc")
        cnonce = p.get("cnonce")
        if nc is None or cnonce is None or len(nc) != 8:
            return AuthResult(MALFORMED, user, algu)
        try:
            ncv = int(nc, 16)
        except ValueError:
            return AuthResult(MALFORMED, user, algu)
        h1 = lookup_ha1(user, self.realm, algu)
        known = h1 is not None
        # an unknown user costs the same hashing as a known one (no timing oracle)
        dummy = hexdigest(algu, "%s:%s:%s" % (user, self.realm, self.key[:8]))
        if not known:
            h1 = dummy
        expect = _response(algu, h1.lower(), nonce, nc, cnonce, qop, method, duri, body)
        good = _eq(expect, resp.lower())
        if not (good and known):
            return AuthResult(FAILED, user, algu)
        nkey = nonce[:_NONCE_KEY]
        last = self._nc.get(nkey)
        if last is None:
            if ts <= self._floor:
                return AuthResult(STALE, user, algu)
            self._remember(nkey)
        elif ncv <= last:
            return AuthResult(REPLAY, user, algu)
        self._nc[nkey] = ncv
        return AuthResult(OK, user, algu)

    def _remember(self, nonce):
        old = self._ring[self._pos]
        if old is not None:
            self._nc.pop(old, None)
            ots = int(old[:12], 16)
            if ots > self._floor:
                self._floor = ots
            self.evicted += 1
        self._ring[self._pos] = nonce
        self._pos = (self._pos + 1) % self.max_track
        self._nc[nonce] = 0


class DigestClient:
    """Computes Authorization values; remembers nc per nonce (bounded)."""

    MAX_NONCES = 8

    def __init__(self):
        self._nc = {}
        self._order = []

    @staticmethod
    def select(challenges):
        """Pick the strongest supported Digest challenge -> (params) or None."""
        if isinstance(challenges, str):
            challenges = [challenges]
        best = None
        rank = -1
        for c in challenges:
            try:
                scheme, p = parse_auth(c)
            except SipParseError:
                continue
            if scheme != "digest" or "nonce" not in p or "realm" not in p:
                continue
            alg = p.get("algorithm", "MD5").upper()
            if _hfun(alg) is None:
                continue
            r = 2 if alg.startswith("SHA-256") else 1
            if r > rank:
                best = p
                rank = r
        return best

    def authorize(self, method, uri, challenge, username, password_or_ha1, rng,
                  body=b"", is_ha1=False):
        p = self.select(challenge)
        if p is None:
            raise SipParseError("no usable Digest challenge", "WWW-Authenticate")
        realm = p["realm"]
        nonce = p["nonce"]
        alg = p.get("algorithm")
        algn = (alg or "MD5").upper()
        if callable(password_or_ha1):     # a stored credential: fn(realm, algorithm) -> HA1
            h1 = password_or_ha1(realm, algn)
            if h1 is None:
                raise SipParseError("no credential for realm %s (%s)" % (realm, algn),
                                    "WWW-Authenticate")
        elif is_ha1:
            h1 = password_or_ha1
        else:
            h1 = ha1(username, realm, password_or_ha1, algn)
        qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
        qop = None
        if "auth" in qops:
            qop = "auth"
        elif "auth-int" in qops:
            qop = "auth-int"
        uri = str(uri)
        parts = ["Digest username=%s" % quote(username), "realm=%s" % quote(realm),
                 'nonce="%s"' % nonce, 'uri="%s"' % uri]
        if qop:
            n = self._nc.get(nonce, 0) + 1
            if nonce not in self._nc:
                self._order.append(nonce)
                if len(self._order) > self.MAX_NONCES:
                    self._nc.pop(self._order.pop(0), None)
            self._nc[nonce] = n
            nc = "%08x" % n
            cnonce = rng.token(8)
            r = _response(algn, h1, nonce, nc, cnonce, qop, method, uri, body)
            parts.append('response="%s"' % r)
            if alg:
                parts.append("algorithm=%s" % alg)
            parts.append('cnonce="%s"' % cnonce)
            if "opaque" in p:
                parts.append('opaque="%s"' % p["opaque"])
            parts.append("qop=%s" % qop)
            parts.append("nc=%s" % nc)
        else:
            r = _response(algn, h1, nonce, None, None, None, method, uri, body)
            parts.append('response="%s"' % r)
            if alg:
                parts.append("algorithm=%s" % alg)
            if "opaque" in p:
                parts.append('opaque="%s"' % p["opaque"])
        return ", ".join(parts)
