"""TLS streams (firmware/sipstack/tls.py) over real loopback TCP, stepped
without blocking, on both interpreters: handshake and data, server
validation, mutual TLS and its refusals.  Certificates: tests/data/tls
(made by tests/tlscerts.py; MicroPython cannot make them)."""
# portable: micropython
import select
import socket

from firmware.compat import MICROPYTHON
from firmware.sipstack import tls

DATA = "tests/data/tls"


class FixedStore:
    path = DATA

    def _read(self, name):
        try:
            with open(DATA + "/" + name, "rb") as f:
                return f.read()
        except OSError:
            return None

    def pem(self, name):
        return self._read(name + ".pem")

    def key(self, name):
        return self._read(name + ".key")


STORE = FixedStore()
_ports = [0]


def _listen():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if not MICROPYTHON:
        ls.bind(("127.0.0.1", 0))
        return ls, ls.getsockname()
    import os
    for _ in range(32):      # MicroPython has no getsockname: a port we choose
        port = 30000 + int.from_bytes(os.urandom(2), "big") % 20000
        addr = socket.getaddrinfo("127.0.0.1", port)[0][-1]
        try:
            ls.bind(addr)
            return ls, addr
        except OSError:
            pass
    raise OSError("no free port")


def pair(server_ctx, client_ctx, hostname="localhost"):
    ls, addr = _listen()
    ls.listen(1)
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.connect(addr)
    s, _ = ls.accept()
    ls.close()
    s.setblocking(False)
    c.setblocking(False)
    return (tls.TlsStream(server_ctx, s, True), tls.TlsStream(client_ctx, c, False, hostname),
            s, c)


def exchange(server, client, ssock, csock, steps=400):
    """Client sends PING, server answers PONG; each side stepped without
    blocking, waiting only for socket readiness.  (server got, client got,
    error of the side that failed or None)."""
    got_s = got_c = b""
    sent_c = sent_s = False
    poll = select.poll()
    poll.register(server.pollable, select.POLLIN)
    poll.register(client.pollable, select.POLLIN)
    for _ in range(steps):
        try:
            if not sent_c:
                sent_c = client.send(b"PING") == 4
            try:
                got_c += client.recv(100)
            except OSError:
                pass
        except tls.TlsError as e:
            return got_s, got_c, ("client", str(e))
        try:
            try:
                got_s += server.recv(100)
            except OSError:
                pass
            if got_s == b"PING" and not sent_s:
                sent_s = server.send(b"PONG") == 4
        except tls.TlsError as e:
            return got_s, got_c, ("server", str(e))
        if got_c == b"PONG":
            return got_s, got_c, None
        poll.poll(20)
    return got_s, got_c, ("timeout", "")


def run(server_ctx, client_ctx, hostname="localhost"):
    server, client, s, c = pair(server_ctx, client_ctx, hostname)
    try:
        return exchange(server, client, s, c)
    finally:
        server.close()
        client.close()


def test_handshake_and_data_with_a_validated_server():
    got_s, got_c, err = run(tls.server_context(STORE, "server"),
                            tls.client_context(STORE, ca=("ca",)))
    assert err is None and got_s == b"PING" and got_c == b"PONG", (got_s, got_c, err)


def test_a_server_certificate_nobody_trusts_is_refused_unless_validation_is_off():
    got_s, got_c, err = run(tls.server_context(STORE, "stranger"),
                            tls.client_context(STORE, ca=("ca",)))
    assert err is not None and err[0] in ("client", "server") and got_c == b"", err
    got_s, got_c, err = run(tls.server_context(STORE, "stranger"),
                            tls.client_context(STORE, validate=False))
    assert err is None and got_c == b"PONG", err


def test_mutual_tls_admits_only_clients_with_a_trusted_certificate():
    srv = tls.server_context(STORE, "server", ca=("ca",), verify_client=True)
    got_s, got_c, err = run(srv, tls.client_context(STORE, ca=("ca",), cert="client"))
    assert err is None and got_s == b"PING", err
    for cert in (None, "stranger"):
        srv = tls.server_context(STORE, "server", ca=("ca",), verify_client=True)
        got_s, got_c, err = run(srv, tls.client_context(STORE, ca=("ca",), cert=cert))
        assert err is not None and got_s == b"", (cert, err)


def test_configuration_errors_are_named():
    for fn, why in ((lambda: tls.server_context(STORE, "ca"), "has no private key"),
                    (lambda: tls.server_context(STORE, "server", verify_client=True),
                     "mutual TLS needs a trusted CA"),
                    (lambda: tls.client_context(STORE), "needs a trusted CA")):
        try:
            fn()
        except tls.TlsError as e:
            assert why in str(e), str(e)
        else:
            raise AssertionError("accepted: " + why)
