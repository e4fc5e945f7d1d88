"""SIP trunks to a service provider (issue 13, point 1):

    services convergence-services sip-trunk itsp {
        proxy sip.itsp.example;         # IP or DNS name (A/AAAA at port)
        port 5060; transport udp;
        registrar reg.itsp.example;     # default: proxy
        registration enable;            # REGISTER (digest) while configured; default disable
        register-expires 3600;
        username 4085550100; password "...";     # digest credentials (REGISTER, INVITE)
        did [ 4085550100 4085550101 ];  # numbers the provider delivers here
        prefix 8; replace-prefix 1; priority 50;  # outbound, as FXO trunks
        health-check { interval 30; failures 3; recovery 60; }   # seconds
    }

Outbound: a SIP trunk is a route of the dial plan like an FXO trunk
(firmware/voice/routing.py, one rule: longest prefix, then priority):
`plan(app, fxo_trunks, number, emergency)` gives the routes in order over
the FXO trunks and the in-service SIP trunks.  The call server (b2bua)
tries them in turn: a SIP trunk that answers busy, unavailable or not at
all (OVERFLOW_STATUSES) passes the call to the next route.  Emergency
numbers go out as dialled on every trunk, SIP trunks included, by priority.

Inbound: an INVITE from the trunk's proxy (its literal or resolved
addresses) is taken without a challenge (`inbound`): to one of its DIDs it
rings the station or hunt group with that DID, an unassigned DID rings the
auto attendant when one is configured (else 404 "Unassigned DID"); any
other number gets 404 "Not A DID Of This Trunk", and an emergency number
403 (only local stations may dial one).

Health: an OPTIONS to the proxy every `interval`; any final response except
408 and 503 is alive.  A miss is a 503, or a check still unanswered when the
next one is due (that one is then skipped, counted "skipped").  `failures`
misses in a row put the trunk out of service (logged with the cause); it is probed again every `recovery`
seconds and comes back at the first answer.  Registration (when enabled)
uses sip/usage/registration.py (refresh at 80-100 %, retry with back-off).
`show sip-trunks`: state, since when and why, registration, health counters.

The running part (registration, health check, show) is
firmware/voice/trunk_service.py, loaded once a trunk is configured.

Bounds: MAX_SIP_TRUNKS trunks, MAX_TRUNK_DIDS DIDs each (commit refused
beyond), one probe in flight per trunk.
"""
from firmware.compat import const
from firmware.config import schema as S
from firmware.config import voice as _voice  # noqa: F401  (declares `services` after `system`)
from firmware.config.schema import ConfigError
from sip.transport import is_ip
from firmware.voice.peers import SipHost
from firmware.voice.routing import trunk_routes

BASE = "services convergence-services"
MAX_SIP_TRUNKS = const(8)
MAX_TRUNK_DIDS = const(64)
# a SIP trunk's final answers that pass an outbound call to the next route
OVERFLOW_STATUSES = (408, 480, 486, 500, 502, 503, 504, 600)

S.register(BASE, S.List(
    "sip-trunk", "A SIP trunk to a service provider: outside calls and DIDs over SIP",
    key=S.Name(), max_entries=MAX_SIP_TRUNKS, key_help="SIP trunk name", children=(
        S.Leaf("proxy", SipHost(), mandatory=True,
               help="Address or DNS name of the provider's proxy (calls and health checks)"),
        S.Leaf("port", S.Port(), default=5060, help="SIP port of the proxy and registrar"),
        S.Leaf("transport", S.Enum(("udp", "tcp")), default="udp", help="SIP transport"),
        S.Leaf("registrar", SipHost(), help="Registrar address or name (default: proxy)"),
        S.Leaf("registration", S.Enum(("enable", "disable")), default="disable",
               help="Register the trunk's username with the registrar"),
        S.Leaf("register-expires", S.Integer(60, 86400, "seconds"), default=3600,
               help="Registration lifetime asked for; refreshed at 80-100 %"),
        S.Leaf("username", S.String(1, 64), help="Digest user name (REGISTER and INVITE)"),
        S.Leaf("password", S.Secret(), help="Digest password"),
        S.LeafList("did", S.String(1, 16, digits=True), max_items=MAX_TRUNK_DIDS,
                   help="Numbers the provider delivers on this trunk (a station's did rings it)"),
        S.Leaf("prefix", S.String(1, 8, charset="0123456789*#"),
               help="Outbound: dialled numbers starting with this go out on the trunk"),
        S.Leaf("replace-prefix", S.String(1, 8, charset="0123456789*#"),
               help="Outbound: digits sent in place of the prefix"),
        S.Leaf("priority", S.Integer(1, 255), default=100,
               help="Among trunks of the same prefix, lower is tried first (then overflow)"),
        S.Container("health-check", "OPTIONS health check of the proxy", children=(
            S.Leaf("interval", S.Integer(5, 3600, "seconds"), default=30,
                   help="Seconds between OPTIONS to the proxy"),
            S.Leaf("failures", S.Integer(1, 10), default=3,
                   help="Unanswered checks in a row that put the trunk out of service"),
            S.Leaf("recovery", S.Integer(5, 3600, "seconds"), default=60,
                   help="Out of service: check again after this long"),
        )),
    )))


class SipTrunk:
    """Settings of one SIP trunk (read-only) and, on the running service's
    copy, its state."""

    kind = "sip"

    def __init__(self, name, cfg):
        c = cfg.section("%s sip-trunk %s" % (BASE, name))
        h = "%s sip-trunk %s health-check " % (BASE, name)
        self.name = name
        self.proxy = c.get("proxy")
        self.port = c.get("port")
        self.transport = c.get("transport")
        self.registrar = c.get("registrar") or self.proxy
        self.register = c.get("registration") == "enable"
        self.expires = c.get("register-expires")
        self.username = c.get("username")
        self.password = c.get("password")
        self.dids = tuple(c.get("did") or ())
        self.prefix = c.get("prefix")
        self.replace_prefix = c.get("replace-prefix") or ""
        self.priority = c.get("priority")
        self.interval_ms = cfg.get(h + "interval") * 1000
        self.failures_max = cfg.get(h + "failures")
        self.recovery_ms = cfg.get(h + "recovery") * 1000

    def key(self):
        return (self.proxy, self.port, self.transport, self.registrar, self.register,
                self.expires, self.username, self.password, self.interval_ms,
                self.failures_max, self.recovery_ms)


def trunks_of(cfg):
    return [SipTrunk(n, cfg) for n in cfg.entries(BASE + " sip-trunk")]


def check(app, old, new):
    trunks = trunks_of(new)
    from firmware.voice.config import settings_of
    g = settings_of(new)
    exts = [s.extension for s in g.stations] + list(g.group_exts)
    dids = {}
    for t in trunks:
        p = "%s sip-trunk %s " % (BASE, t.name)
        if t.register and not (t.username and t.password):
            raise ConfigError(p + "registration", "enable",
                              "registration needs username and password")
        if t.password and not t.username:
            raise ConfigError(p + "password", None, "a password needs a username")
        for d in t.dids:
            if d in dids:
                raise ConfigError(p + "did", d, "DID already on sip-trunk %s" % dids[d])
            dids[d] = t.name
        if t.prefix:
            for e in exts:
                if e.startswith(t.prefix):
                    raise ConfigError(p + "prefix", t.prefix,
                                      "extension %s starts with the trunk prefix" % e)
        if t.replace_prefix and not t.prefix:
            raise ConfigError(p + "replace-prefix", t.replace_prefix,
                              "replace-prefix needs a prefix")


def plan(app, fxo_trunks, number, emergency=()):
    """Outbound routes in the order to try: [(trunk, digits)] over the FXO
    trunks and the in-service SIP trunks (trunk.kind == "sip")."""
    svc = getattr(app, "sip_trunks", None)
    sip = svc.in_service() if svc is not None else []
    if not sip:
        return trunk_routes(fxo_trunks, number, emergency)
    return trunk_routes(list(fxo_trunks) + sip, number, emergency)


def inbound(app, sreq, emergency):
    """An INVITE from a SIP trunk's proxy: (number to ring, None) for a DID,
    (status, reason) to refuse it, or None when it comes from no SIP trunk."""
    svc = getattr(app, "sip_trunks", None)
    if svc is None:
        return None
    ts = svc.trunk_from(sreq.source.addr[0])
    if ts is None:
        return None
    u = sreq.request.uri
    number = u.user_plain if u.scheme == "sip" else u.user
    if number in emergency:
        svc.counters["refused_in"] += 1
        return (403, "Emergency Calls Only From Local Stations")
    if number not in ts.t.dids:
        svc.counters["refused_in"] += 1
        return (404, "Not A DID Of This Trunk")
    cs = getattr(app, "callserver", None)
    s = cs.settings if cs is not None else None
    if s is not None and (number in s.by_did or number in s.group_by_did):
        svc.counters["calls_in"] += 1
        return (number, None)
    att = getattr(getattr(s, "attendant", None), "extension", None)
    if att:
        svc.counters["calls_in"] += 1
        return (att, None)
    svc.counters["refused_in"] += 1
    return (404, "Unassigned DID")


def _show(app, args):
    svc = getattr(app, "sip_trunks", None)
    if svc is None:
        return "no SIP trunk is configured"
    return svc.show()


def apply(app, old, new):
    trunks = trunks_of(new)
    if hasattr(app, "commands"):
        app.commands.register("show sip-trunks", _show,
                              "Show the SIP trunks: state, registration, health check")
    svc = getattr(app, "sip_trunks", None)
    if svc is None:
        if not trunks or getattr(app, "sip", None) is None:
            return
        from firmware.voice.trunk_service import SipTrunkService   # only with trunks
        svc = app.sip_trunks = SipTrunkService(app)
    svc.configure(trunks)


S.on_commit("sip-trunks", apply, check=check)
