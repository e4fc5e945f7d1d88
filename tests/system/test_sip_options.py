"""The appliance's own SIP behaviour, end to end over loopback, on CPython and
on MicroPython: OPTIONS over UDP/TCP (IPv4, and IPv6 when the host has it),
REGISTER challenge, INVITE held with 100 then CANCEL → 200 + 487 and the ACK
absorbed, the no-answer 480, and the request-URI / method / extension checks.
"""
import os
import re
import socket

import pytest

from tests.harness import have_ipv6

from tests.harness import (Booted, UdpClient, call_id, status, options, ROOT)

MPY = os.path.join(ROOT, ".venv", "bin", "micropython")
INTERPRETERS = ["cpython"] + (["micropython"] if os.path.exists(MPY) else [])


@pytest.fixture(params=INTERPRETERS, scope="module")
def app(request):
    python = MPY if request.param == "micropython" else None
    a = Booted.pipes(domain="example.com", python=python)
    yield a
    assert a.alive(), a.out[-2000:]
    log = a.command("show log")
    a.close()
    assert "crashed" not in log and " error " not in log, log


def req(method, uri, cid, port, extra="", body=b"", cseq=1, branch=None, to_tag="",
        host="127.0.0.1", transport="UDP", cseq_method=None):
    h = "[%s]" % host if ":" in host else host
    hdrs = ("%s %s SIP/2.0\r\n"
            "Via: SIP/2.0/%s %s:%d;branch=z9hG4bK%s;rport\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:test@example.com>;tag=f%s\r\n"
            "To: <%s>%s\r\n"
            "Call-ID: %s\r\n"
            "CSeq: %d %s\r\n%s"
            "Content-Length: %d\r\n\r\n" % (
                method, uri, transport, h, port, branch or cid, cid, uri,
                ";tag=" + to_tag if to_tag else "", cid, cseq, cseq_method or method,
                extra, len(body)))
    return hdrs.encode() + body


def exchange(client, data, cid, final=True, wait=3.0):
    client.send(data)
    return client.responses(lambda d: call_id(d) == cid, wait, final=final)


def header(data, name):
    m = re.search(rb"^" + name.encode() + rb"[ \t]*:[ \t]*(.*)\r$", data, re.I | re.M)
    return m.group(1).decode() if m else None


def test_options_over_udp_answers_200_with_capabilities(app):
    c = UdpClient(app.port)
    try:
        got = exchange(c, options("o1", app.port, c.port, "o1"), "o1")
        r = got[-1]
        assert status(r) == 200
        allow = header(r, "Allow")
        for m in ("INVITE", "ACK", "CANCEL", "OPTIONS", "REGISTER", "BYE"):
            assert m in allow
        assert header(r, "Accept") == "application/sdp"
        assert header(r, "Accept-Language") == "en"
        assert header(r, "Supported") is not None
        assert "rport=%d" % c.port in header(r, "Via")
        assert ";tag=" in header(r, "To")
        # a retransmission gets the same response (transaction), same To tag
        again = exchange(c, options("o1", app.port, c.port, "o1"), "o1")
        assert header(again[-1], "To") == header(r, "To")
    finally:
        c.close()


def test_options_with_max_forwards_zero_to_us_is_answered(app):
    c = UdpClient(app.port)
    try:
        assert status(exchange(c, options("mf0", app.port, c.port, "mf0", 0), "mf0")[-1]) == 200
        other = options("mf1", app.port, c.port, "mf1", 0, domain="elsewhere.example.net")
        assert status(exchange(c, other, "mf1")[-1]) == 483
        other = options("mf2", app.port, c.port, "mf2", 5, domain="elsewhere.example.net")
        assert status(exchange(c, other, "mf2")[-1]) == 404
    finally:
        c.close()


def test_options_over_tcp_on_the_same_connection(app):
    s = socket.create_connection(("127.0.0.1", app.port), timeout=5)
    try:
        s.sendall(req("OPTIONS", "sip:example.com", "tcp1", 9, transport="TCP"))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, "connection closed"
            data += chunk
        assert status(data) == 200 and call_id(data) == "tcp1"
        assert int(header(data, "Content-Length")) == 0
    finally:
        s.close()


@pytest.mark.skipif(not have_ipv6(), reason="host has no IPv6 loopback")
def test_options_over_udp_ipv6(app):
    c = UdpClient(app.port, host="::1")
    try:
        data = req("OPTIONS", "sip:example.com", "v6", c.port, host="::1")
        got = exchange(c, data, "v6")
        assert got and status(got[-1]) == 200
    finally:
        c.close()


def test_register_is_challenged_with_the_domain_realm(app):
    c = UdpClient(app.port)
    try:
        r = exchange(c, req("REGISTER", "sip:example.com", "r1", c.port,
                            "Contact: <sip:test@127.0.0.1>\r\n"), "r1")[-1]
        assert status(r) == 401
        assert 'realm="example.com"' in header(r, "WWW-Authenticate")
        auth = ('Authorization: Digest username="test", realm="example.com", nonce="x", '
                'uri="sip:example.com", response="00000000000000000000000000000000"\r\n')
        r = exchange(c, req("REGISTER", "sip:example.com", "r2", c.port, auth), "r2")[-1]
        assert status(r) == 401
    finally:
        c.close()


def test_method_scheme_and_extension_checks(app):
    c = UdpClient(app.port)
    try:
        r = exchange(c, req("FOO", "sip:example.com", "m1", c.port), "m1")[-1]
        assert status(r) == 501 and "OPTIONS" in header(r, "Allow")
        r = exchange(c, req("SUBSCRIBE", "sip:example.com", "m2", c.port), "m2")[-1]
        assert status(r) == 405 and header(r, "Allow")
        r = exchange(c, req("OPTIONS", "im:someone@example.com", "m3", c.port), "m3")[-1]
        assert status(r) == 416
        r = exchange(c, req("OPTIONS", "sip:example.com", "m4", c.port,
                            "Require: foo, 100rel\r\n"), "m4")[-1]
        assert status(r) == 420 and header(r, "Unsupported") == "foo, 100rel"
        r = exchange(c, req("BYE", "sip:example.com", "m5", c.port, to_tag="x"), "m5")[-1]
        assert status(r) == 481
        r = exchange(c, req("CANCEL", "sip:example.com", "m6", c.port), "m6")[-1]
        assert status(r) == 481
    finally:
        c.close()


def _ack(port, cid, to_header):
    return ("ACK sip:user@example.com SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s;rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:test@example.com>;tag=f%s\r\n"
            "To: %s\r\nCall-ID: %s\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n" % (
                port, cid, cid, to_header, cid)).encode()


def test_invite_is_held_then_cancel_gives_200_and_487(app):
    c = UdpClient(app.port)
    try:
        inv = req("INVITE", "sip:user@example.com", "i1", c.port,
                  "Contact: <sip:test@127.0.0.1>\r\n")
        got = exchange(c, inv, "i1", final=False)
        assert [status(d) for d in got] == [100]
        c.send(req("CANCEL", "sip:user@example.com", "i1", c.port))
        got = c.responses(lambda d: call_id(d) == "i1", 3.0, final=False)
        got += c.responses(lambda d: call_id(d) == "i1", 3.0, final=False)
        sts = sorted(status(d) for d in got)
        assert sts == [200, 487], sts
        r487 = [d for d in got if status(d) == 487][0]
        r200 = [d for d in got if status(d) == 200][0]
        assert b"CANCEL" in r200 and b"INVITE" in r487
        assert header(r200, "To") == header(r487, "To")      # same To tag
        c.send(_ack(c.port, "i1", header(r487, "To")))
        # the ACK stops retransmissions of the 487: none within 1 s
        assert c.responses(lambda d: call_id(d) == "i1" and status(d) == 487, 1.0) == []
    finally:
        c.close()


def test_unanswered_invite_gets_480_and_body_checks(app):
    c = UdpClient(app.port)
    try:
        inv = req("INVITE", "sip:user@example.com", "i2", c.port)
        got = exchange(c, inv, "i2", final=True, wait=8.0)
        assert [status(d) for d in got] == [100, 480]
        c.send(_ack(c.port, "i2", header(got[-1], "To")))
        r = exchange(c, req("INVITE", "sip:user@example.com", "i3", c.port,
                            "Content-Type: text/plain\r\n", b"hello"), "i3")[-1]
        assert status(r) == 415 and header(r, "Accept") == "application/sdp"
        c.send(_ack(c.port, "i3", header(r, "To")))
        r = exchange(c, req("INVITE", "sip:user@example.com", "i4", c.port,
                            "Accept: text/html\r\n"), "i4")[-1]
        assert status(r) == 406
        c.send(_ack(c.port, "i4", header(r, "To")))
    finally:
        c.close()


def test_statistics_command_lists_counters(app):
    out = app.command("show sip statistics")
    assert "SIP statistics" in out and "udp received" in out and "transactions" in out.lower()


def test_options_with_many_via_lines_never_get_500(app):
    # issue 12 item 9: 119 or 120 Via lines used to end in 500 and a handler
    # error (the response crossed the header limit); the fixture checks the log
    c = UdpClient(app.port)
    try:
        for n in (98, 100, 101, 119, 120, 123):
            cid = "via%d" % n
            req = options(cid, app.port, c.port, cid).decode()
            extra = "".join("Via: SIP/2.0/UDP 192.0.2.%d:5060;branch=z9hG4bKpx%d\r\n" % (i % 250 + 1, i)
                            for i in range(n - 1))
            head, rest = req.split("Max-Forwards:", 1)
            got = exchange(c, (head + extra + "Max-Forwards:" + rest).encode(), cid)
            assert got, n
            r = got[-1]
            if n <= 100:
                assert status(r) == 200, (n, r[:60])
            elif n <= 120:
                assert r.startswith(b"SIP/2.0 400 Too Many Via Headers\r\n"), (n, r[:60])
            else:       # beyond the parser's header-line limit as a whole
                assert status(r) == 400, (n, r[:60])
    finally:
        c.close()
