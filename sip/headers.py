"""Structured SIP header values (RFC 3261 §7.3, §20, §25).

API
    split_list(text, where="header", allow_empty=False) -> [str]
        split a header value at commas outside quoted strings and <>;
        empty elements are a SipParseError unless allow_empty (then skipped).
    parse_params(text, where, params=None) -> Params
        ";"-separated generic-params (token [= token|host|quoted-string]),
        LWS around ";" and "=" allowed; empty params are an error.
    NameAddr(uri, display=None, params=None)   From/To/Contact/Route values
        .display (unquoted text or None) .uri (URI) .params (Params)
        .tag (property, get/set)  str() always uses the <uri> form.
    parse_name_addr(text, where) -> NameAddr
    Via(transport, host, port=None, params=None, protocol="SIP", version="2.0")
        .transport (upper-case) .host .port .params .branch .received
        .rport (int, or None when absent or valueless) .has_rport .maddr .ttl
        .sent_by -> (host, port)
    parse_via(text, where) -> [Via]            one header line, comma list
    CSeq(num, method)    .num .method
    parse_cseq(text, where, method=None) -> CSeq
    parse_uint(text, where, maximum) -> int    digits only, <= maximum
    quote(text) / unquote(text)                quoted-string helpers
    is_token(text) -> bool
    uri_escape(text)                           %-escape a URI header value
    replaces_for(dialog) -> "callid;to-tag=..;from-tag=.."   (RFC 3891)
    parse_replaces(text) -> (call_id, to_tag, from_tag, early_only); ValueError
    parse_sipfrag(body) -> status of a message/sipfrag status line, or None

Bounds: MAX_LIST_VALUES elements per header line, MAX_PARAMS (sip.uri) params.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from sip.errors import SipParseError
from sip.uri import Params, parse_uri, parse_hostport, MAX_PARAMS

MAX_LIST_VALUES = const(64)
MAX_CSEQ = const(2147483647)

TOKEN_CHARS = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
               "-.!%*_+`'~")
_DIGITS = "0123456789"
_WS = " \t"


def _err(reason, where):
    raise SipParseError(reason, where)


def is_token(s):
    if not s:
        return False
    for c in s:
        if c not in TOKEN_CHARS:
            return False
    return True


def parse_uint(text, where, maximum, what="value"):
    if not text or text.strip(_DIGITS):
        _err("bad %s: not a number" % what, where)
    if len(text) > 12:
        t = text.lstrip("0")
        if len(t) > 12:
            _err("bad %s: value out of range" % what, where)
        text = t or "0"
    v = int(text)
    if v > maximum:
        _err("bad %s: value out of range" % what, where)
    return v


def qend(s, i, where):
    """Index of the quote closing the quoted-string that starts at s[i]."""
    j = i + 1
    while True:
        q = s.find('"', j)
        if q < 0:
            _err("unterminated quoted string", where)
        b = s.find("\\", j, q)
        if b < 0:
            return q
        j = b + 2


def unquote(s):
    """Content of a quoted-string body with quoted-pairs resolved."""
    if "\\" not in s:
        return s
    out = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n:
            out.append(s[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_list(text, where="header", allow_empty=False):
    if '"' not in text and "<" not in text:
        parts = text.split(",")
    else:
        parts = []
        start = 0
        i = 0
        n = len(text)
        while i < n:
            c = text.find(",", i)
            q = text.find('"', i)
            a = text.find("<", i)
            if c < 0:
                c = n
            if q >= 0 and q < c and (a < 0 or q < a):
                i = qend(text, q, where) + 1
                continue
            if a >= 0 and a < c:
                g = text.find(">", a)
                if g < 0:
                    _err("unterminated <", where)
                i = g + 1
                continue
            parts.append(text[start:c])
            start = i = c + 1
        if start <= n:
            parts.append(text[start:])
    out = []
    for p in parts:
        p = p.strip()
        if not p:
            if allow_empty:
                continue
            _err("empty list element", where)
        out.append(p)
    if len(out) > MAX_LIST_VALUES:
        _err("too many list elements", where)
    return out


def _split_params(text, where):
    if '"' not in text:
        return text.split(";")
    parts = []
    start = 0
    i = 0
    n = len(text)
    while i < n:
        s = text.find(";", i)
        q = text.find('"', i)
        if s < 0:
            s = n
        if q >= 0 and q < s:
            i = qend(text, q, where) + 1
            continue
        parts.append(text[start:s])
        start = i = s + 1
    if start <= n:
        parts.append(text[start:])
    return parts


def parse_params(text, where, params=None):
    if params is None:
        params = Params()
    items = params.items
    for p in _split_params(text, where):
        e = p.find("=")
        if e >= 0:
            name = p[:e].strip()
            val = p[e + 1:].strip()
            if not val:
                _err("empty parameter value", where)
            if val[0] == '"':
                if qend(val, 0, where) != len(val) - 1:
                    _err("bad quoted parameter value", where)
            elif " " in val or "\t" in val or '"' in val:
                _err("bad parameter value", where)
        else:
            name = p.strip()
            val = None
        if not is_token(name):
            _err("bad parameter name" if name else "empty parameter", where)
        if len(items) >= MAX_PARAMS:
            _err("too many parameters", where)
        items.append([name.lower(), name, val])
    return params


def _as_params(params):
    if params is None:
        return Params()
    return params if isinstance(params, Params) else Params(params)


class NameAddr:
    __slots__ = ("display", "uri", "params")

    def __init__(self, uri, display=None, params=None):
        if isinstance(uri, str):
            uri = parse_uri(uri)
        self.uri = uri
        self.display = display
        self.params = _as_params(params)

    @property
    def tag(self):
        return self.params.get("tag")

    @tag.setter
    def tag(self, value):
        if value is None:
            self.params.remove("tag")
        else:
            self.params.set("tag", value)

    def copy(self):
        return NameAddr(self.uri.copy(), self.display, self.params.copy())

    def __str__(self):
        s = "<" + str(self.uri) + ">" + str(self.params)
        if self.display:
            if is_token(self.display.replace(" ", "")) and "  " not in self.display:
                return self.display + " " + s
            return quote(self.display) + " " + s
        return s

    def __repr__(self):
        return "NameAddr(%r)" % str(self)


def parse_name_addr(text, where):
    s = text.strip()
    if not s:
        _err("empty address", where)
    display = None
    if s[0] == '"':
        q = qend(s, 0, where)
        display = unquote(s[1:q])
        rest = s[q + 1:].lstrip()
        if not rest or rest[0] != "<":
            _err("expected <URI> after display name", where)
    else:
        lt = s.find("<")
        qt = s.find('"')
        if lt >= 0 and (qt < 0 or lt < qt):
            dn = s[:lt].strip()
            if dn:
                words = dn.split()
                for w in words:
                    if not is_token(w):
                        _err("bad display name", where)
                display = " ".join(words)
            rest = s[lt:]
        else:
            semi = s.find(";")
            if semi >= 0:
                ut = s[:semi].rstrip()
                ptext = s[semi + 1:]
            else:
                ut = s
                ptext = None
            if "?" in ut or "," in ut:
                _err("URI with headers or comma must be in <>", where)
            na = NameAddr(parse_uri(ut, where))
            if ptext is not None:
                parse_params(ptext, where, na.params)
            return na
    gt = rest.find(">")
    if gt < 0:
        _err("unterminated <", where)
    na = NameAddr(parse_uri(rest[1:gt], where), display)
    after = rest[gt + 1:].strip()
    if after:
        if after[0] != ";":
            _err("junk after >", where)
        parse_params(after[1:], where, na.params)
    return na


class Via:
    __slots__ = ("protocol", "version", "transport", "host", "port", "params")

    def __init__(self, transport, host, port=None, params=None, protocol="SIP",
                 version="2.0"):
        self.protocol = protocol
        self.version = version
        self.transport = transport.upper()
        self.host = host
        self.port = port
        self.params = _as_params(params)

    @property
    def branch(self):
        return self.params.get("branch")

    @property
    def received(self):
        return self.params.get("received")

    @property
    def maddr(self):
        return self.params.get("maddr")

    @property
    def ttl(self):
        t = self.params.get("ttl")
        if t is None or not t or t.strip(_DIGITS) or len(t) > 3:
            return None
        return int(t)

    @property
    def has_rport(self):
        return "rport" in self.params

    @property
    def rport(self):
        r = self.params.get("rport")
        if not r or r.strip(_DIGITS) or len(r) > 5:
            return None
        return int(r)

    @property
    def sent_by(self):
        return (self.host, self.port)

    def copy(self):
        return Via(self.transport, self.host, self.port, self.params.copy(),
                   self.protocol, self.version)

    def __str__(self):
        hp = self.host if self.port is None else "%s:%d" % (self.host, self.port)
        return "%s/%s/%s %s%s" % (self.protocol, self.version, self.transport, hp,
                                  str(self.params))

    def __repr__(self):
        return "Via(%r)" % str(self)


def _parse_one_via(s, where):
    semi = s.find(";")
    head = s if semi < 0 else s[:semi]
    parts = head.split("/", 2)
    if len(parts) != 3:
        _err("bad Via sent-protocol", where)
    proto = parts[0].strip()
    ver = parts[1].strip()
    tp = parts[2].split(None, 1)
    if len(tp) != 2 or not is_token(proto) or not is_token(ver) or not is_token(tp[0]):
        _err("bad Via sent-protocol", where)
    sb = tp[1]
    if " " in sb or "\t" in sb:
        sb = "".join(sb.split())
    host, port = parse_hostport(sb, where)
    v = Via(tp[0], host, port, None, proto, ver)
    if semi >= 0:
        parse_params(s[semi + 1:], where, v.params)
    return v


def parse_via(text, where):
    return [_parse_one_via(p, where) for p in split_list(text, where)]


class CSeq:
    __slots__ = ("num", "method")

    def __init__(self, num, method):
        self.num = num
        self.method = method

    def __str__(self):
        return "%d %s" % (self.num, self.method)

    def __repr__(self):
        return "CSeq(%d, %r)" % (self.num, self.method)

    def __eq__(self, other):
        return isinstance(other, CSeq) and self.num == other.num and \
            self.method == other.method


def parse_cseq(text, where):
    p = text.split()
    if len(p) != 2:
        _err("bad CSeq", where)
    num = parse_uint(p[0], where, MAX_CSEQ, "CSeq")
    if not is_token(p[1]):
        _err("bad CSeq method", where)
    return CSeq(num, p[1])


# --- Replaces (RFC 3891), sipfrag (RFC 3420) and URI header escaping -----------

_HCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()"


def uri_escape(text):
    """%-escape text for a URI header value (RFC 3261 hvalue): everything but
    unreserved characters, so ';', '=', '@' of a Replaces value get escaped."""
    out = []
    for c in text:
        if c in _HCHARS:
            out.append(c)
        else:
            for b in c.encode():
                out.append("%%%02X" % b)
    return "".join(out)


def replaces_for(dialog):
    """The Replaces value that names `dialog` (ours) to the UA at its other
    end (RFC 3891: to-tag is that UA's local tag, from-tag its remote tag)."""
    return "%s;to-tag=%s;from-tag=%s" % (dialog.call_id, dialog.remote_tag, dialog.local_tag)


def parse_replaces(text):
    """'callid;to-tag=X;from-tag=Y[;early-only]' -> (call_id, to_tag,
    from_tag, early_only); ValueError when malformed."""
    parts = [p.strip() for p in text.strip().split(";")]
    cid = parts[0]
    if not cid or " " in cid:
        raise ValueError("no Call-ID")
    tt = ft = None
    early = False
    for p in parts[1:]:
        e = p.find("=")
        name = (p if e < 0 else p[:e]).strip().lower()
        val = None if e < 0 else p[e + 1:].strip()
        if name == "to-tag":
            tt = val
        elif name == "from-tag":
            ft = val
        elif name == "early-only":
            early = True
    if not tt or not ft:
        raise ValueError("to-tag and from-tag required")
    return (cid, tt, ft, early)


def parse_sipfrag(body):
    """The status code of a message/sipfrag status line, or None."""
    if not body:
        return None
    try:
        text = bytes(body).decode()
    except UnicodeError:
        return None
    line = text.split("\n")[0].strip()
    parts = line.split(" ")
    if len(parts) < 2 or parts[0].upper() != "SIP/2.0" or len(parts[1]) != 3 \
            or not parts[1].isdigit():
        return None
    st = int(parts[1])
    if st < 100 or st > 699:
        return None
    return st
