"""SIP messages: parse, frame, access, build and serialise (RFC 3261 §7, §20).

API
    parse(data, stream=False) -> Request | Response
        data: bytes of one datagram (stream=False) or one framed stream
        message (stream=True: Content-Length required).  Raises SipParseError
        (and nothing else) when malformed; .status says how to answer (400,
        505, 513).  A malformed response must be dropped.  Core headers
        (Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length, Expires,
        Contact) are parsed and checked here; others on first access (their
        accessors may raise SipParseError).
    frame(buf) -> (message_bytes or None, consumed)
        stream framing: skips leading CRLF keep-alives, needs Content-Length;
        raises SipParseError when the stream is unusable (close it).
    StreamFramer().feed(data) -> [message_bytes]   buffering wrapper on frame()
    validate_request(req) -> None | (status, reason)   missing mandatory headers
    validate_response(resp) -> bool                 usable by the transaction layer
    Request(method, uri, headers=None, body=b"")   uri: str or URI;
        headers: list of (name, value) pairs
    Response(status, reason=None, headers=None, body=b"")
    Response.for_request(req, status, reason=None, to_tag=None) (§8.2.6)
    reason_phrase(status)   (from sip.errors)

Message (Request and Response)
    .headers   list of [key, name, value, line]; key is the lower-case long
               name, value the raw text (folding joined with one space)
    get(name) -> raw value of the first such header or None
    get_all(name) -> [raw value of each header line]
    values(name) -> [str]  comma-separated elements over all lines
    set(name, value) / add(name, value, first=False) / remove(name)
    remove_first(name) -> str | None   pop the first list element (e.g. Via)
    set_first(name, value)             replace the first list element
    .via [Via] .top_via .from_ .to (NameAddr) .call_id .cseq (CSeq)
    .max_forwards .contact ([NameAddr] or ["*"]) .expires .content_length
    .content_type ("type/subtype" lower-case, no params) .route .record_route
    .require .proxy_require .supported .unsupported .allow .accept (lists)
    .body (bytes) .is_request
    serialize(stream=False) -> bytes  (bytes(msg) works on CPython only;
               stream=True adds Content-Length when missing)
    Request: .method .uri (URI)   Response: .status .reason
Header names are case-insensitive and compact forms are understood; unknown
headers pass through verbatim.  Values may be str or objects with __str__.

Bounds: MAX_MESSAGE_SIZE octets (513), MAX_HEADERS header lines (400), and in
a request MAX_VIA_LINES Via lines (400 Too Many Via Headers), so that its
response fits in MAX_HEADERS.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from sip.errors import SipParseError, reason_phrase
from sip.uri import URI, parse_uri
from sip.headers import (split_list, parse_name_addr, parse_via, parse_cseq,
                         parse_uint, is_token, NameAddr, Via, CSeq)

MAX_MESSAGE_SIZE = const(65535)
MAX_HEADERS = const(128)
# A request's response carries its Via lines, From, To, Call-ID and CSeq plus
# what the answering module adds (at most RESPONSE_ROOM lines: Allow, Accept,
# Supported, challenges, up to 16 Contacts, Server ...).  A request with more
# Via lines than leave that room is refused by the parser with a precise 400
# "Too Many Via Headers", so every accepted request can be answered within
# MAX_HEADERS: MAX_HEADERS - 4 - RESPONSE_ROOM.
RESPONSE_ROOM = const(24)
MAX_VIA_LINES = const(100)
MAX_EXPIRES = const(4294967295)

COMPACT = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type",
    "d": "request-disposition", "e": "content-encoding", "f": "from",
    "i": "call-id", "j": "reject-contact", "k": "supported",
    "l": "content-length", "m": "contact", "n": "identity-info", "o": "event",
    "r": "refer-to", "s": "subject", "t": "to", "u": "allow-events", "v": "via",
    "x": "session-expires", "y": "identity",
}
_KEYS = {}
for _k in COMPACT:
    _KEYS[_k] = COMPACT[_k]
for _k in ("via", "from", "to", "call-id", "cseq", "contact", "max-forwards",
           "content-length", "content-type", "expires", "route", "record-route",
           "authorization", "proxy-authorization", "www-authenticate",
           "proxy-authenticate", "allow", "supported", "require", "proxy-require",
           "unsupported", "accept", "user-agent", "server", "min-expires",
           "subject", "event", "retry-after", "timestamp", "date", "warning",
           "accept-encoding", "accept-language", "alert-info", "call-info",
           "content-disposition", "content-encoding", "content-language",
           "error-info", "in-reply-to", "mime-version", "organization",
           "priority", "reply-to", "authentication-info", "session-expires",
           "min-se", "refer-to", "referred-by", "replaces", "allow-events",
           "subscription-state", "p-asserted-identity", "privacy", "path",
           "rseq", "rack", "identity", "identity-info", "accept-contact",
           "reject-contact", "request-disposition"):
    _KEYS[_k] = _k

_SINGLE = ("call-id", "from", "to", "cseq", "max-forwards", "content-length",
           "content-type", "expires", "min-expires")
_KNOWN_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER",
                  "PRACK", "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER",
                  "MESSAGE", "UPDATE")
_DIGITS = "0123456789"


def header_key(name):
    """Canonical key (lower-case long form) of a header name."""
    ln = name.lower()
    return _KEYS.get(ln, ln)


def _where(e):
    if e[3]:
        return "header line %d" % e[3]
    return "%s header" % e[1]


def _err(reason, where, status=400):
    raise SipParseError(reason, where, status)


# ---- header value parsers: (entries) -> value; entries all share one key ----

def _p_via(entries):
    out = []
    for e in entries:
        out.extend(parse_via(e[2], _where(e)))
    return out


def _p_na_single(entries):
    e = entries[0]
    return parse_name_addr(e[2], _where(e))


def _p_na_list(entries):
    out = []
    for e in entries:
        w = _where(e)
        for v in split_list(e[2], w):
            out.append(parse_name_addr(v, w))
    return out


def _p_contact(entries):
    out = []
    for e in entries:
        w = _where(e)
        if e[2] == "*":
            out.append("*")
            continue
        for v in split_list(e[2], w):
            if v == "*":
                _err("Contact * mixed with addresses", w)
            na = parse_name_addr(v, w)
            x = na.params.get("expires")
            if x is not None:
                parse_uint(x, w, MAX_EXPIRES, "Contact expires")
            out.append(na)
    if "*" in out and len(out) > 1:
        _err("Contact * mixed with addresses", _where(entries[0]))
    return out


def _p_callid(entries):
    e = entries[0]
    v = e[2]
    if not v or " " in v or "\t" in v:
        _err("bad Call-ID", _where(e))
    return v


def _p_cseq(entries):
    e = entries[0]
    return parse_cseq(e[2], _where(e))


def _p_maxfwd(entries):
    e = entries[0]
    return parse_uint(e[2], _where(e), 255, "Max-Forwards")


def _p_clen(entries):
    e = entries[0]
    return parse_uint(e[2], _where(e), MAX_MESSAGE_SIZE, "Content-Length")


def _p_expires(entries):
    e = entries[0]
    return parse_uint(e[2], _where(e), MAX_EXPIRES, "Expires")


def _p_ctype(entries):
    e = entries[0]
    v = e[2].split(";", 1)[0].strip().lower()
    p = v.split("/")
    if len(p) != 2 or not is_token(p[0].strip()) or not is_token(p[1].strip()):
        _err("bad Content-Type", _where(e))
    return p[0].strip() + "/" + p[1].strip()


_PARSERS = {
    "via": _p_via, "from": _p_na_single, "to": _p_na_single,
    "contact": _p_contact, "call-id": _p_callid, "cseq": _p_cseq,
    "max-forwards": _p_maxfwd, "content-length": _p_clen,
    "expires": _p_expires, "min-expires": _p_expires, "content-type": _p_ctype,
    "route": _p_na_list, "record-route": _p_na_list,
}
_EAGER = ("via", "from", "to", "call-id", "cseq", "max-forwards",
          "content-length", "expires", "contact")
_LISTS = ("via", "contact", "route", "record-route")


class Message:
    is_request = False

    def __init__(self, headers=None, body=b""):
        self.headers = []
        self._cache = {}
        self._plen = -1          # body length as parsed; -1 for built messages
        if body is None:
            body = b""
        elif isinstance(body, str):
            body = body.encode()
        self.body = body
        if headers:
            if isinstance(headers, dict):
                headers = headers.items()
            for name, value in headers:
                self.add(name, value)

    # ---- raw header access ----
    def get(self, name):
        key = header_key(name)
        for e in self.headers:
            if e[0] == key:
                return e[2]
        return None

    def get_all(self, name):
        key = header_key(name)
        return [e[2] for e in self.headers if e[0] == key]

    def values(self, name):
        key = header_key(name)
        out = []
        for e in self.headers:
            if e[0] == key:
                out.extend(split_list(e[2], _where(e), True))
        return out

    def has(self, name):
        return self.get(name) is not None

    def set(self, name, value):
        key = header_key(name)
        value = str(value)
        self._cache.pop(key, None)
        hs = self.headers
        first = -1
        i = 0
        while i < len(hs):
            if hs[i][0] == key:
                if first < 0:
                    first = i
                    hs[i] = [key, name, value, 0]
                else:
                    del hs[i]
                    continue
            i += 1
        if first < 0:
            hs.append([key, name, value, 0])

    def add(self, name, value, first=False):
        key = header_key(name)
        self._cache.pop(key, None)
        hs = self.headers
        if len(hs) >= MAX_HEADERS:
            raise SipParseError("too many headers", name)
        ent = [key, name, str(value), 0]
        pos = -1
        for i in range(len(hs)):
            if hs[i][0] == key:
                pos = i
                if first:
                    break
        if pos < 0:
            if first:
                hs.insert(0, ent)
            else:
                hs.append(ent)
        elif first:
            hs.insert(pos, ent)
        else:
            hs.insert(pos + 1, ent)

    def remove(self, name):
        key = header_key(name)
        self._cache.pop(key, None)
        self.headers = [e for e in self.headers if e[0] != key]

    def remove_first(self, name):
        key = header_key(name)
        hs = self.headers
        for i in range(len(hs)):
            e = hs[i]
            if e[0] == key:
                self._cache.pop(key, None)
                vals = split_list(e[2], _where(e))
                if len(vals) > 1:
                    hs[i] = [key, e[1], ", ".join(vals[1:]), e[3]]
                else:
                    del hs[i]
                return vals[0]
        return None

    def set_first(self, name, value):
        self.remove_first(name)
        self.add(name, value, True)

    # ---- parsed access ----
    def _parsed(self, key):
        c = self._cache
        if key in c:
            return c[key]
        ents = [e for e in self.headers if e[0] == key]
        if not ents:
            v = [] if key in _LISTS else None
        else:
            try:
                v = _PARSERS[key](ents)
            except SipParseError:
                raise
            except Exception as ex:
                raise SipParseError("bad %s header (%s)" % (key, type(ex).__name__),
                                    _where(ents[0]))
        c[key] = v
        return v

    @property
    def via(self):
        return self._parsed("via")

    @property
    def top_via(self):
        v = self._parsed("via")
        return v[0] if v else None

    @property
    def from_(self):
        return self._parsed("from")

    @property
    def to(self):
        return self._parsed("to")

    @property
    def call_id(self):
        return self._parsed("call-id")

    @property
    def cseq(self):
        return self._parsed("cseq")

    @property
    def max_forwards(self):
        return self._parsed("max-forwards")

    @property
    def contact(self):
        return self._parsed("contact")

    @property
    def expires(self):
        return self._parsed("expires")

    @property
    def min_expires(self):
        return self._parsed("min-expires")

    @property
    def content_length(self):
        return self._parsed("content-length")

    @property
    def content_type(self):
        return self._parsed("content-type")

    @property
    def route(self):
        return self._parsed("route")

    @property
    def record_route(self):
        return self._parsed("record-route")

    @property
    def require(self):
        return self.values("require")

    @property
    def proxy_require(self):
        return self.values("proxy-require")

    @property
    def supported(self):
        return self.values("supported")

    @property
    def unsupported(self):
        return self.values("unsupported")

    @property
    def allow(self):
        return self.values("allow")

    @property
    def accept(self):
        return self.values("accept")

    # ---- serialising ----
    def _start_line(self):
        raise NotImplementedError

    def serialize(self, stream=False):
        body = self.body
        blen = len(body)
        out = [self._start_line()]
        have_cl = False
        for e in self.headers:
            if e[0] == "content-length":
                if have_cl:
                    continue
                have_cl = True
                out.append("%s: %d" % (e[1], blen))
            else:
                out.append(e[1] + ": " + e[2])
        if not have_cl and (stream or self._plen != blen):
            out.append("Content-Length: %d" % blen)
        out.append("")
        out.append("")
        return "\r\n".join(out).encode() + body

    def __bytes__(self):
        return self.serialize()

    def __str__(self):
        try:
            return self.serialize().decode()
        except UnicodeError:
            return repr(self.serialize())


class Request(Message):
    is_request = True

    def __init__(self, method, uri, headers=None, body=b""):
        self.method = method
        if isinstance(uri, str):
            uri = parse_uri(uri, "Request-URI")
        self.uri = uri
        Message.__init__(self, headers, body)

    def _start_line(self):
        return "%s %s SIP/2.0" % (self.method, self.uri)

    def __repr__(self):
        return "<Request %s %s>" % (self.method, self.uri)


class Response(Message):
    def __init__(self, status, reason=None, headers=None, body=b""):
        self.status = status
        self.reason = reason_phrase(status) if reason is None else reason
        Message.__init__(self, headers, body)

    def _start_line(self):
        return "SIP/2.0 %d %s" % (self.status, self.reason)

    def __repr__(self):
        return "<Response %d %s>" % (self.status, self.reason)

    @staticmethod
    def for_request(req, status, reason=None, to_tag=None):
        """Response carrying req's Via, From, To, Call-ID and CSeq (§8.2.6);
        to_tag is added to To when it has none (not for 100 Trying)."""
        r = Response(status, reason)
        hs = r.headers
        for e in req.headers:
            k = e[0]
            if k in ("via", "from", "call-id", "cseq") or \
                    (k == "timestamp" and status == 100):
                hs.append([k, e[1], e[2], 0])
            elif k == "to":
                v = e[2]
                if to_tag is not None and status != 100:
                    if req.to is not None and req.to.tag is None:
                        v = v + ";tag=" + to_tag
                hs.append([k, e[1], v, 0])
        return r


# ---- parsing ----

def _find_end(data, start):
    """(end of header block, start of body) or (-1, -1)."""
    i = data.find(b"\r\n\r\n", start)
    if i >= 0:
        j = data.find(b"\n\n", start, i)
        if j < 0:
            return i, i + 4
        return j, j + 2
    j = data.find(b"\n\n", start)
    if j >= 0:
        return j, j + 2
    return -1, -1


def _skip_crlf(data):
    k = 0
    n = len(data)
    while k < n and data[k] in (13, 10):
        k += 1
    return k


def parse(data, stream=False):
    """Parse one message; SipParseError for any malformed input."""
    try:
        return _parse(data, stream)
    except SipParseError:
        raise
    except Exception as ex:
        raise SipParseError("malformed message (%s)" % type(ex).__name__, None)


def _parse(data, stream):
    if not isinstance(data, bytes):
        data = bytes(data)
    if len(data) > MAX_MESSAGE_SIZE:
        _err("message too large", None, 513)
    k = _skip_crlf(data)
    end, bstart = _find_end(data, k)
    if end < 0:
        if stream:
            _err("no end of headers", None)
        # datagram without the empty line: all headers, no body
        end = bstart = len(data)
        while end > k and data[end - 1] in (13, 10):
            end -= 1
    try:
        head = data[k:end].decode()
    except UnicodeError:
        _err("header is not valid UTF-8", None)
    lines = head.split("\r\n")
    if head.count("\n") != len(lines) - 1:
        # bare LF line ends somewhere: split on LF, drop CRs per line below
        lines = head.split("\n")
    start = lines[0]
    if start and start[-1] == "\r":
        start = start[:-1]
    if not start:
        _err("empty message", "start line")
    if start[:4].upper() == "SIP/":
        parts = start.split(" ", 2)
        if len(parts) < 2:
            _err("bad status line", "start line")
        ver = parts[0]
        if ver.upper() != "SIP/2.0":
            _err("unsupported SIP version", "start line", 505)
        code = parts[1]
        if len(code) != 3 or code.strip(_DIGITS):
            _err("bad status code", "start line")
        status = int(code)
        if status < 100:
            _err("bad status code", "start line")
        msg = Response(status, parts[2] if len(parts) > 2 else "")
    else:
        parts = start.split(" ")
        if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2]:
            _err("bad request line", "start line")
        method = parts[0]
        if method not in _KNOWN_METHODS and not is_token(method):
            _err("bad method", "start line")
        ver = parts[2]
        if ver.upper() != "SIP/2.0":
            if ver[:4].upper() == "SIP/":
                _err("unsupported SIP version", "start line", 505)
            _err("bad request line", "start line")
        uri = parse_uri(parts[1], "Request-URI")
        if uri.headers:
            _err("headers in Request-URI", "Request-URI")
        msg = Request(method, uri)
    hs = msg.headers
    prev = None
    lineno = 1
    for line in lines[1:]:
        lineno += 1
        if line and line[-1] == "\r":
            line = line[:-1]
        if not line:
            _err("empty header line", "header line %d" % lineno)
        c0 = line[0]
        if c0 == " " or c0 == "\t":
            if prev is None:
                _err("continuation before first header", "header line %d" % lineno)
            cont = line.strip()
            if cont:
                v = prev[2]
                prev[2] = (v + " " + cont) if v else cont
            continue
        i = line.find(":")
        if i <= 0:
            _err("header line without colon", "header line %d" % lineno)
        name = line[:i]
        key = _KEYS.get(name.lower())
        if key is None:
            name = name.rstrip(" \t")
            key = name.lower()
            if key not in _KEYS:
                if not is_token(name):
                    _err("bad header name", "header line %d" % lineno)
            else:
                key = _KEYS[key]
        if len(hs) >= MAX_HEADERS:
            _err("too many headers", "header line %d" % lineno)
        prev = [key, name, line[i + 1:].strip(), lineno]
        hs.append(prev)
    # single-valued headers appear once
    seen = {}
    for e in hs:
        key = e[0]
        if key in _SINGLE:
            if key in seen:
                _err("multiple %s headers" % e[1], _where(e))
            seen[key] = 1
    for key in _EAGER:
        if key in seen or key == "via" or key == "contact":
            msg._parsed(key)
    if msg.is_request:
        vias = 0
        for e in hs:
            if e[0] == "via":
                vias += 1
        if vias > MAX_VIA_LINES:
            raise SipParseError("%d Via header lines, at most %d" % (vias, MAX_VIA_LINES),
                                "Via", 400, "Too Many Via Headers")
        cs = msg._cache.get("cseq")
        if cs is not None and cs.method != msg.method:
            _err("CSeq method does not match request method",
                 _where([e for e in hs if e[0] == "cseq"][0]))
    rest = data[bstart:]
    cl = msg._cache.get("content-length")
    if cl is None:
        if stream:
            _err("missing Content-Length on stream", None)
        msg.body = rest
    else:
        if cl > len(rest):
            _err("Content-Length larger than the message body", None)
        msg.body = rest[:cl] if cl < len(rest) else rest
    msg._plen = len(msg.body)
    return msg


def _scan_cl(head):
    cl = None
    for line in head.split(b"\n"):
        c = line.find(b":")
        if c <= 0:
            continue
        name = line[:c].strip().lower()
        if name == b"content-length" or name == b"l":
            if cl is not None:
                raise SipParseError("multiple Content-Length headers", "stream")
            v = line[c + 1:].strip()
            try:
                v = v.decode()
            except UnicodeError:
                v = "x"
            cl = parse_uint(v, "stream", MAX_MESSAGE_SIZE, "Content-Length")
    return cl


def frame(buf):
    """Find one message at the start of a stream buffer.

    Returns (message_bytes, consumed) when a whole message is present,
    (None, consumed) when more data is needed (consumed counts leading CRLF
    keep-alives that the caller may drop).  Raises SipParseError when the
    stream cannot be framed (no Content-Length, oversize): close it."""
    k = _skip_crlf(buf)
    n = len(buf)
    if k == n:
        return None, k
    end, bstart = _find_end(buf, k)
    if end < 0:
        if n - k > MAX_MESSAGE_SIZE:
            raise SipParseError("message too large", "stream", 513)
        return None, k
    cl = _scan_cl(bytes(buf[k:end]))
    if cl is None:
        raise SipParseError("missing Content-Length on stream", "stream")
    total = bstart + cl
    if total - k > MAX_MESSAGE_SIZE:
        raise SipParseError("message too large", "stream", 513)
    if n < total:
        return None, k
    return bytes(buf[k:total]), total


class StreamFramer:
    """Accumulates stream bytes; feed() returns the complete messages.
    Buffer bound: MAX_MESSAGE_SIZE plus one read; overflow raises."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        buf = self.buf + bytes(data) if self.buf else bytes(data)
        out = []
        while buf:
            m, used = frame(buf)
            if used:
                buf = buf[used:]
            if m is None:
                break
            out.append(m)
        self.buf = buf
        return out


_MANDATORY = (("call-id", "Call-ID"), ("from", "From"), ("to", "To"),
              ("cseq", "CSeq"), ("via", "Via"))


def validate_request(req):
    """None when req carries the headers RFC 3261 §8.1.1 requires, else
    (400, reason).  Max-Forwards may be missing (RFC 2543 peers)."""
    missing = []
    for key, name in _MANDATORY:
        if req.get(key) is None:
            missing.append(name)
    if missing:
        return (400, "Missing " + ", ".join(missing))
    return None


def validate_response(resp):
    """True when resp has what the transaction layer needs (else drop it)."""
    for key, name in _MANDATORY:
        if resp.get(key) is None:
            return False
    return True
