# portable: micropython
"""Message parsing, accessors, building and serialising."""
import sys
from tests.portable import raises
from sip.message import (parse, frame, StreamFramer, Request, Response,
                         validate_request, validate_response, MAX_HEADERS,
                         MAX_MESSAGE_SIZE)
from sip.headers import split_list, NameAddr, Via, parse_name_addr
from sip.uri import parse_uri
from sip.errors import SipParseError, reason_phrase

INVITE = (b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;rport\r\n"
          b"Via: SIP/2.0/TCP proxy.example.com:5070;branch=z9hG4bK1;received=192.0.2.9\r\n"
          b"Max-Forwards: 70\r\n"
          b"To: Bob <sip:bob@biloxi.com>\r\n"
          b"From: \"Alice \\\"A\\\"\" <sip:alice@atlanta.com>;tag=1928301774\r\n"
          b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
          b"CSeq: 314159 INVITE\r\n"
          b"Contact: <sip:alice@pc33.atlanta.com>;expires=60, sip:a2@h.example.com;q=0.5\r\n"
          b"X-Custom: some   odd ,, value;;\r\n"
          b"Content-Type: application/sdp\r\n"
          b"Content-Length: 4\r\n"
          b"\r\n"
          b"v=0\n")

RESP = (b"SIP/2.0 180 Ringing\r\n"
        b"v: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
        b"t: <sip:bob@biloxi.com>;tag=a6c85cf\r\n"
        b"f: <sip:alice@atlanta.com>;tag=1928301774\r\n"
        b"i: a84b4c76e66710\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"l: 0\r\n\r\n")


def test_parse_request():
    m = parse(INVITE)
    assert m.is_request and m.method == "INVITE"
    assert m.uri.user == "bob" and m.uri.host == "biloxi.com"
    assert len(m.via) == 2
    v = m.via[0]
    assert v.transport == "UDP" and v.host == "pc33.atlanta.com" and v.port is None
    assert v.branch == "z9hG4bK776asdhds" and v.has_rport and v.rport is None
    assert m.via[1].port == 5070 and m.via[1].received == "192.0.2.9"
    assert m.top_via is m.via[0]
    assert m.max_forwards == 70
    assert m.to.display == "Bob" and m.to.tag is None
    assert m.from_.display == 'Alice "A"' and m.from_.tag == "1928301774"
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert m.cseq.num == 314159 and m.cseq.method == "INVITE"
    assert len(m.contact) == 2 and m.contact[1].params.get("q") == "0.5"
    assert m.contact[0].params.get("expires") == "60"
    assert m.get("x-custom") == "some   odd ,, value;;"
    assert m.content_type == "application/sdp"
    assert m.body == b"v=0\n" and m.content_length == 4
    assert m.expires is None and m.route == []


def test_round_trip():
    for raw in (INVITE, RESP):
        m = parse(raw)
        assert m.serialize() == raw
        if sys.implementation.name != "micropython":
            assert bytes(m) == raw   # __bytes__ is CPython-only


def test_parse_response_compact():
    m = parse(RESP)
    assert not m.is_request and m.status == 180 and m.reason == "Ringing"
    assert m.to.tag == "a6c85cf" and m.call_id == "a84b4c76e66710"
    assert m.get("Call-ID") == "a84b4c76e66710" and m.get("To") == m.get("t")
    assert m.body == b""
    assert validate_response(m)


def test_folding_and_case():
    raw = (b"OPTIONS sip:a@b.example.com SIP/2.0\r\n"
           b"vIa: SIP/2.0/UDP h.example.com\r\n ;branch=z9hG4bKx\r\n"
           b"TO :\r\n <sip:a@b.example.com>\r\n"
           b"from: <sip:c@d.example.com>;tag=1\r\n"
           b"CALL-id: x\r\ncseq: 1\r\n\tOPTIONS\r\nl: 0\r\n\r\n")
    m = parse(raw)
    assert m.via[0].branch == "z9hG4bKx"
    assert m.to.uri.user == "a" and m.cseq.method == "OPTIONS"
    m2 = parse(m.serialize())
    assert m2.get("cseq") == "1 OPTIONS"


def test_datagram_body_rules():
    base = (b"OPTIONS sip:a@b.example.com SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n"
            b"From: <sip:c@d>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n")
    m = parse(base + b"Content-Length: 3\r\n\r\nabcdef")
    assert m.body == b"abc"
    m = parse(base + b"\r\nxyz")
    assert m.body == b"xyz"
    e = raises(SipParseError, parse, base + b"Content-Length: 30\r\n\r\nabc")
    assert e.status == 400
    raises(SipParseError, parse, base + b"\r\nxyz", True)
    m = parse(base + b"Content-Length: 3\r\n\r\nabc", True)
    assert m.body == b"abc"
    # no empty line at all in a datagram: all headers
    m = parse(base)
    assert m.body == b"" and m.call_id == "x"
    # leading CRLF ignored
    m = parse(b"\r\n\r\n" + base + b"\r\n")
    assert m.method == "OPTIONS"


def test_frame():
    a = parse(INVITE).serialize()
    b = parse(RESP).serialize()
    buf = b"\r\n\r\n" + a + b + b[:20]
    m, used = frame(buf)
    assert m == a and used == 4 + len(a)
    buf = buf[used:]
    m, used = frame(buf)
    assert m == b
    buf = buf[used:]
    m, used = frame(buf)
    assert m is None and used == 0
    m, used = frame(b"\r\n")
    assert m is None and used == 2
    raises(SipParseError, frame, b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n")
    raises(SipParseError, frame, b"x" * (MAX_MESSAGE_SIZE + 10))
    f = StreamFramer()
    out = []
    data = a + b
    for i in range(0, len(data), 7):
        out.extend(f.feed(data[i:i + 7]))
    assert out == [a, b]


def test_bad_messages():
    bad = [
        b"",
        b"\r\n\r\n",
        b"INVITE  sip:a@b SIP/2.0\r\n\r\n",
        b"INVITE sip:a@b SIP/2.0 \r\n\r\n",
        b"INVITE <sip:a@b> SIP/2.0\r\n\r\n",
        b"INVITE sip:a@b?Route=x SIP/2.0\r\n\r\n",
        b"SIP/2.0 4294967301 big\r\n\r\n",
        b"SIP/2.0 099 low\r\n\r\n",
        b"SIP/2.0 20 x\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nNo colon here\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\n continuation\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 2147483648 OPTIONS\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: -1 OPTIONS\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nMax-Forwards: 256\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nExpires: 4294967296\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\nx",
        b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: a\r\ni: b\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nTo: \"unterminated <sip:a@b>\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nTo: < sip:a@b >\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nTo: A, B <sip:a@b>\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nContact: sip:a@b?Route=x\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;;,,\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nContact: <sip:a@b>;;;\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nContact: *, <sip:a@b>\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0 h\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: a b\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nX: \xff\xfe\r\n\r\n",
    ]
    for raw in bad:
        e = raises(SipParseError, parse, raw)
        assert e.status == 400, raw
        assert e.reason and str(e)
    e = raises(SipParseError, parse, b"OPTIONS sip:a@b SIP/7.0\r\n\r\n")
    assert e.status == 505 and e.reason_phrase == "Version Not Supported"
    e = raises(SipParseError, parse, b"SIP/3.0 200 OK\r\n\r\n")
    assert e.status == 505
    e = raises(SipParseError, parse, b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 99999999999 OPTIONS\r\n\r\n")
    assert "CSeq" in str(e) and "header line 2" in str(e)


def test_too_many_headers():
    raw = b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X: y\r\n" * (MAX_HEADERS + 1) + b"\r\n"
    e = raises(SipParseError, parse, raw)
    assert "too many" in e.reason
    raises(SipParseError, parse, b"OPTIONS sip:a@b SIP/2.0\r\nX: " +
           b"y" * MAX_MESSAGE_SIZE + b"\r\n\r\n")


def test_a_request_whose_response_would_not_fit_is_refused_with_a_precise_400():
    # issue 12 item 9: the response copies every Via line; the parser keeps room for it
    from sip.message import MAX_VIA_LINES, RESPONSE_ROOM, Response

    def options(n):
        return (b"OPTIONS sip:a@b SIP/2.0\r\n" +
                b"".join(b"Via: SIP/2.0/UDP h%d;branch=z9hG4bK%d\r\n" % (i, i) for i in range(n)) +
                b"From: <sip:x@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
                b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    assert MAX_VIA_LINES + 4 + RESPONSE_ROOM <= MAX_HEADERS
    req = parse(options(MAX_VIA_LINES))
    r = Response.for_request(req, 200, None, "t")
    for i in range(RESPONSE_ROOM):
        r.add("X-Room", str(i))                   # the response fits, with room to spare
    for n in (MAX_VIA_LINES + 1, 119, 120):
        e = raises(SipParseError, parse, options(n))
        assert e.status == 400 and e.reason_phrase == "Too Many Via Headers", (n, e.reason_phrase)
        assert "%d Via header lines, at most %d" % (n, MAX_VIA_LINES) in str(e)
    # responses (ours come back with one Via) are not limited by this
    resp = b"SIP/2.0 200 OK\r\n" + b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n" * 110 + \
        b"From: <sip:x@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
    assert len(parse(resp).via) == 110


def test_validate_request():
    raw = (b"INVITE sip:user@example.com SIP/2.0\r\nCSeq: 1 INVITE\r\n"
           b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n")
    st = validate_request(parse(raw))
    assert st[0] == 400 and "Call-ID" in st[1] and "From" in st[1] and "To" in st[1]
    assert validate_request(parse(INVITE)) is None
    assert not validate_response(parse(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n"))


def test_build_request_and_response():
    r = Request("INVITE", "sip:bob@biloxi.com", [
        ("Via", Via("UDP", "192.0.2.1", 5060, [("branch", "z9hG4bKabc"), "rport"])),
        ("Max-Forwards", 70),
        ("From", NameAddr("sip:alice@atlanta.com", "Alice", [("tag", "t1")])),
        ("To", NameAddr(parse_uri("sip:bob@biloxi.com"))),
        ("Call-ID", "c1@192.0.2.1"),
        ("CSeq", "1 INVITE"),
    ], body=b"v=0\r\n")
    raw = r.serialize()
    assert raw.startswith(b"INVITE sip:bob@biloxi.com SIP/2.0\r\n")
    assert b"Content-Length: 5\r\n\r\nv=0\r\n" in raw
    m = parse(raw)
    assert m.via[0].port == 5060 and m.via[0].has_rport
    assert m.from_.display == "Alice" and m.from_.tag == "t1"
    resp = Response.for_request(m, 200, to_tag="xyz")
    assert resp.reason == "OK"
    assert resp.to.tag == "xyz" and resp.from_.tag == "t1"
    assert resp.call_id == "c1@192.0.2.1" and resp.cseq.method == "INVITE"
    assert resp.get("Max-Forwards") is None
    p = parse(resp.serialize())
    assert p.status == 200 and p.body == b"" and p.content_length == 0
    r100 = Response.for_request(m, 100, to_tag="xyz")
    assert r100.to.tag is None and r100.reason == "Trying"
    assert reason_phrase(486) == "Busy Here" and reason_phrase(499) == "Bad Request"


def test_mutation():
    m = parse(INVITE)
    m.add("Via", "SIP/2.0/UDP new.example.com;branch=z9hG4bKnew", first=True)
    assert [v.host for v in m.via] == ["new.example.com", "pc33.atlanta.com",
                                       "proxy.example.com"]
    assert m.remove_first("Via").startswith("SIP/2.0/UDP new")
    v = m.via[0].copy()
    v.params.set("received", "10.0.0.1")
    v.params.set("rport", 5062)
    m.set_first("Via", v)
    assert m.via[0].received == "10.0.0.1" and m.via[0].rport == 5062
    assert len(m.via) == 2
    m.set("Max-Forwards", 69)
    assert m.max_forwards == 69
    m.add("Record-Route", "<sip:p1.example.com;lr>")
    m.add("Record-Route", "<sip:p2.example.com;lr>")
    assert [r.uri.host for r in m.record_route] == ["p1.example.com", "p2.example.com"]
    m.remove("Record-Route")
    assert m.record_route == []
    m.body = b"longer body"
    m2 = parse(m.serialize())
    assert m2.body == b"longer body" and m2.content_length == 11
    # a combined Via line
    m = parse(INVITE.replace(b"rport\r\nVia: ", b"rport, "))
    assert len(m.via) == 2
    m.remove_first("Via")
    assert len(m.via) == 1 and m.via[0].port == 5070


def test_lists_and_values():
    assert split_list('a, "b,c" <sip:x>, <sip:y,z>') == ['a', '"b,c" <sip:x>', '<sip:y,z>']
    raw = INVITE.replace(b"X-Custom", b"Require: 100rel, timer\r\nSupported: path\r\nX-Custom")
    m = parse(raw)
    assert m.require == ["100rel", "timer"] and m.supported == ["path"]
    assert m.values("Accept") == []
    star = (b"REGISTER sip:r.example.com SIP/2.0\r\nContact: *\r\nExpires: 0\r\n\r\n")
    m = parse(star)
    assert m.contact == ["*"] and m.expires == 0


def test_name_addr_forms():
    na = parse_name_addr("caller<sip:caller@example.com>", "t")
    assert na.display == "caller"
    na = parse_name_addr('sip:+1@gw.example.net;unknownparam', "t")
    assert na.display is None and "unknownparam" in na.params
    assert "unknownparam" not in na.uri.params
    na = parse_name_addr('<sip:+1@gw.example.net;unknownparam>', "t")
    assert "unknownparam" in na.uri.params and len(na.params) == 0
    na = parse_name_addr('<sip:u@e.com>;+sip.instance="<urn:uuid:1;2>";reg-id=1', "t")
    assert na.params.get("reg-id") == "1"
    assert na.params.get("+sip.instance") == '"<urn:uuid:1;2>"'
    assert str(parse_name_addr('"A B" <sip:a@b>;tag=1', "t")) == 'A B <sip:a@b>;tag=1'
    assert str(NameAddr("sip:a@b", 'x"y')) == '"x\\"y" <sip:a@b>'


def test_guarded_exceptions():
    # inputs that would trip naive index/int/decode code
    for raw in [b"S", b"SIP/", b"SIP/2.0", b"SIP/2.0 ", b"SIP/2.0 2x0 OK\r\n\r\n",
                b":\r\n\r\n", b"A B C\r\n:\r\n\r\n", b"\xff\xfe\xfd",
                b"INVITE sip:a@[::1 SIP/2.0\r\n\r\n", b"\x00\x00\r\n\r\n"]:
        try:
            parse(raw)
        except SipParseError:
            pass
