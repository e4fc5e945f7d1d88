"""RFC 3261 §18 (and RFC 3581) in one place, sans-I/O: how requests are
stamped when they arrive, where responses go, what is answered without a
transaction, and the address helpers the whole tree shares.

    stamp_via(request, source_addr, force_rport=False)   received= / rport=
    response_address(response_or_via) -> (host, port)    §18.2.2: maddr,
                                         else received (rport), else sent-by
    stateless_response(request, status, reason=None, extra_headers=())
                                         §8.2.7, with a To tag stable per request
    salvage_response(raw_bytes, status=400, reason=None) -> Response | None
                                         an answer to bytes that did not parse
    make_ack(request, response)          the ACK for a non-2xx final (§17.1.1.3)
    is_reliable(transport)   default_port(transport)
    is_ip(host)              a numeric IPv4 or IPv6 host
    is_broadcast(host)       IPv4 broadcast/multicast, IPv6 multicast: never
                             answered, never sent to
    bad_destination(addr)    addresses we never send to
    bare_host(host)          lower case, without IPv6 brackets
    uri_address(uri)         (host, port) a SIP URI names (port by scheme)
"""
import hashlib

from sip.message import Request, Response


def is_ip(host):
    """A numeric IPv4 (dotted quad) or IPv6 host, brackets allowed."""
    if host.startswith("["):
        host = host[1:-1]
    if ":" in host:
        return True
    o = ipv4_octets(host)
    return o is not None and max(o) <= 255


def is_broadcast(host):
    """True for IPv4 broadcast/multicast and IPv6 multicast addresses; an
    x.x.x.255 address is a broadcast on /24 and shorter prefixes, never a
    host we answer."""
    host = bare_host(host)
    if ":" in host:
        return host.startswith("ff")
    o = ipv4_octets(host)
    if o is None:
        return False
    return o == [255, 255, 255, 255] or 224 <= o[0] <= 239 or (o[0] < 224 and o[3] == 255)


def is_reliable(transport):
    return transport.upper() not in ("UDP", "DTLS")


def ipv4_octets(host):
    p = host.split(".")
    if len(p) != 4:
        return None
    out = []
    for x in p:
        if not x or x.strip("0123456789") or len(x) > 3:
            return None
        out.append(int(x))
    return out


def bad_destination(addr):
    """True for addresses we never send to: 255.255.255.255, IPv4/IPv6
    multicast, unspecified, missing host/port."""
    if not addr or addr[0] is None:
        return True
    host = str(addr[0]).lower()
    if host.startswith("["):
        host = host[1:-1]
    o = ipv4_octets(host)
    if o is not None:
        if o == [255, 255, 255, 255] or o == [0, 0, 0, 0]:
            return True
        if 224 <= o[0] <= 239:
            return True
        return False
    if ":" in host and (host.startswith("ff") or host == "::"):
        return True
    return False


def default_port(transport):
    return 5061 if transport.upper() in ("TLS", "WSS") else 5060


def response_address(x):
    """(host, port) to send a response to, from the top Via (§18.2.2,
    RFC 3581): maddr, else received (with rport), else sent-by."""
    via = x if not hasattr(x, "top_via") else x.top_via
    if via is None:
        return None
    dport = via.port if via.port is not None else default_port(via.transport)
    m = via.maddr
    if m:
        return (m, dport)
    rp = via.rport
    host = via.received or via.host
    if rp is not None:
        return (host, rp)
    return (host, dport)


def bare_host(host):
    if host and host.startswith("["):
        return host[1:-1].lower()
    return (host or "").lower()


def stamp_via(msg, source_addr, force_rport=False):
    """Add received= when the source IP differs from sent-by (or rport is
    asked for, or force_rport) and fill rport=port (RFC 3581).  Modifies msg
    in place."""
    via = msg.top_via
    if via is None:
        return
    ip = source_addr[0]
    v = via.copy()
    changed = False
    if via.has_rport or force_rport:
        v.params.set("rport", str(source_addr[1]))
        v.params.set("received", ip)
        changed = True
    elif bare_host(via.host) != bare_host(ip):
        v.params.set("received", ip)
        changed = True
    if changed:
        msg.set_first("Via", str(v))


def uri_address(uri):
    """(host, port) of a sip:/sips: URI: brackets stripped, the default
    port of its scheme when none is given."""
    port = uri.port
    if port is None:
        port = 5061 if uri.scheme == "sips" else 5060
    return ((uri.host or "").strip("[]"), port)


def _stable_tag(*parts):
    h = hashlib.md5("|".join([str(p) for p in parts]).encode()).digest()
    return "".join(["%02x" % b for b in h[:6]])


def stateless_response(request, status, reason=None, extra_headers=()):
    """Response to request without a transaction (§8.2.7): the To tag, when
    added, is derived from the request so retransmissions get the same one."""
    tag = None
    if status > 100:
        tv = request.top_via
        tag = _stable_tag(request.call_id, request.from_ and request.from_.tag,
                          tv and tv.branch, request.cseq)
    r = Response.for_request(request, status, reason, tag)
    for name, value in extra_headers:
        r.add(name, value)
    return r


_SALVAGE = {"via": "via", "v": "via", "from": "from", "f": "from", "to": "to",
            "t": "to", "call-id": "call-id", "i": "call-id", "cseq": "cseq"}


def salvage_response(raw, status=400, reason=None):
    """Build a response from bytes that failed full parsing, when the
    request's Via, From, To, Call-ID and CSeq lines can be found (the first
    of a repeated single-valued header is used).  None for responses, ACKs,
    or when a needed header is missing: drop those."""
    try:
        return _salvage(raw, status, reason)
    except Exception:
        return None


def _salvage(raw, status, reason):
    raw = bytes(raw)
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    if end >= 0:
        raw = raw[:end]
    lines = []
    for bl in raw.split(b"\n"):
        bl = bl.rstrip(b"\r")
        try:
            lines.append(bl.decode())
        except UnicodeError:
            lines.append(None)
    while lines and not lines[0]:
        lines.pop(0)
    if not lines or lines[0] is None:
        return None
    start = lines[0].strip()
    if start[:4].upper() == "SIP/" or start.split(" ")[0] == "ACK":
        return None
    got = []
    seen = {}
    prev = None
    for line in lines[1:]:
        if line is None:
            prev = None
            continue
        if line[:1] in (" ", "\t") and prev is not None:
            prev[1] = prev[1] + " " + line.strip()
            continue
        prev = None
        i = line.find(":")
        if i <= 0:
            continue
        key = _SALVAGE.get(line[:i].strip().lower())
        if key is None:
            continue
        if key != "via" and key in seen:
            continue            # repeated single header (RFC 4475 3.3.8): first wins
        seen[key] = 1
        prev = [key, line[i + 1:].strip()]
        got.append(prev)
    for k in ("via", "from", "to", "call-id", "cseq"):
        if k not in seen:
            return None
    r = Response(status, reason)
    names = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID",
             "cseq": "CSeq"}
    tag = None
    for key, value in got:
        if not value or "\r" in value:
            return None
        if key == "cseq":
            p = value.split()
            if len(p) == 2 and p[1] == "ACK":
                return None
        if key == "to" and ";tag=" not in value.lower().replace(" ", ""):
            if tag is None:
                tag = _stable_tag(*[v for k, v in got])
            value = value + ";tag=" + tag
        r.headers.append([key, names[key], value, 0])
    return r


def make_ack(request, response):
    """ACK for a non-2xx final response to INVITE (§17.1.1.3)."""
    ack = Request("ACK", request.uri.copy())
    hs = ack.headers
    for e in request.headers:
        if e[0] == "via":
            v = request.top_via
            hs.append(["via", "Via", str(v), 0])
            break
    ack.add("Max-Forwards", "70")
    for e in request.headers:
        if e[0] in ("from", "call-id"):
            hs.append([e[0], e[1], e[2], 0])
    ack.add("To", response.get("to"))
    ack.add("CSeq", "%d ACK" % request.cseq.num)
    for e in request.headers:
        if e[0] == "route":
            hs.append([e[0], e[1], e[2], 0])
    return ack
