"""SDP sessions and offer/answer (RFC 4566, RFC 3264).

API
    parse_sdp(data) -> Session       bytes or str; SdpError(status 400) if bad
    Session
        .lines     session-level [type, value] pairs in order (v, o, s, c, t, a...)
        .media     [Media]
        .origin    [username, sess-id, sess-version, nettype, addrtype, addr]
        .connection  (nettype, addrtype, address) or None
        .direction   session-level direction attribute or None
        get(type) / attrs(name) / attr(name)
        bump_version()     o= version + 1 (call before every re-offer)
        serialize() -> bytes ; bytes(session) ; str(session)
    Media
        .kind ("audio") .port (int) .proto ("RTP/AVP") .fmts ([str])
        .lines     [type, value] pairs after the m= line
        .connection (own c= or None)  .direction (own or session or "sendrecv")
        .rtpmap -> {pt: (encoding, clock, channels)}  (static types included)
        .fmtp -> {pt: params}   attr(name) / attrs(name) / set_direction(d)
        codecs() -> [(pt, encoding)] in m= order
    offer(local_codecs, addr, port, session_id, session_version=1,
          direction="sendrecv", username="-", ptime=20) -> Session
    answer(offer, local_codecs, local_addr, local_port, direction="sendrecv",
           session_id=1, session_version=1, username="-") -> Session
        codecs = intersection in the offer's order with the offer's payload
        types; non-audio or unacceptable streams are rejected with port 0.
        No common audio codec -> SdpError(status 488).
    answer_direction(offered, local) -> direction per RFC 3264 §6.1
    is_hold(media, session) -> True for sendonly/inactive or c=0.0.0.0
    local_codecs: names such as ("PCMU", "PCMA", "G722", "telephone-event").

Bounds: MAX_SDP_SIZE octets, MAX_SDP_LINES lines, MAX_MEDIA m= lines,
MAX_FMTS formats per m= line: exceeding one is an SdpError (400).
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from sip.errors import SdpError, SipError

MAX_SDP_SIZE = const(16384)
MAX_SDP_LINES = const(256)
MAX_MEDIA = const(8)
MAX_FMTS = const(32)

STATIC_PT = {
    "0": ("PCMU", 8000, 1), "3": ("GSM", 8000, 1), "4": ("G723", 8000, 1),
    "8": ("PCMA", 8000, 1), "9": ("G722", 8000, 1), "13": ("CN", 8000, 1),
    "18": ("G729", 8000, 1),
}
# codec name -> (static pt or None, clock, fmtp)
CODECS = {
    "PCMU": ("0", 8000, None), "PCMA": ("8", 8000, None),
    "G722": ("9", 8000, None), "TELEPHONE-EVENT": (None, 8000, "0-16"),
}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_DYN_DEFAULT = "101"


def _bad(reason):
    raise SdpError(reason, 400)


def _find_attr(lines, name):
    for ln in lines:
        if ln[0] == "a":
            v = ln[1]
            if v == name or (v.startswith(name) and v[len(name):len(name) + 1] == ":"):
                return ln
    return None


def _attr_value(v, name):
    return v[len(name) + 1:] if len(v) > len(name) else ""


def _direction_of(lines):
    for ln in lines:
        if ln[0] == "a" and ln[1] in DIRECTIONS:
            return ln[1]
    return None


def _conn(lines):
    for ln in lines:
        if ln[0] == "c":
            p = ln[1].split()
            if len(p) < 3:
                _bad("bad c= line")
            return (p[0], p[1], p[2].split("/")[0])
    return None


class _Attributes:
    """a= lookups shared by a session and its media sections (self.lines)."""

    def attrs(self, name):
        out = []
        for ln in self.lines:
            if ln[0] == "a" and (ln[1] == name or ln[1].startswith(name + ":")):
                out.append(_attr_value(ln[1], name))
        return out

    def attr(self, name):
        ln = _find_attr(self.lines, name)
        return None if ln is None else _attr_value(ln[1], name)


class Media(_Attributes):
    def __init__(self, kind, port, proto, fmts, lines=None):
        self.kind = kind
        self.port = port
        self.proto = proto
        self.fmts = fmts
        self.lines = lines if lines is not None else []
        self.session = None

    @property
    def connection(self):
        c = _conn(self.lines)
        if c is None and self.session is not None:
            c = self.session.connection
        return c

    @property
    def direction(self):
        d = _direction_of(self.lines)
        if d is None and self.session is not None:
            d = self.session.direction
        return d or "sendrecv"

    def set_direction(self, d):
        if d not in DIRECTIONS:
            raise SdpError("bad direction", 400)
        for ln in self.lines:
            if ln[0] == "a" and ln[1] in DIRECTIONS:
                ln[1] = d
                return
        self.lines.append(["a", d])

    @property
    def rtpmap(self):
        m = {}
        for f in self.fmts:
            if f in STATIC_PT:
                m[f] = STATIC_PT[f]
        for v in self.attrs("rtpmap"):
            p = v.split(None, 1)
            if len(p) != 2:
                continue
            e = p[1].split("/")
            try:
                clock = int(e[1]) if len(e) > 1 else 8000
                ch = int(e[2]) if len(e) > 2 else 1
            except ValueError:
                continue
            m[p[0]] = (e[0], clock, ch)
        return m

    @property
    def fmtp(self):
        m = {}
        for v in self.attrs("fmtp"):
            p = v.split(None, 1)
            m[p[0]] = p[1] if len(p) > 1 else ""
        return m

    def codecs(self):
        rm = self.rtpmap
        return [(f, rm[f][0] if f in rm else None) for f in self.fmts]

    def _m_line(self):
        return "%s %d %s %s" % (self.kind, self.port, self.proto, " ".join(self.fmts))


class Session(_Attributes):
    def __init__(self, lines=None, media=None):
        self.lines = lines if lines is not None else []
        self.media = media if media is not None else []
        for m in self.media:
            m.session = self

    def get(self, t):
        for ln in self.lines:
            if ln[0] == t:
                return ln[1]
        return None

    @property
    def origin(self):
        o = self.get("o")
        p = o.split() if o else []
        if len(p) != 6:
            _bad("bad o= line")
        return p

    @property
    def connection(self):
        return _conn(self.lines)

    @property
    def direction(self):
        return _direction_of(self.lines)

    def bump_version(self):
        p = self.origin
        try:
            p[2] = str(int(p[2]) + 1)
        except ValueError:
            _bad("bad o= version")
        for ln in self.lines:
            if ln[0] == "o":
                ln[1] = " ".join(p)
                break

    def serialize(self):
        out = []
        for ln in self.lines:
            out.append(ln[0] + "=" + ln[1])
        for m in self.media:
            out.append("m=" + m._m_line())
            for ln in m.lines:
                out.append(ln[0] + "=" + ln[1])
        out.append("")
        return "\r\n".join(out).encode()

    def __bytes__(self):
        return self.serialize()

    def __str__(self):
        return self.serialize().decode()


def parse_sdp(data):
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) > MAX_SDP_SIZE:
            _bad("SDP too large")
        try:
            data = bytes(data).decode()
        except UnicodeError:
            _bad("SDP is not UTF-8")
    elif len(data) > MAX_SDP_SIZE:
        _bad("SDP too large")
    raw = data.split("\n")
    if len(raw) > MAX_SDP_LINES + 1:
        _bad("too many SDP lines")
    sess = Session()
    cur = None
    for ln in raw:
        if ln and ln[-1] == "\r":
            ln = ln[:-1]
        if not ln:
            continue
        if len(ln) < 2 or ln[1] != "=" or not ("a" <= ln[0] <= "z"):
            _bad("bad SDP line")
        t = ln[0]
        v = ln[2:]
        if t == "m":
            p = v.split()
            if len(p) < 4:
                _bad("bad m= line")
            if len(sess.media) >= MAX_MEDIA:
                _bad("too many m= lines")
            if len(p) - 3 > MAX_FMTS:
                _bad("too many formats")
            port = p[1].split("/")[0]
            if not port or port.strip("0123456789") or len(port) > 5 or int(port) > 65535:
                _bad("bad m= port")
            cur = Media(p[0], int(port), p[2], p[3:])
            cur.session = sess
            sess.media.append(cur)
        elif cur is None:
            sess.lines.append([t, v])
        else:
            cur.lines.append([t, v])
    if not sess.lines or sess.lines[0][0] != "v" or sess.lines[0][1].strip() != "0":
        _bad("SDP must start with v=0")
    sess.origin
    if sess.get("s") is None:
        _bad("SDP without s= line")
    for m in sess.media:
        if m.connection is None and m.port != 0:
            _bad("media without c= line")
    return sess


def _dirbits(d):
    return {"sendrecv": (1, 1), "sendonly": (1, 0), "recvonly": (0, 1),
            "inactive": (0, 0)}.get(d, (1, 1))


def answer_direction(offered, local="sendrecv"):
    """Answer direction: we send only if the offerer receives and we want to
    send; we receive only if the offerer sends and we want to receive."""
    os_, or_ = _dirbits(offered)
    ls, lr = _dirbits(local)
    s = ls and or_
    r = lr and os_
    if s and r:
        return "sendrecv"
    if s:
        return "sendonly"
    if r:
        return "recvonly"
    return "inactive"


def is_hold(media, session=None):
    c = media.connection
    if c is not None and c[2] == "0.0.0.0":
        return True
    return media.direction in ("sendonly", "inactive")


def _origin_line(username, sid, ver, addr):
    af = "IP6" if ":" in addr else "IP4"
    return "%s %s %s IN %s %s" % (username, sid, ver, af, addr)


def _head(username, sid, ver, addr):
    af = "IP6" if ":" in addr else "IP4"
    return [["v", "0"], ["o", _origin_line(username, sid, ver, addr)], ["s", "-"],
            ["c", "IN %s %s" % (af, addr)], ["t", "0 0"]]


def _norm_codecs(local_codecs):
    return [c.upper() for c in local_codecs]


def offer(local_codecs, addr, port, session_id, session_version=1,
          direction="sendrecv", username="-", ptime=20):
    names = _norm_codecs(local_codecs)
    fmts = []
    lines = []
    for n in names:
        spec = CODECS.get(n)
        if spec is None:
            raise SdpError("unknown local codec %s" % n, 500)
        pt = spec[0] or _DYN_DEFAULT
        fmts.append(pt)
        name = "telephone-event" if n == "TELEPHONE-EVENT" else n
        lines.append(["a", "rtpmap:%s %s/%d" % (pt, name, spec[1])])
        if spec[2]:
            lines.append(["a", "fmtp:%s %s" % (pt, spec[2])])
    if ptime:
        lines.append(["a", "ptime:%d" % ptime])
    lines.append(["a", direction])
    m = Media("audio", port, "RTP/AVP", fmts, lines)
    return Session(_head(username, session_id, session_version, addr), [m])


def answer(offer_sdp, local_codecs, local_addr, local_port, direction="sendrecv",
           session_id=1, session_version=1, username="-"):
    if isinstance(offer_sdp, (bytes, str)):
        offer_sdp = parse_sdp(offer_sdp)
    names = _norm_codecs(local_codecs)
    media = []
    audio_ok = False
    for om in offer_sdp.media:
        fmts = []
        lines = []
        if om.kind == "audio" and om.port != 0 and om.proto.upper().startswith("RTP/"):
            rm = om.rtpmap
            fm = om.fmtp
            real = False
            for f in om.fmts:
                enc = rm.get(f)
                if enc is None:
                    continue
                n = enc[0].upper()
                spec = CODECS.get(n)
                if spec is None or n not in names or enc[1] != spec[1]:
                    continue
                fmts.append(f)
                lines.append(["a", "rtpmap:%s %s/%d" % (f, enc[0], enc[1])])
                if spec[2]:
                    lines.append(["a", "fmtp:%s %s" % (f, fm.get(f) or spec[2])])
                if n != "TELEPHONE-EVENT":
                    real = True
            if real:
                audio_ok = True
                od = om.direction
                c = om.connection
                if c is not None and c[2] == "0.0.0.0" and od == "sendrecv":
                    od = "sendonly"
                pt = om.attr("ptime")
                if pt:
                    lines.append(["a", "ptime:" + pt])
                lines.append(["a", answer_direction(od, direction)])
                media.append(Media(om.kind, local_port, om.proto, fmts, lines))
                continue
        media.append(Media(om.kind, 0, om.proto, list(om.fmts), []))
    if not audio_ok:
        raise SdpError("no common codec", 488)
    return Session(_head(username, session_id, session_version, local_addr), media)


class RemoteSdp:
    """The far end's SDP of a session, kept as bytes and parsed only when
    someone looks at it: a B2BUA leg passes the bytes on and never does (some
    3 KB per leg on MicroPython).  Used by INVITE sessions and in-process
    local sessions alike."""
    remote_body = None        # the far end's last SDP as received (bytes)
    _rsdp = None
    _sdp_pending = None

    def got_remote_sdp(self, body):
        if body:
            self.remote_body = body
            self._sdp_pending = body

    @property
    def remote_sdp(self):
        raw = self._sdp_pending
        if raw is not None:
            self._sdp_pending = None
            try:
                self._rsdp = parse_sdp(raw)
            except SipError:
                pass              # unparsable: keep what was there
        return self._rsdp

    @remote_sdp.setter
    def remote_sdp(self, value):
        self._rsdp = value
        self._sdp_pending = None
