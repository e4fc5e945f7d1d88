"""Peer call servers by address or DNS name (issue 13, point 1).

`SipHost` is the configuration type of `peer-call-server NAME address` and
`registrar-address`: an IPv4 address, an IPv6 address, or a DNS name
(RFC 1123 labels).  A name is resolved by the survivability monitor
(firmware/proxy/survival.py) through the DNS client
(firmware/sipstack/resolver.py) per RFC 3263: SRV `_sip._udp.NAME` (or
`_sip._tcp`) when no port is configured, else A and AAAA of NAME at the
port.  Every address found is probed; the peer in control is reached at
the best of them.  A name that does not resolve is a passive failure of
the peer.
"""
from firmware.config import schema as S
from sip.transport import is_ip

_LABEL = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
_HEX = "0123456789abcdefABCDEF"


def parse_host(text):
    """An IPv4/IPv6 literal or a DNS name, normalised; ValueError(reason)."""
    if ":" in text:
        t = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        groups = t.split(":")
        if t.count("::") > 1 or len(groups) > 8 or len(groups) < 3:
            raise ValueError("not an IPv6 address")
        for g in groups:
            if len(g) > 4 or any(c not in _HEX for c in g):
                raise ValueError("not an IPv6 address")
        if "::" not in t and len(groups) != 8:
            raise ValueError("not an IPv6 address")
        return t.lower()
    if text.replace(".", "").isdigit():
        return S.parse_ipv4(text)
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > 253:
        raise ValueError("a DNS name has 1..253 characters")
    labels = name.split(".")
    for lab in labels:
        if not lab or len(lab) > 63:
            raise ValueError("each label of a DNS name has 1..63 characters")
        for c in lab:
            if c not in _LABEL:
                raise ValueError("%r is not allowed in a DNS name (letters, digits, -)" % c)
        if lab[0] == "-" or lab[-1] == "-":
            raise ValueError("a label may not start or end with -")
    if labels[-1].isdigit():
        raise ValueError("the last label of a DNS name is not all digits")
    return name.lower()


class SipHost(S.Type):
    kind = "host"

    def parse(self, text):
        return parse_host(text)

    def describe(self):
        return "IPv4 or IPv6 address, or DNS name"


def resolved_addresses(peer):
    """The host addresses a peer's messages may come from (its own and its
    registrar's, literal or resolved)."""
    out = []
    for a in list(peer.get("resolved") or ()) + list(peer.get("registrar_resolved") or ()):
        if a[0] not in out:
            out.append(a[0])
    for k in ("address", "registrar"):
        if is_ip(peer[k]) and peer[k] not in out:
            out.append(peer[k])
    return out
