"""SIP, SIPS, TEL and generic URIs (RFC 3261 §19.1, RFC 3966).

API
    parse_uri(text, where="URI") -> URI        raises SipParseError
    URI(scheme="sip", user=None, host=None, port=None, params=None,
        headers=None, password=None, opaque=None)
        .scheme      lower-case scheme ("sip", "sips", "tel", or any other)
        .user        user part as on the wire (still %-escaped) or None;
                     for tel: the number
        .password    as on the wire or None
        .host        host as on the wire ("[2001:db8::1]" keeps its brackets)
        .port        int or None
        .params      Params (URI parameters, raw text)
        .headers     list of [name, value] (raw, escaped) from "?a=b&c=d"
        .opaque      text after "scheme:" for schemes other than sip/sips/tel
        .user_plain  user with %-escapes decoded (str)
        .transport   lower-case transport param or None
        .lr          True when ;lr is present
        aor_key()    bytes key for registrar/AoR lookup (scheme, unescaped
                     user, lower-case host, port)
        str(uri)     rebuilt from the raw parts: equals the parsed text when
                     unmodified
        uri == other RFC 3261 §19.1.4 comparison (RFC 3966 §4 for tel)
        copy()
    Params: ordered parameters, case-insensitive names.
        p.get(name, default=None)  value (None for a flag param like ;lr)
        name in p, p.set(name, value=None), p.remove(name), len(p), iter(p)
        yields (name, value); str(p) -> ";a=b;flag"
    unescape(text) -> bytes   decode %HH escapes (SipParseError on bad ones)

Bounds: MAX_URI_LEN characters, MAX_PARAMS parameters, MAX_URI_HEADERS
headers; exceeding one is a SipParseError.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from sip.errors import SipParseError

MAX_URI_LEN = const(2048)
MAX_PARAMS = const(32)
MAX_URI_HEADERS = const(16)

_HEXV = {}
for _i, _c in enumerate("0123456789abcdef"):
    _HEXV[_c] = _i
    _HEXV[_c.upper()] = _i
_RESERVED_B = b";/?:@&=+$,"
_BAD_URI = (" ", "\t", "\r", "\n", "<", ">", '"', "\x00")
_HOSTCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"
_V6CHARS = "0123456789abcdefABCDEF:."
_SCHEMECHARS = "abcdefghijklmnopqrstuvwxyz0123456789+-."
_KNOWN_SCHEMES = ("sip", "sips", "tel")
_DIGITS = "0123456789"


def _err(reason, where):
    raise SipParseError(reason, where)


class Params:
    """Ordered ;name=value parameters, names compared case-insensitively."""
    __slots__ = ("items",)

    def __init__(self, items=None):
        # each item: [lower-case name, name as written, value or None]
        self.items = []
        if items:
            for it in items:
                if isinstance(it, str):
                    self.set(it)
                else:
                    self.set(it[0], it[1])

    def _find(self, name):
        lname = name.lower()
        items = self.items
        for i in range(len(items)):
            if items[i][0] == lname:
                return i
        return -1

    def get(self, name, default=None):
        i = self._find(name)
        if i < 0:
            return default
        return self.items[i][2]

    def __contains__(self, name):
        return self._find(name) >= 0

    def set(self, name, value=None):
        if value is not None and not isinstance(value, str):
            value = str(value)
        i = self._find(name)
        if i >= 0:
            self.items[i][2] = value
        else:
            self.items.append([name.lower(), name, value])

    def remove(self, name):
        i = self._find(name)
        if i >= 0:
            del self.items[i]

    def __len__(self):
        return len(self.items)

    def __iter__(self):
        for it in self.items:
            yield (it[1], it[2])

    def copy(self):
        p = Params()
        p.items = [list(it) for it in self.items]
        return p

    def __str__(self):
        out = []
        for it in self.items:
            if it[2] is None:
                out.append(";" + it[1])
            else:
                out.append(";" + it[1] + "=" + it[2])
        return "".join(out)

    def __repr__(self):
        return "Params(%r)" % str(self)


def unescape(text):
    """Decode %HH escapes of text into bytes; SipParseError on a bad escape."""
    b = text.encode()
    if "%" not in text:
        return b
    out = bytearray()
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c == 37:
            if i + 3 > n:
                _err("bad %-escape", "URI")
            h = _HEXV.get(chr(b[i + 1]))
            l = _HEXV.get(chr(b[i + 2]))
            if h is None or l is None:
                _err("bad %-escape", "URI")
            out.append(h * 16 + l)
            i += 3
        else:
            out.append(c)
            i += 1
    return bytes(out)


def _norm(text):
    """Comparison form of a URI component: non-reserved escapes decoded,
    reserved ones kept (upper-case hex).  Returns bytes (or None)."""
    if text is None:
        return None
    b = text.encode()
    if "%" not in text:
        return b
    out = bytearray()
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c == 37 and i + 3 <= n:
            h = _HEXV.get(chr(b[i + 1]))
            l = _HEXV.get(chr(b[i + 2]))
            if h is not None and l is not None:
                v = h * 16 + l
                if v in _RESERVED_B:
                    out.extend(b"%" + ("%02X" % v).encode())
                else:
                    out.append(v)
                i += 3
                continue
        out.append(c)
        i += 1
    return bytes(out)


def _norm_lower(text):
    b = _norm(text)
    if b is None:
        return None
    return b.lower()


def _check_escapes(text, where):
    i = text.find("%")
    n = len(text)
    while i >= 0:
        if i + 2 >= n or text[i + 1] not in _HEXV or text[i + 2] not in _HEXV:
            _err("bad %-escape in URI", where)
        i = text.find("%", i + 3)


def _check_host(host, where):
    if not host:
        _err("empty host in URI", where)
    if host[0] == "[":
        if host[-1] != "]" or len(host) < 4:
            _err("bad IPv6 reference in URI", where)
        for c in host[1:-1]:
            if c not in _V6CHARS:
                _err("bad IPv6 reference in URI", where)
        if ":" not in host:
            _err("bad IPv6 reference in URI", where)
        return
    for c in host:
        if c not in _HOSTCHARS:
            _err("bad host in URI", where)
    if host[0] in ".-" or ".." in host:
        _err("bad host in URI", where)


def parse_port(text, where):
    if not text or text.strip(_DIGITS) or len(text) > 5:
        _err("bad port", where)
    p = int(text)
    if p > 65535:
        _err("port out of range", where)
    return p


def parse_hostport(hp, where):
    """'host[:port]' -> (host, port or None); IPv6 references in []."""
    if hp[:1] == "[":
        e = hp.find("]")
        if e < 0:
            _err("bad IPv6 reference", where)
        host = hp[:e + 1]
        tail = hp[e + 1:]
        port = None
        if tail:
            if tail[0] != ":":
                _err("bad host", where)
            port = parse_port(tail[1:], where)
    else:
        c = hp.find(":")
        if c >= 0:
            host = hp[:c]
            port = parse_port(hp[c + 1:], where)
        else:
            host = hp
            port = None
    _check_host(host, where)
    return host, port


def _parse_params(text, where, params):
    for p in text.split(";"):
        e = p.find("=")
        if e >= 0:
            name = p[:e]
            val = p[e + 1:]
        else:
            name = p
            val = None
        if not name:
            _err("empty URI parameter", where)
        if len(params.items) >= MAX_PARAMS:
            _err("too many URI parameters", where)
        params.items.append([name.lower(), name, val])


class URI:
    __slots__ = ("scheme", "_sraw", "user", "password", "host", "port",
                 "params", "headers", "opaque")

    def __init__(self, scheme="sip", user=None, host=None, port=None, params=None,
                 headers=None, password=None, opaque=None):
        self._sraw = scheme
        self.scheme = scheme.lower()
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        if params is None:
            params = Params()
        elif not isinstance(params, Params):
            params = Params(params)
        self.params = params
        self.headers = headers if headers is not None else []
        self.opaque = opaque

    def copy(self):
        u = URI(self._sraw, self.user, self.host, self.port, self.params.copy(),
                [list(h) for h in self.headers], self.password, self.opaque)
        u.scheme = self.scheme
        return u

    def __str__(self):
        s = self._sraw if self._sraw.lower() == self.scheme else self.scheme
        if self.opaque is not None:
            return s + ":" + self.opaque
        out = [s, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            if self.scheme != "tel":
                out.append("@")
        if self.host is not None:
            out.append(self.host)
        if self.port is not None:
            out.append(":%d" % self.port)
        if self.params.items:
            out.append(str(self.params))
        if self.headers:
            out.append("?" + "&".join([h[0] + "=" + h[1] for h in self.headers]))
        return "".join(out)

    def __repr__(self):
        return "URI(%r)" % str(self)

    @property
    def user_plain(self):
        if self.user is None:
            return None
        try:
            return unescape(self.user).decode()
        except (SipParseError, UnicodeError):
            return self.user

    @property
    def transport(self):
        t = self.params.get("transport")
        return t.lower() if t else None

    @property
    def lr(self):
        return "lr" in self.params

    def aor_key(self):
        k = self.scheme.encode() + b":"
        if self.opaque is not None:
            return k + _norm(self.opaque)
        if self.user is not None:
            if self.scheme == "tel":
                return k + _tel_num(self.user)
            k += _norm(self.user) + b"@"
        k += (self.host or "").lower().encode()
        if self.port is not None:
            k += b":%d" % self.port
        return k

    def __hash__(self):
        return hash((self.scheme, (self.host or self.opaque or self.user or "").lower()))

    def __ne__(self, other):
        return not self.__eq__(other)

    def __eq__(self, other):
        if not isinstance(other, URI) or self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque == other.opaque
        if self.scheme == "tel":
            if _tel_num(self.user) != _tel_num(other.user):
                return False
            return _params_eq(self.params, other.params, None)
        if _norm(self.user) != _norm(other.user):
            return False
        if _norm(self.password) != _norm(other.password):
            return False
        if (self.host or "").lower() != (other.host or "").lower():
            return False
        if self.port != other.port:
            return False
        if not _params_eq(self.params, other.params, _MUST_MATCH):
            return False
        return _headers_eq(self.headers, other.headers)


_MUST_MATCH = (b"user", b"ttl", b"method", b"maddr", b"transport")


def _pdict(params):
    d = {}
    for it in params.items:
        d[_norm_lower(it[1])] = _norm_lower(it[2])
    return d


def _params_eq(a, b, must):
    da = _pdict(a)
    db = _pdict(b)
    if must is None:
        return da == db
    for k in must:
        if (k in da) != (k in db):
            return False
    for k in da:
        if k in db and da[k] != db[k]:
            return False
    return True


def _headers_eq(a, b):
    if len(a) != len(b):
        return False
    sa = {}
    for h in a:
        sa[_norm_lower(h[0])] = _norm(h[1])
    for h in b:
        k = _norm_lower(h[0])
        if k not in sa or sa[k] != _norm(h[1]):
            return False
    return True


def _tel_num(num):
    if num is None:
        return b""
    out = []
    for c in num:
        if c not in "-.()":
            out.append(c)
    return _norm_lower("".join(out))


def parse_uri(text, where="URI"):
    """Parse a URI; SipParseError when malformed."""
    if not text:
        _err("empty URI", where)
    if len(text) > MAX_URI_LEN:
        _err("URI too long", where)
    for c in _BAD_URI:
        if c in text:
            _err("bad character in URI", where)
    colon = text.find(":")
    if colon <= 0:
        _err("URI without scheme", where)
    sraw = text[:colon]
    scheme = sraw.lower()
    rest = text[colon + 1:]
    if scheme not in _KNOWN_SCHEMES:
        if scheme[0] not in "abcdefghijklmnopqrstuvwxyz":
            _err("bad URI scheme", where)
        for c in scheme:
            if c not in _SCHEMECHARS:
                _err("bad URI scheme", where)
        if not rest:
            _err("empty URI", where)
        return URI(sraw, opaque=rest)
    if not rest:
        _err("empty URI", where)
    if scheme == "tel":
        s = rest.find(";")
        num = rest if s < 0 else rest[:s]
        if not num:
            _err("empty tel number", where)
        u = URI(sraw, user=num)
        if s >= 0:
            _parse_params(rest[s + 1:], where, u.params)
        return u
    at = rest.find("@")
    user = password = None
    hp = rest
    if at >= 0:
        userinfo = rest[:at]
        hp = rest[at + 1:]
        if not userinfo:
            _err("empty user in URI", where)
        c = userinfo.find(":")
        if c >= 0:
            user = userinfo[:c]
            password = userinfo[c + 1:]
            if "%" in password:
                _check_escapes(password, where)
        else:
            user = userinfo
        if not user:
            _err("empty user in URI", where)
        if "%" in user:
            _check_escapes(user, where)
    u = URI(sraw, user=user, password=password)
    q = hp.find("?")
    if q >= 0:
        htext = hp[q + 1:]
        hp = hp[:q]
        for h in htext.split("&"):
            e = h.find("=")
            if e <= 0:
                _err("bad URI header", where)
            if len(u.headers) >= MAX_URI_HEADERS:
                _err("too many URI headers", where)
            if "%" in h:
                _check_escapes(h, where)
            u.headers.append([h[:e], h[e + 1:]])
    s = hp.find(";")
    if s >= 0:
        _parse_params(hp[s + 1:], where, u.params)
        hp = hp[:s]
    u.host, u.port = parse_hostport(hp, where)
    return u
