# portable: micropython
"""The RFC 3261 §18 helpers every layer shares (sip/transport.py): numeric
hosts, broadcast addresses, the address a URI names, default ports."""
from sip.transport import is_ip, is_broadcast, uri_address, default_port, bare_host
from sip.uri import parse_uri


def test_numeric_hosts():
    for h in ("127.0.0.1", "0.0.0.0", "255.255.255.255", "::1", "[2001:db8::1]", "fe80::1"):
        assert is_ip(h), h
    for h in ("branch.example.com", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3", "a.b.c.d", ""):
        assert not is_ip(h), h


def test_broadcast_and_multicast_are_recognised():
    for h in ("255.255.255.255", "224.0.0.1", "239.255.255.250", "192.0.2.255", "ff02::1",
              "[ff02::1]"):
        assert is_broadcast(h), h
    for h in ("192.0.2.1", "10.0.0.254", "240.0.0.255", "2001:db8::ff", "example.com"):
        assert not is_broadcast(h), h


def test_uri_address_uses_the_schemes_default_port():
    assert uri_address(parse_uri("sip:1001@192.0.2.10")) == ("192.0.2.10", 5060)
    assert uri_address(parse_uri("sips:1001@192.0.2.10")) == ("192.0.2.10", 5061)
    assert uri_address(parse_uri("sip:1001@192.0.2.10:5070;transport=tcp")) == ("192.0.2.10", 5070)
    assert uri_address(parse_uri("sip:[2001:db8::1]:5062")) == ("2001:db8::1", 5062)
    assert default_port("UDP") == 5060 and default_port("tls") == 5061
    assert bare_host("[2001:DB8::1]") == "2001:db8::1"
