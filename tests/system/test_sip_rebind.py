"""Voice statements reach the running SIP service at commit, without a
restart, on real loopback sockets: the port moves to a free one the OS picks,
DSCP is read back from the socket with getsockopt, and a port the OS refuses
(taken by another socket) fails the commit and keeps the old one.  (The same
on the simulated network: tests/sim/test_voice_config.py.)"""
import socket

import pytest

from firmware.config.schema import ConfigError
from tests.sim.appliance import simulated


def _options(port, domain="example.com"):
    return ("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKvc%d\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:t@%s>;tag=1\r\nTo: <sip:%s>\r\n"
            "Call-ID: vc%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            % (domain, port, domain, domain, port)).encode()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ask(app, port, payload):
    """Send one datagram to the appliance and run its loop until it answers."""
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    c.setblocking(False)
    try:
        c.sendto(payload, ("127.0.0.1", port))
        for _ in range(50):
            app.sched.run(until=app.clock.now() + 10)
            try:
                return c.recv(4096)
            except BlockingIOError:
                continue
        return None
    finally:
        c.close()


def test_sip_port_domain_and_dscp_apply_live(tmp_path):
    app = simulated(tmp_path, args=["--domain", "example.com"], sockets=True)
    try:
        old = app.sip_port
        assert _ask(app, old, _options(old)).startswith(b"SIP/2.0 200")
        new = _free_port()
        app.config.load_file("live.conf", "\n".join((
            "set services convergence-services sip port %d" % new,
            "set services convergence-services sip domain branch.example.net",
            "set services convergence-services service-class voice dscp-sip cs5",
            "set services convergence-services sip service-class voice")))
        assert app.sip_port == new
        assert app.sip_domain == "branch.example.net"
        tos = app.sip_transports.udp[0][0].getsockopt(socket.IPPROTO_IP, socket.IP_TOS)
        assert tos == 40 << 2
        assert _ask(app, new, _options(new, "branch.example.net")).startswith(b"SIP/2.0 200")
        assert _ask(app, old, _options(old, "branch.example.net")) is None  # old port closed
    finally:
        app.close()


def test_a_port_that_cannot_be_bound_fails_the_commit_and_keeps_the_old_one(tmp_path):
    app = simulated(tmp_path, args=["--domain", "example.com"], sockets=True)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", 0))
    taken = blocker.getsockname()[1]
    try:
        old = app.sip_port
        with pytest.raises(ConfigError) as e:
            app.config.load_file("bad.conf", "set services convergence-services sip port %d" % taken)
        assert "cannot bind" in str(e.value) and str(old) in str(e.value)
        assert app.sip_port == old
        assert app.config.get("services convergence-services sip port") != taken
        assert _ask(app, old, _options(old)).startswith(b"SIP/2.0 200")
    finally:
        blocker.close()
        app.close()
