"""The DNS stub resolver (firmware/sipstack/dns.py), sans-I/O, on `now`:
message encoding and decoding (compression, AAAA text, SRV, CNAME chains,
malformed messages refused), the resolver's matching (id, question and
server), retransmission to the next server, timeout, TTL caching and
re-query on expiry, negative caching, the named bounds, and RFC 3263 target
selection (SRV by priority and weight with glue, fallback to A/AAAA); and
the monitor's address updates and DNS failure signal."""
# portable: micropython
from firmware.compat import Random
from firmware.sipstack import dns
from firmware.proxy.monitor import Monitor, Timers, UP, DOWN


def _u16(n):
    return bytes((n >> 8, n & 255))


def _u32(n):
    return _u16(n >> 16) + _u16(n & 0xFFFF)


def _rr(name_bytes, rtype, ttl, rdata):
    return name_bytes + _u16(rtype) + _u16(1) + _u32(ttl) + _u16(len(rdata)) + rdata


def _reply(query, answers=(), additional=(), rcode=0, tc=False):
    """A response to `query` (bytes) with records already encoded."""
    flags = 0x8180 | rcode | (0x0200 if tc else 0)
    return (query[:2] + _u16(flags) + _u16(1) + _u16(len(answers)) + _u16(0)
            + _u16(len(additional)) + query[12:] + b"".join(answers) + b"".join(additional))


PTR_Q = b"\xc0\x0c"        # a pointer to the question's name


def _resolver(servers=(("192.0.2.53", 53),)):
    return dns.Resolver(list(servers), Random(5))


def _answer_one(res, now, build):
    """Answer the one datagram the resolver sent: build(query) -> reply bytes."""
    out = res.take()
    assert len(out) == 1, out
    data, server = out[0]
    res.received(build(data), server, now)
    return data, server


def test_a_query_is_well_formed_and_a_compressed_answer_is_read():
    q = dns.encode_query(0x1234, "hq.Example.com", dns.A)
    assert q[:2] == b"\x12\x34" and q[2] == 1 and q[5] == 1
    assert q[12:] == b"\x02hq\x07Example\x03com\x00\x00\x01\x00\x01"
    r = dns.parse_response(_reply(q, [_rr(PTR_Q, dns.A, 300, bytes((192, 0, 2, 10))),
                                      _rr(PTR_Q, dns.A, 60, bytes((192, 0, 2, 11)))]))
    assert r.qid == 0x1234 and r.rcode == 0 and r.qname == "hq.example.com"
    assert r.records == [("hq.example.com", dns.A, 300, "192.0.2.10"),
                         ("hq.example.com", dns.A, 60, "192.0.2.11")], r.records


def test_aaaa_text_is_rfc_5952():
    raw = bytes((0x20, 0x01, 0x0d, 0xb8) + (0,) * 10 + (0, 0x10))
    assert dns._ipv6(raw) == "2001:db8::10"
    assert dns._ipv6(bytes(16)) == "::"
    assert dns._ipv6(bytes(range(16))) == "1:203:405:607:809:a0b:c0d:e0f"


def test_malformed_messages_are_refused():
    q = dns.encode_query(1, "a.example", dns.A)
    good = _reply(q, [_rr(PTR_Q, dns.A, 5, bytes(4))])
    for bad in (good[:11], good[:-2], good[:20]):
        try:
            dns.parse_response(bad)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % bad)
    # the record's name is a pointer to itself
    at = len(_reply(q))
    loop = _reply(q, [_rr(bytes((0xC0, at)), dns.A, 5, bytes(4))])
    try:
        dns.parse_response(loop)
        raise AssertionError("a compression loop was accepted")
    except ValueError as e:
        assert "loop" in str(e), e
    try:
        dns.encode_query(1, "a" * 64 + ".example", dns.A)
        raise AssertionError("a 64-octet label was encoded")
    except ValueError:
        pass


def test_only_the_asked_server_with_the_id_and_question_is_believed():
    res = _resolver()
    got = []
    res.lookup("hq.example.com", dns.A, 0, lambda r, e, now: got.append((r, e)))
    (q, server), = res.take()
    ok = _reply(q, [_rr(PTR_Q, dns.A, 300, bytes((192, 0, 2, 10)))])
    res.received(ok, ("198.51.100.9", 53), 10)                 # another source
    wrong_id = bytes(((q[0] + 1) & 255,)) + ok[1:]
    res.received(wrong_id, server, 10)
    assert got == [] and res.counters["bad_responses"] == 2
    res.received(ok, server, 20)
    assert got == [([(dns.A, 300, "192.0.2.10")], None)], got
    res.received(ok, server, 30)                                # a duplicate: ignored
    assert len(got) == 1 and res.counters["bad_responses"] == 3


def test_retransmission_goes_to_the_next_server_then_times_out():
    res = _resolver((("192.0.2.53", 53), ("192.0.2.54", 53)))
    got = []
    res.lookup("hq.example.com", dns.A, 0, lambda r, e, now: got.append((r, e, now)))
    first = res.take()[0][1]
    t = res.next_deadline()
    assert t == dns.QUERY_TIMEOUT_MS
    res.on_timer(t)
    second = res.take()[0][1]
    assert second != first
    sent = 2
    while not got:
        t = res.next_deadline()
        res.on_timer(t)
        sent += len(res.take())
    assert sent == dns.QUERY_TRIES * 2, sent
    assert got[0][0] is None and got[0][1].startswith("timeout"), got
    assert res.counters["timeouts"] == 1 and not res.pending


def test_answers_are_cached_for_their_ttl_then_asked_again():
    res = _resolver()
    got = []

    def ask(now):
        res.lookup("hq.example.com", dns.A, now, lambda r, e, n: got.append(r))
    ask(0)
    _answer_one(res, 5, lambda q: _reply(q, [_rr(PTR_Q, dns.A, 30, bytes((192, 0, 2, 10)))]))
    ask(29000)
    assert res.take() == [] and len(got) == 2 and res.counters["cache_hits"] == 1
    ask(30005)
    assert len(res.take()) == 1, "an expired answer must be asked again"


def test_no_such_name_is_cached_briefly_and_server_failure_not_at_all():
    res = _resolver()
    got = []
    res.lookup("nx.example.com", dns.A, 0, lambda r, e, n: got.append((r, e)))
    _answer_one(res, 1, lambda q: _reply(q, rcode=3))
    assert got == [(None, "no such name")], got
    res.lookup("nx.example.com", dns.A, 1000, lambda r, e, n: got.append((r, e)))
    assert res.take() == [] and got[-1] == (None, "no such name")
    res.lookup("sf.example.com", dns.A, 0, lambda r, e, n: got.append((r, e)))
    _answer_one(res, 1, lambda q: _reply(q, rcode=2))
    assert got[-1][0] is None and "server failure" in got[-1][1], got
    res.lookup("sf.example.com", dns.A, 2, lambda r, e, n: None)
    assert len(res.take()) == 1


def test_a_cname_chain_in_the_answer_is_followed():
    res = _resolver()
    got = []
    res.lookup("sip.example.com", dns.A, 0, lambda r, e, n: got.append(r))
    target = b"\x04real\xc0\x10"            # real.example.com (suffix after "sip")

    def build(q):
        cname = _rr(PTR_Q, dns.CNAME, 300, target)
        off = len(_reply(q)) + 12               # where the CNAME's rdata starts
        return _reply(q, [cname, _rr(bytes((0xC0, off)), dns.A, 300, bytes((192, 0, 2, 7)))])
    _answer_one(res, 1, build)
    assert got == [[(dns.A, 300, "192.0.2.7")]], got


def test_bounds_pending_and_cache():
    res = _resolver()
    errors = []
    for k in range(dns.MAX_DNS_PENDING + 1):
        res.lookup("h%d.example.com" % k, dns.A, 0, lambda r, e, n: errors.append(e))
    assert errors == ["resolver busy"] and res.counters["busy"] == 1
    res = _resolver()
    for k in range(dns.MAX_DNS_CACHE + 3):
        res.lookup("h%d.example.com" % k, dns.A, k, lambda r, e, n: None)
        _answer_one(res, k, lambda q: _reply(q, [_rr(PTR_Q, dns.A, 100 + k, bytes(4))]))
    assert len(res.cache) == dns.MAX_DNS_CACHE
    assert res.counters["cache_evictions"] == 3
    assert ("h0.example.com", dns.A) not in res.cache    # the first to expire went


def _srv_rdata(prio, weight, port, target):
    return _u16(prio) + _u16(weight) + _u16(port) + dns.encode_name(target)


def test_rfc_3263_srv_targets_with_glue_by_priority():
    res = _resolver()
    got = []
    dns.sip_targets(res, "hq.example.com", None, "udp", 0, lambda a, ttl, e, n: got.append((a, ttl, e)))
    q, server = _answer_one(res, 1, lambda q: _reply(q, [
        _rr(PTR_Q, dns.SRV, 60, _srv_rdata(20, 0, 5080, "backup.example.com")),
        _rr(PTR_Q, dns.SRV, 120, _srv_rdata(10, 10, 5070, "sip1.example.com"))], [
        _rr(dns.encode_name("sip1.example.com"), dns.A, 300, bytes((192, 0, 2, 10)))]))
    assert q[12:].startswith(b"\x04_sip\x04_udp\x02hq"), q
    # sip1's A came as glue; its AAAA and backup's A/AAAA are asked
    asked = []
    for data, srv in res.take():
        name = dns.parse_response(data[:2] + b"\x81\x80" + data[4:]).qname
        asked.append(name)
        if name == "backup.example.com" and data[-3] == dns.A:
            res.received(_reply(data, [_rr(PTR_Q, dns.A, 30, bytes((192, 0, 2, 20)))]), srv, 2)
        else:
            res.received(_reply(data, rcode=0), srv, 2)       # no AAAA record
    assert sorted(set(asked)) == ["backup.example.com", "sip1.example.com"], asked
    assert got == [([("192.0.2.10", 5070), ("192.0.2.20", 5080)], 30, None)], got


def test_rfc_3263_without_srv_uses_a_and_aaaa_at_5060_and_a_port_skips_srv():
    res = _resolver()
    got = []
    dns.sip_targets(res, "hq.example.com", None, "tcp", 0, lambda a, ttl, e, n: got.append((a, e)))
    q, _ = _answer_one(res, 1, lambda q: _reply(q, rcode=3))
    assert b"\x04_tcp" in q
    for data, srv in res.take():
        if data[-3] == dns.AAAA:
            rd = bytes((0x20, 1, 0xd, 0xb8) + (0,) * 11 + (0x10,))
            res.received(_reply(data, [_rr(PTR_Q, dns.AAAA, 300, rd)]), srv, 2)
        else:
            res.received(_reply(data, [_rr(PTR_Q, dns.A, 300, bytes((192, 0, 2, 10)))]), srv, 2)
    assert got == [([("192.0.2.10", 5060), ("2001:db8::10", 5060)], None)], got
    res2 = _resolver()
    dns.sip_targets(res2, "hq.example.com", 5070, "udp", 0, lambda a, ttl, e, n: None)
    assert all(d[-3] in (dns.A, dns.AAAA) for d, s in res2.take())
    lit = []
    dns.sip_targets(res2, "192.0.2.9", None, "udp", 0, lambda a, ttl, e, n: lit.append(a))
    assert lit == [[("192.0.2.9", 5060)]]


def test_the_monitor_takes_new_addresses_and_a_dns_failure_is_passive():
    a1, a2 = ("192.0.2.10", 5060), ("192.0.2.11", 5060)
    m = Monitor(Timers(), [("hq", 10, [])], 0)
    assert m.due(0) == []               # nothing to probe before the name resolves
    m.set_addresses("hq", [a1, a2], 100)
    due = m.due(100)
    assert sorted(d[2] for d in due) == [a1, a2]
    m.answered(due[0][0], 200, 150)
    m.set_addresses("hq", [a2], 200)     # a1 is gone: its statistics too
    assert [a.addr for a in m.peers[0].addrs] == [a2]
    m.peer_failed("hq", "passive: DNS hq.example.com: timeout", 400)
    assert m.peers[0].state == UP        # something was heard under an interval ago
    m.peer_failed("hq", "passive: DNS hq.example.com: timeout", 1200)
    assert m.peers[0].state == DOWN and "DNS" in m.peers[0].cause
    assert m.peers[0].failures == 2
