"""A small DNS stub resolver, sans-I/O: RFC 1035 messages (A), RFC 3596
(AAAA), RFC 2782 (SRV), and RFC 3263 server location for SIP.  No sockets
and no clock: firmware/sipstack/resolver.py moves its datagrams.

    q = encode_query(qid, "hq.example.com", A)          -> bytes
    r = parse_response(data) -> Response: .qid .rcode .tc .qname .qtype
        .records [(name, type, ttl, value)]  value: "a.b.c.d", IPv6 text,
        (priority, weight, port, target) for SRV, a name for CNAME
        raises ValueError on a malformed or truncated message

    res = Resolver(servers, rng)      servers: [(ip, port)]; rng: randbelow()
    res.lookup(name, qtype, now, fn)  fn(records or None, error, now); from the
                                      cache at once (fresh or negative), or later
    res.take() -> [(data, (ip, port))] datagrams to send now
    res.received(data, src, now)       a datagram from a server
    res.on_timer(now); res.next_deadline()

    sip_targets(res, host, port, transport, now, fn)   RFC 3263 (section 4.2):
        fn([(ip, port), ...], ttl_s, error, now); SRV _sip._udp/_sip._tcp.host
        when no port is given (port None), targets by priority then weight
        (RFC 2782's weighted draw), else (or with no SRV record) A and AAAA
        of host at port or 5060.

Query ids and the order of servers come from the injected random source
(the OS's in a running appliance: ids must not be guessable, RFC 5452); a
response is taken only from the server asked, with the id and question
asked.  Bounds: MAX_DNS_CACHE names cached (beyond: the entry that expires
first is dropped, counted "cache_evictions"), MAX_DNS_PENDING questions in
flight (beyond: the lookup fails at once with "resolver busy"),
MAX_DNS_RECORDS records kept per answer (the rest ignored), MAX_DNS_WAITERS
callbacks per question (beyond: "resolver busy").  A TTL is clamped to
MIN_TTL_S..MAX_TTL_S; an answer with no record (NXDOMAIN, NODATA) is cached
NEGATIVE_TTL_S (RFC 2308 caps it by the SOA; we keep it short and fixed).
A question is sent to each server in turn, QUERY_TIMEOUT_MS apart, for
QUERY_TRIES rounds; then it fails with "timeout".
"""
from firmware.compat import const
from sip.transport import is_ip

A = const(1)
CNAME = const(5)
AAAA = const(28)
SRV = const(33)
_IN = const(1)

MAX_DNS_CACHE = const(32)
MAX_DNS_PENDING = const(8)
MAX_DNS_RECORDS = const(8)
MAX_DNS_WAITERS = const(8)
MIN_TTL_S = const(5)
MAX_TTL_S = const(86400)
NEGATIVE_TTL_S = const(30)
QUERY_TIMEOUT_MS = const(1000)
QUERY_TRIES = const(2)
MAX_NAME = const(253)
_MAX_POINTERS = const(16)      # compression pointers followed in one name (loops)

RCODES = {1: "format error", 2: "server failure", 3: "no such name", 4: "not implemented",
          5: "refused"}


def encode_name(name):
    out = bytearray()
    name = name.rstrip(".")
    if len(name) > MAX_NAME:
        raise ValueError("name longer than %d characters" % MAX_NAME)
    for label in name.split("."):
        b = label.encode()
        if not b or len(b) > 63:
            raise ValueError("bad label %r in %s" % (label, name))
        out.append(len(b))
        out.extend(b)
    out.append(0)
    return bytes(out)


def encode_query(qid, name, qtype):
    # header: id, flags RD, one question
    h = bytes((qid >> 8, qid & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0))
    return h + encode_name(name) + bytes((qtype >> 8, qtype & 255, 0, _IN))


def _u16(b, i):
    if i + 2 > len(b):
        raise ValueError("truncated message")
    return (b[i] << 8) | b[i + 1]


def _name(b, i):
    """(name, offset after the name where it is written)."""
    labels = []
    size = 0
    end = None
    jumps = 0
    while True:
        if i >= len(b):
            raise ValueError("truncated name")
        n = b[i]
        if n & 0xC0 == 0xC0:
            if end is None:
                end = i + 2
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise ValueError("compression loop")
            i = _u16(b, i) & 0x3FFF
            continue
        if n & 0xC0:
            raise ValueError("bad label type")
        if n == 0:
            return ".".join(labels).lower(), (end if end is not None else i + 1)
        if i + 1 + n > len(b):
            raise ValueError("truncated label")
        size += n + 1
        if size > MAX_NAME + 1:
            raise ValueError("name too long")
        labels.append(bytes(b[i + 1:i + 1 + n]).decode())
        i += 1 + n


def _ipv6(raw):
    """RFC 5952 text: lower case, the longest run of zero groups as ::."""
    g = [(raw[k] << 8) | raw[k + 1] for k in range(0, 16, 2)]
    best, blen, k = -1, 1, 0
    while k < 8:
        if g[k] == 0:
            j = k
            while j < 8 and g[j] == 0:
                j += 1
            if j - k > blen:
                best, blen = k, j - k
            k = j
        else:
            k += 1
    hx = ["%x" % x for x in g]
    if best < 0:
        return ":".join(hx)
    return ":".join(hx[:best]) + "::" + ":".join(hx[best + blen:])


class Response:
    def __init__(self):
        self.qid = 0
        self.rcode = 0
        self.tc = False
        self.qname = None
        self.qtype = 0
        self.records = []


def parse_response(b):
    if len(b) < 12:
        raise ValueError("shorter than a DNS header")
    r = Response()
    r.qid = _u16(b, 0)
    flags = _u16(b, 2)
    if not flags & 0x8000:
        raise ValueError("not a response")
    r.tc = bool(flags & 0x0200)
    r.rcode = flags & 0xF
    qd, an, ns, ar = _u16(b, 4), _u16(b, 6), _u16(b, 8), _u16(b, 10)
    if qd != 1:
        raise ValueError("%d questions (1 expected)" % qd)
    r.qname, i = _name(b, 12)
    r.qtype = _u16(b, i)
    i += 4
    # answers and additional records (SRV targets' addresses come there)
    for n in range(an + ns + ar):
        name, i = _name(b, i)
        rtype, rclass = _u16(b, i), _u16(b, i + 2)
        ttl = (_u16(b, i + 4) << 16) | _u16(b, i + 6)
        rdlen = _u16(b, i + 8)
        i += 10
        if i + rdlen > len(b):
            raise ValueError("truncated record")
        rd = b[i:i + rdlen]
        start = i
        i += rdlen
        if rclass != _IN or an <= n < an + ns:     # authority section: not needed
            continue
        if ttl & 0x80000000:
            ttl = 0                                 # RFC 2181 §8: treat as 0
        if rtype == A and rdlen == 4:
            val = "%d.%d.%d.%d" % (rd[0], rd[1], rd[2], rd[3])
        elif rtype == AAAA and rdlen == 16:
            val = _ipv6(rd)
        elif rtype == SRV and rdlen >= 7:
            target, _ = _name(b, start + 6)
            val = (_u16(rd, 0), _u16(rd, 2), _u16(rd, 4), target)
        elif rtype == CNAME:
            val, _ = _name(b, start)
        else:
            continue
        if len(r.records) < MAX_DNS_RECORDS * 2:
            r.records.append((name, rtype, ttl, val))
    return r


class _Entry:
    def __init__(self, records, expires, error):
        self.records = records      # [(type, ttl, value)] of the question, or None
        self.expires = expires
        self.error = error


class _Pending:
    def __init__(self, qid, name, qtype, now):
        self.qid = qid
        self.name = name
        self.qtype = qtype
        self.waiters = []
        self.sent = 0               # datagrams sent so far
        self.server = None
        self.deadline = now


class Resolver:
    def __init__(self, servers, rng):
        self.servers = list(servers)
        self.rng = rng
        self.cache = {}             # (name, qtype) -> _Entry
        self.pending = {}           # (name, qtype) -> _Pending
        self.out = []
        self.counters = {"queries": 0, "answers": 0, "failures": 0, "timeouts": 0,
                         "bad_responses": 0, "cache_hits": 0, "cache_evictions": 0, "busy": 0}

    def count(self, name):
        self.counters[name] = self.counters.get(name, 0) + 1

    def set_servers(self, servers):
        self.servers = list(servers)

    def lookup(self, name, qtype, now, fn):
        name = name.rstrip(".").lower()
        key = (name, qtype)
        e = self.cache.get(key)
        if e is not None and now < e.expires:
            self.count("cache_hits")
            fn(e.records, e.error, now)
            return
        if not self.servers:
            fn(None, "no name server configured", now)
            return
        p = self.pending.get(key)
        if p is None:
            if len(self.pending) >= MAX_DNS_PENDING:
                self.count("busy")
                fn(None, "resolver busy", now)
                return
            try:
                encode_name(name)
            except ValueError as ex:
                fn(None, str(ex), now)
                return
            p = self.pending[key] = _Pending(self._new_id(), name, qtype, now)
            self._send(p, now)
        if len(p.waiters) >= MAX_DNS_WAITERS:
            self.count("busy")
            fn(None, "resolver busy", now)
            return
        p.waiters.append(fn)

    def _new_id(self):
        used = [p.qid for p in self.pending.values()]
        while True:
            q = self.rng.randbelow(65536)
            if q not in used:
                return q

    def _send(self, p, now):
        # each server in turn, starting at a random one
        if p.sent == 0:
            p.first = self.rng.randbelow(len(self.servers))
        p.server = self.servers[(p.first + p.sent) % len(self.servers)]
        p.sent += 1
        p.deadline = now + QUERY_TIMEOUT_MS
        self.count("queries")
        self.out.append((encode_query(p.qid, p.name, p.qtype), p.server))

    def take(self):
        out, self.out = self.out, []
        return out

    def received(self, data, src, now):
        try:
            r = parse_response(data)
        except (ValueError, UnicodeError):
            self.count("bad_responses")
            return
        p = self.pending.get((r.qname, r.qtype))
        if p is None or p.qid != r.qid or p.server is None or \
                (src[0], src[1]) != (p.server[0], p.server[1]):
            self.count("bad_responses")     # late, spoofed or for another question
            return
        # r.tc: no TCP fallback; the records of a truncated answer are used
        del self.pending[(r.qname, r.qtype)]
        if r.rcode not in (0, 3):
            self.count("failures")
            # a server failure is not cached: the next lookup asks again
            self._done(p, None, "%s (rcode %d)" % (RCODES.get(r.rcode, "error"), r.rcode), now,
                       None)
            return
        self.count("answers")
        want = [r.qname]
        recs = []
        # follow CNAMEs within the answer
        for _ in range(8):
            nxt = None
            for name, t, ttl, val in r.records:
                if name == want[-1] and t == CNAME:
                    nxt = val
            if nxt is None or nxt in want:
                break
            want.append(nxt)
        ttl_min = MAX_TTL_S
        for name, t, ttl, val in r.records:
            if t == p.qtype and name in want and len(recs) < MAX_DNS_RECORDS:
                recs.append((t, ttl, val))
                ttl_min = min(ttl_min, ttl)
        extra = [(name, t, ttl, val) for name, t, ttl, val in r.records if t in (A, AAAA)]
        if not recs:
            why = "no such name" if r.rcode == 3 else "no record"
            self._done(p, None, why, now, NEGATIVE_TTL_S)
            return
        self._done(p, recs, None, now, max(MIN_TTL_S, ttl_min), extra)

    def _done(self, p, recs, error, now, ttl_s, extra=()):
        if ttl_s is not None:
            self._cache((p.name, p.qtype), _Entry(recs, now + ttl_s * 1000, error))
            # glue (RFC 2782: SRV targets' addresses in the additional section)
            for name, t, ttl, val in extra:
                if t == p.qtype:
                    continue
                k = (name, t)
                e = self.cache.get(k)
                exp = now + max(MIN_TTL_S, min(MAX_TTL_S, ttl)) * 1000
                if e is None or e.records is None or e.expires <= now:
                    self._cache(k, _Entry([(t, ttl, val)], exp, None))
                elif len(e.records) < MAX_DNS_RECORDS and (t, ttl, val) not in e.records:
                    e.records.append((t, ttl, val))
                    e.expires = min(e.expires, exp)
        for fn in p.waiters:
            fn(recs, error, now)

    def _cache(self, key, entry):
        if key not in self.cache and len(self.cache) >= MAX_DNS_CACHE:
            victim = None
            for k, e in self.cache.items():
                if victim is None or e.expires < self.cache[victim].expires:
                    victim = k
            del self.cache[victim]
            self.count("cache_evictions")
        self.cache[key] = entry

    def on_timer(self, now):
        for key in list(self.pending):
            p = self.pending[key]
            if now < p.deadline:
                continue
            if p.sent < QUERY_TRIES * len(self.servers):
                self._send(p, now)
                continue
            del self.pending[key]
            self.count("timeouts")
            self._done(p, None, "timeout (%d queries)" % p.sent, now, None)

    def next_deadline(self):
        d = None
        for p in self.pending.values():
            if d is None or p.deadline < d:
                d = p.deadline
        return d


def _srv_order(recs, rng):
    """RFC 2782: by priority; within one, a weighted random draw."""
    out = []
    prios = sorted(set(r[2][0] for r in recs))
    for pr in prios:
        group = [r[2] for r in recs if r[2][0] == pr]
        while group:
            total = 0
            for g in group:
                total += g[1]
            pick = 0
            if total > 0:
                x = rng.randbelow(total + 1)
                run = 0
                for k, g in enumerate(group):
                    run += g[1]
                    if run >= x:
                        pick = k
                        break
            out.append(group.pop(pick))
    return out


class _Targets:
    """One RFC 3263 resolution in progress (sip_targets)."""

    def __init__(self, res, host, port, transport, fn):
        self.res = res
        self.host = host
        self.port = port
        self.transport = transport
        self.fn = fn
        self.addrs = []
        self.ttl = MAX_TTL_S
        self.waiting = 0
        self.errors = []

    def start(self, now):
        if self.port is None:
            svc = "_sip._%s.%s" % (self.transport.lower(), self.host)
            self.res.lookup(svc, SRV, now, self._srv)
        else:
            self._hosts([(self.host, self.port)], now)

    def _srv(self, recs, error, now):
        if not recs:
            # RFC 3263 §4.2: no SRV record: A/AAAA of the name, the default port
            self._hosts([(self.host, 5060)], now)
            return
        self.ttl = min(self.ttl, min(r[1] for r in recs))
        targets = [(s[3], s[2]) for s in _srv_order(recs, self.res.rng) if s[3] != "."]
        if not targets:
            self.fn([], self.ttl, "the SRV record says: no SIP service here", now)
            return
        self._hosts(targets[:4], now)

    def _hosts(self, targets, now):
        self.waiting = 2 * len(targets)
        self.slots = [None] * (2 * len(targets))    # answers in target order
        for k, (h, port) in enumerate(targets):
            for j, qtype in enumerate((A, AAAA)):
                self._ask(h, port, qtype, 2 * k + j, now)

    def _ask(self, h, port, qtype, slot, now):
        def got(recs, error, now, self=self, port=port, slot=slot, h=h):
            if recs:
                self.slots[slot] = [(r[2], port) for r in recs]
                self.ttl = min(self.ttl, min(r[1] for r in recs))
            else:
                self.errors.append("%s: %s" % (h, error))
            self.waiting -= 1
            if self.waiting == 0:
                out = []
                for s in self.slots:
                    for a in s or ():
                        if a not in out:
                            out.append(a)
                err = None if out else "; ".join(self.errors[:2])
                self.fn(out, max(MIN_TTL_S, self.ttl), err, now)
        self.res.lookup(h, qtype, now, got)


def sip_targets(res, host, port, transport, now, fn):
    if is_ip(host):
        fn([(host, port or 5060)], MAX_TTL_S, None, now)
        return
    _Targets(res, host, port, transport, fn).start(now)
