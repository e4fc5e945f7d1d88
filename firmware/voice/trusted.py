"""Trusted peers: sources that may send calls to the call server without a
digest challenge, and only to the numbers listed (issue 13, point 6).

    services convergence-services {
        trusted-peer pbx-hq {
            address [ 192.0.2.40 198.51.100.0/28 ];   # sources (IPv4 prefixes)
            allowed-number [ 1XXX 5550100 9NXXXXXX ];  # dial-plan patterns (mandatory)
        }
    }

An INVITE from a trusted source to an allowed number is a trunk call (the
call server's trunk-call-class applies to it, as to every trunk call); to
any other number it gets 403 "Forbidden (Number Not Allowed For Trusted
Peer)" (counted "trusted_refused"): a trusted source never falls back to a
challenge, so a misrouted number shows as what it is.  A source in no
trusted peer is treated as before (challenge, or unknown-source).  Emergency
numbers are never allowed from a trusted peer: they are accepted only from
local stations.  Bounds: MAX_TRUSTED_PEERS peers, MAX_TRUSTED_PREFIXES
addresses and MAX_TRUSTED_NUMBERS patterns each (commit refused beyond).

    t = trusted_for(settings, host)   -> TrustedPeer or None
    t.allows(number)                  -> bool
"""
from firmware.compat import const
from firmware.config import schema as S
from firmware.config import voice as _voice  # noqa: F401  (declares `services` after `system`)
from firmware.sipstack.security import parse_prefix, ipv4_halves
from firmware.voice.dialplan import check_pattern, _elements, _match, _FULL, _VAR

BASE = "services convergence-services"
MAX_TRUSTED_PEERS = const(16)
MAX_TRUSTED_PREFIXES = const(8)
MAX_TRUSTED_NUMBERS = const(32)


def _patterns_ok(value, view, path):
    for p in value:
        err = check_pattern(p)
        if err:
            return "pattern %s: %s" % (p, err)
    return None


S.register(BASE, S.List(
    "trusted-peer", "A source that may call without digest authentication, to the numbers listed",
    key=S.Name(), max_entries=MAX_TRUSTED_PEERS, key_help="Trusted peer name", children=(
        S.LeafList("address", S.IPv4Prefix(), max_items=MAX_TRUSTED_PREFIXES,
                   help="Source addresses (a.b.c.d or a.b.c.d/len)"),
        S.LeafList("allowed-number", S.String(1, 32), validate=_patterns_ok,
                   max_items=MAX_TRUSTED_NUMBERS,
                   help="Numbers it may call: dial patterns (X N Z [1-5], trailing .)"),
    )))


class TrustedPeer:
    def __init__(self, name, prefixes, patterns):
        self.name = name
        self.prefixes = [parse_prefix(p) for p in prefixes]
        self.patterns = tuple(patterns)
        self._els = [_elements(p) for p in patterns]

    def has(self, halves):
        for nh, nl, mh, ml in self.prefixes:
            if halves[0] & mh == nh and halves[1] & ml == nl:
                return True
        return False

    def allows(self, number):
        if not number:
            return False
        for els in self._els:
            if _match(els, number) in (_FULL, _VAR):
                return True
        return False


def parse(cfg):
    out = []
    for name in cfg.entries(BASE + " trusted-peer"):
        c = cfg.section("%s trusted-peer %s" % (BASE, name))
        out.append(TrustedPeer(name, c.get("address") or (), c.get("allowed-number") or ()))
    return out


def check(cfg):
    """(path, value, reason) of the first bad trusted peer, or None."""
    for name in cfg.entries(BASE + " trusted-peer"):
        c = cfg.section("%s trusted-peer %s" % (BASE, name))
        p = "%s trusted-peer %s " % (BASE, name)
        if not c.get("address"):
            return (p + "address", None, "a trusted peer needs at least one address")
        if not c.get("allowed-number"):
            return (p + "allowed-number", None,
                    "list the numbers it may call (a trusted peer may call nothing else)")
    return None


def trusted_for(peers, host):
    halves = ipv4_halves(host)
    if halves is None:
        return None
    for t in peers:
        if t.has(halves):
            return t
    return None
