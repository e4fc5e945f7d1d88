"""Voice statements reach the running SIP service at commit, without a
restart, on the simulated network: the port moves, the domain and the SIP
DSCP apply live (the mark travels on the network), and a port that cannot be
bound fails the commit and keeps the old one.  (The same on real sockets:
tests/system/test_sip_rebind.py.)"""
import socket

import pytest

from firmware.config.schema import ConfigError
from tests.sim.appliance import simulated, APPLIANCE_HOST


def _options(port, domain="example.com"):
    return ("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.0.1:9;branch=z9hG4bKvc%d\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:t@%s>;tag=1\r\nTo: <sip:%s>\r\n"
            "Call-ID: vc%d\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            % (domain, port, domain, domain, port)).encode()


def _ask(app, port, payload):
    """Send one datagram to the appliance and run its loop until it answers."""
    c = app.network.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("10.9.0.1", 0))
    try:
        c.sendto(payload, (APPLIANCE_HOST, port))
        for _ in range(50):
            app.sched.run(until=app.clock.now() + 10)
            try:
                return c.recv(4096)
            except OSError:
                continue
        return None
    finally:
        c.close()


def test_sip_port_domain_and_dscp_apply_live(tmp_path):
    app = simulated(tmp_path, args=["--domain", "example.com"])
    try:
        old = app.sip_port
        assert _ask(app, old, _options(old)).startswith(b"SIP/2.0 200")
        new = old + 10
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
        assert app.network.last_tos == 40 << 2          # the answer carried the mark
        assert _ask(app, old, _options(old, "branch.example.net")) is None  # old port closed
        assert app.network.stats("10.9.0.1", "appliance")["no_listener"] == 1
    finally:
        app.close()


def test_a_port_that_cannot_be_bound_fails_the_commit_and_keeps_the_old_one(tmp_path):
    app = simulated(tmp_path, args=["--domain", "example.com"])
    blocker = app.network.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind((APPLIANCE_HOST, 0))
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
