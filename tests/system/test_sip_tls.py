"""SIP over TLS end to end on loopback, on CPython and on MicroPython:
certificates loaded at the console, the listener configured and committed,
OPTIONS and sips: over TLS from a CPython ssl client, REGISTER challenged
over the same connection, mutual TLS refusing a client without a trusted
certificate, and commit errors that name the problem."""
import os
import socket
import ssl

import pytest

from tests.harness import Booted, ROOT, call_id, status
from tests.interop.sipprun import free_udp_port

MPY = os.path.join(ROOT, ".venv", "bin", "micropython")
INTERPRETERS = ["cpython"] + (["micropython"] if os.path.exists(MPY) else [])
CERTS = os.path.join(ROOT, "tests", "data", "tls")
T = "set services convergence-services security tls "


def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


@pytest.fixture(params=INTERPRETERS, scope="module")
def app(request):
    python = MPY if request.param == "micropython" else None
    a = Booted.pipes(domain="example.com", python=python)
    for name, key in (("sip-server", "server"), ("root-ca", None)):
        out = a.command("request security certificate load %s %s/%s.pem%s" % (
            name, CERTS, key or "ca", " key %s/%s.key" % (CERTS, key) if key else ""))
        assert out.startswith("Certificate %s loaded" % name), out
    a.tls_port = free_tcp_port()
    a.command("configure")
    a.command(T + "certificate sip-server")
    a.command(T + "port %d" % a.tls_port)
    out = a.command("commit")
    assert "commit complete" in out, out
    a.command("exit")
    yield a
    assert a.alive(), a.out[-2000:]
    log = a.command("show log")
    a.close()
    assert "crashed" not in log, log


def tls_client(app, cert=None):
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(CERTS, cert + ".pem"), os.path.join(CERTS, cert + ".key"))
    raw = socket.create_connection(("127.0.0.1", app.tls_port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def request(method, uri, cid, port, extra=""):
    return ("%s %s SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:%d;branch=z9hG4bK%s\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:test@example.com>;tag=f%s\r\nTo: <%s>\r\n"
            "Call-ID: %s\r\nCSeq: 1 %s\r\n%sContent-Length: 0\r\n\r\n" % (
                method, uri, port, cid, cid, uri, cid, method, extra)).encode()


def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        assert d, "connection closed: %r" % buf
        buf += d
    return buf


def test_options_and_sips_over_tls(app):
    s = tls_client(app)
    try:
        port = s.getsockname()[1]
        s.sendall(request("OPTIONS", "sip:example.com", "tls-opt-1", port))
        r = read_response(s)
        assert status(r) == 200 and call_id(r) == "tls-opt-1", r
        assert b"Via: SIP/2.0/TLS 127.0.0.1" in r, r
        s.sendall(request("OPTIONS", "sips:example.com", "tls-opt-2", port))
        r = read_response(s)
        assert status(r) == 200, r
        s.sendall(request("REGISTER", "sips:example.com", "tls-reg-1", port,
                          "Contact: <sips:2001@127.0.0.1:%d;transport=tls>\r\n" % port))
        r = read_response(s)
        assert status(r) == 401 and b"WWW-Authenticate: Digest" in r, r
    finally:
        s.close()
    stats = app.command("show sip statistics")
    assert ", TLS port %d" % app.tls_port in stats and "  tls accepted                     1" in stats, stats


def test_sips_over_udp_is_416(app):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.settimeout(5)
        port = u.getsockname()[1] if u.getsockname()[1] else None
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        data = request("OPTIONS", "sips:example.com", "udp-sips", port).replace(
            b"SIP/2.0/TLS", b"SIP/2.0/UDP")
        u.sendto(data, ("127.0.0.1", app.port))
        r, _ = u.recvfrom(4096)
        assert status(r) == 416, r
    finally:
        u.close()


def test_mutual_tls_refuses_a_client_without_a_trusted_certificate(app):
    app.command("configure")
    app.command(T + "mutual-tls")
    out = app.command("commit")
    assert "mutual TLS needs a trusted CA" in out or "error" in out.lower(), out
    app.command(T + "ca root-ca")
    out = app.command("commit")
    assert "commit complete" in out, out
    app.command("exit")
    for cert in (None, "stranger"):
        refused = False
        try:
            s = tls_client(app, cert)
            s.sendall(request("OPTIONS", "sip:example.com", "mtls-%s" % cert, 5060))
            refused = s.recv(4096) == b""
            s.close()
        except (ssl.SSLError, ConnectionError, OSError):
            refused = True
        assert refused, cert
    s = tls_client(app, "client")
    try:
        s.sendall(request("OPTIONS", "sip:example.com", "mtls-ok", s.getsockname()[1]))
        assert status(read_response(s)) == 200
    finally:
        s.close()
    app.command("configure")
    app.command("delete services convergence-services security tls mutual-tls")
    assert "commit complete" in app.command("commit")
    app.command("exit")


def test_commit_errors_name_the_problem(app):
    app.command("configure")
    app.command(T + "certificate root-ca")
    out = app.command("commit")
    assert "has no private key" in out, out
    app.command(T + "certificate nothing")
    out = app.command("commit")
    assert "no certificate nothing" in out, out
    app.command("rollback")
    app.command("exit")


def test_crlf_keepalive_ping_gets_a_pong_over_tls_and_tcp(app):
    s = tls_client(app)
    t = socket.create_connection(("127.0.0.1", app.port), timeout=10)
    try:
        for conn in (s, t):
            conn.sendall(b"\r\n\r\n")
            assert conn.recv(16) == b"\r\n"
            # the connection still carries SIP after it
            conn.sendall(request("OPTIONS", "sip:example.com", "ka-%d" % id(conn),
                                 conn.getsockname()[1]))
            assert status(read_response(conn)) == 200
    finally:
        s.close()
        t.close()
