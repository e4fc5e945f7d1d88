"""Configuration of the analog line agents (SRX ICS-style naming):

    services convergence-services {
        peer-call-server hq {                 # the central call server; at most two:
            address 192.0.2.10; port 5060; transport udp;   # primary and backup
                                              # address: IP or DNS name (system
                                              # name-server); no port + name: SRV
            priority 100;                     # lower is preferred (two peers: must differ)
            registrar-address 192.0.2.11;     # optional, default: address
            registration enable;              # REGISTER the FXS stations (disable: don't)
            register-expires 3600;
        }
        station alice {                       # a telephone; later issues add SIP stations
            extension 1001; fxs-port 1; display-name "Alice";
            user-id 1001; password "...";     # digest credentials for the peer
            call-waiting enable;              # second call: CW tone, else 486
        }
        trunk pstn1 {
            fxo-port 1; did-target 1001;      # extension, or auto-attendant
            prefix 9; replace-prefix "";      # outbound: 9NNN -> replace-prefix + NNN
            priority 100;                     # same prefix: lower first, overflow when busy
            answer-supervision polarity-reversal;   # or dial-complete (default)
            disconnect-supervision [ battery loop busy ];   # + polarity
            user-id ...; password ...;        # credentials if the peer challenges INVITEs
        }
        dial-plan {
            inter-digit-timeout 4; first-digit-timeout 15;   # seconds
            pattern [ 1XXX 9. ];              # default: station extension lengths + trunk prefixes
            emergency-number [ 911 112 ];     # always out of a local line, as dialled
        }
        analog { country US; hook-flash-min 100; hook-flash-max 800; }   # ms
        media { rtp-port-min 16384; rtp-port-max 16483; }
    }

Validation at commit (precise errors): a port that this board lacks, two
stations on one FXS port, two trunks on one FXO port, duplicate extensions,
a trunk prefix that collides with an extension, a DID target that is no
station's extension, a bad dial pattern, flash window min >= max, an odd
or inverted RTP port range.  Transport tcp: the appliance opens the
connection to the peer (reused, and opened again after it closed).

The apply hook keeps a GatewaySettings on app.gateway_settings and hands it
to app.gateway (GatewayService) when it runs.  The service (and the code of
firmware/gateway) is only loaded once a peer call server, a station or a
trunk is configured, to keep it out of the MicroPython heap otherwise.
"""
from firmware.compat import const
from firmware.config import schema as S
from firmware.config import voice  # noqa: F401  (declares `services` after `system`)
from firmware.config.schema import ConfigError
from firmware.voice.dialplan import check_pattern
from firmware.proxy import survival as _survival  # noqa: F401  (declares `survivability`)
from firmware.sipstack import resolver as _resolver  # noqa: F401  (system name-server; its hook first)
from firmware.voice.peers import SipHost
from firmware.voice import trunks as _trunks  # noqa: F401  (declares `sip-trunk`)

BASE = "services convergence-services"
_ENA = ("enable", "disable")


def _pattern_ok(value, view, path):
    for p in value:
        err = check_pattern(p)
        if err:
            return "pattern %s: %s" % (p, err)
    return None


def _did_ok(value, view, path):
    if value == "auto-attendant":
        return None
    if not value.isdigit():
        return "must be an extension number or auto-attendant"
    return None


S.register(BASE, S.List(
    "peer-call-server", "The central call server the analog ports register and send calls to",
    key=S.Name(), max_entries=2, key_help="Peer call server name", children=(
        S.Leaf("address", SipHost(), mandatory=True,
               help="Address or DNS name of the peer call server (every address is probed)"),
        S.Leaf("port", S.Port(), default=5060,
               help="SIP port (not set, with a DNS name: found by SRV, RFC 3263)"),
        S.Leaf("transport", S.Enum(("udp", "tcp")), default="udp", help="SIP transport toward the peer"),
        S.Leaf("registrar-address", SipHost(), help="Registrar address or name (default: address)"),
        S.Leaf("registration", S.Enum(_ENA), default="enable",
               help="Register the FXS stations with the peer call server"),
        S.Leaf("register-expires", S.Integer(60, 86400, "seconds"), default=3600,
               help="Registration lifetime asked for; refreshed at 80 %"),
        S.Leaf("priority", S.Integer(1, 255), default=100,
               help="Lower is preferred: the primary peer has the lowest, a backup a higher one"),
    )))

_USER_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+,"
MAX_STATIONS = const(256)


def _station_user(tree, path):
    """Digest user of the station whose leaf is at `path` (user-id, else extension)."""
    from firmware.config.tree import get_subtree
    sub = get_subtree(tree, path[:-1])
    if not isinstance(sub, dict):
        return None
    return sub.get("user-id") or sub.get("extension")


def realm_of(app, view_or_tree):
    """The digest realm: `sip domain`, else the domain the appliance booted with."""
    if isinstance(view_or_tree, dict):
        from firmware.config.tree import get_subtree
        d = get_subtree(view_or_tree, ["services", "convergence-services", "sip", "domain"])
    else:
        d = view_or_tree.get("services convergence-services sip domain")
    if d:
        return d.lower()
    return (getattr(app, "sip_domain", None) or "localdomain").lower()


S.register(BASE, S.List(
    "station", "A telephone served by this appliance: a SIP phone or an analog phone on an FXS port",
    key=S.Name(), max_entries=MAX_STATIONS, key_help="Station name", children=(
        S.Leaf("extension", S.String(2, 8, digits=True), mandatory=True, help="Extension number"),
        S.Leaf("type", S.Enum(("sip", "fxs")),
               help="SIP phone or analog phone (default: fxs when fxs-port is set, else sip)"),
        S.Leaf("fxs-port", S.Integer(1, 64), help="FXS port of the analog phone"),
        S.Leaf("display-name", S.String(1, 32), help="Name sent as caller ID"),
        S.Leaf("user-id", S.String(1, 64, charset=_USER_CHARS),
               help="Digest user name (default: extension)"),
        S.Leaf("password", S.DigestPassword("password-secret", _station_user, realm_of,
                                            replaces="password-ha1"),
               help="Digest password, more than 6 characters, not the user ID; stored reversibly "
                    "as password-secret ($9$)"),
        S.Leaf("password-secret", S.Secret(),
               help="Stored password ($9$, reversible): the digest HA1 is computed for the realm "
                    "that asks (set password instead)"),
        S.Leaf("password-ha1", S.DigestHA1(),
               help="Stored digest HA1 for one user and realm (set password instead, which "
                    "survives a change of realm)"),
        S.Leaf("max-contacts", S.Integer(1, 16), default=3,
               help="Registered contacts (phones) the station may have at once"),
        S.Leaf("nat-check", S.Enum(("ip", "ip-port")), default="ip-port",
               help="Behind NAT, send to the source address (ip) or address and port (ip-port)"),
        S.Leaf("did", S.String(1, 16, digits=True), help="Direct inward dialling number"),
        S.Leaf("class-of-restriction", S.Enum(("internal", "local", "national", "international")),
               default="international", help="Outside numbers the station may call"),
        S.Leaf("forward-unreachable", S.String(1, 24, charset="0123456789*#"),
               help="Number that gets the station's calls while it is not registered"),
        S.Leaf("call-waiting", S.Enum(_ENA), default="enable",
               help="Call waiting for a second call (disable: 486 Busy Here)"),
        S.Leaf("dtmf-mode", S.Enum(("rfc4733", "info", "inband")), default="rfc4733",
               help="How an analog station's keys pressed in a call leave: RFC 4733 events, "
                    "SIP INFO or in-band tones (firmware/media/dtmf.py)"),
    )))

S.register(BASE, S.List(
    "trunk", "An outside line (an FXO port)",
    key=S.Name(), max_entries=32, key_help="Trunk name", children=(
        S.Leaf("fxo-port", S.Integer(1, 64), mandatory=True, help="FXO port of the PSTN line"),
        S.Leaf("did-target", S.String(1, 16), validate=_did_ok,
               help="Extension (or auto-attendant) that inbound calls ring"),
        S.Leaf("prefix", S.String(1, 8, charset="0123456789*#"),
               help="Outbound: dialled numbers starting with this go out on the trunk"),
        S.Leaf("replace-prefix", S.String(1, 8, charset="0123456789*#,"),
               help="Outbound: digits dialled on the line in place of the prefix"),
        S.Leaf("answer-supervision", S.Enum(("dial-complete", "polarity-reversal")),
               default="dial-complete",
               help="When an outbound call counts as answered"),
        S.LeafList("disconnect-supervision", S.Enum(("battery", "loop", "polarity", "busy")),
                   help="Far-end disconnect detection (default: battery loop busy)", max_items=4),
        S.Leaf("priority", S.Integer(1, 255), default=100,
               help="Among trunks of the same prefix, lower is tried first (then overflow)"),
        S.Leaf("dial-delay", S.Integer(0, 10000, "ms"), default=1000,
               help="Wait after seizing the line before dialling"),
        S.Leaf("user-id", S.String(1, 64), help="Digest user name for INVITEs to the peer"),
        S.Leaf("password", S.Secret(), help="Digest password for INVITEs to the peer"),
    )))

S.register(BASE, S.Container("dial-plan", "How digits dialled on the analog phones are collected", children=(
    S.Leaf("inter-digit-timeout", S.Integer(1, 30, "seconds"), default=4,
           help="Dial the digits collected after this pause"),
    S.Leaf("first-digit-timeout", S.Integer(1, 60, "seconds"), default=15,
           help="Reorder tone when nothing is dialled within this time"),
    S.LeafList("pattern", S.String(1, 32), validate=_pattern_ok, max_items=64,
               help="Number patterns: digits, X N Z [1-5], trailing . (default: extensions and trunk prefixes)"),
    S.LeafList("emergency-number", S.String(1, 8, digits=True), max_items=8,
               help="Numbers dialled at once and always sent out of a local line (default: 911 112)"),
)))

S.register(BASE, S.Container("analog", "Analog port settings", children=(
    S.Leaf("country", S.Enum(("US", "GB", "DE")), default="US",
           help="Tones, ring cadence and caller ID conventions"),
    S.Leaf("hook-flash-min", S.Integer(50, 1000, "ms"), default=100,
           help="Shortest on-hook that counts as a hook flash"),
    S.Leaf("hook-flash-max", S.Integer(100, 2000, "ms"), default=800,
           help="Longest on-hook that counts as a hook flash (longer: hang-up)"),
    S.Leaf("conference-hangup", S.Enum(("transfer", "drop")), default="transfer",
           help="On-hook in a three-way call: connect the other two (transfer) or end both"),
)))

S.register(BASE, S.Container("media", "RTP media of the analog ports", children=(
    S.Leaf("rtp-port-min", S.Port(), default=16384, help="Lowest RTP port (even)"),
    S.Leaf("rtp-port-max", S.Port(), default=16483, help="Highest RTP port"),
    S.Leaf("rtp-inactivity-timeout", S.Integer(0, 3600, "seconds"), default=0,
           help="End a call whose RTP stopped arriving this long (analog ports, conference; "
                "0: never)"),
)))


class Station:
    def __init__(self, name, cfg):
        c = cfg.section("%s station %s" % (BASE, name))
        self.name = name
        self.extension = c.get("extension")
        self.fxs_port = c.get("fxs-port")
        self.display_name = c.get("display-name")
        self.user_id = c.get("user-id") or self.extension
        self.type = c.get("type") or ("fxs" if self.fxs_port is not None else "sip")
        self.secret = c.get("password-secret")   # plain text (stored as $9$), or None
        self.ha1 = c.get("password-ha1")
        self.credential = None        # (user, realm, md5, sha256) of the stored HA1
        if self.ha1 and self.secret is None:
            try:
                self.credential = S.parse_ha1(self.ha1)
            except ValueError:
                pass
        # changes whenever the credential does (the gateway restarts a registration)
        self.secret_id = ("$9$" + S.make_ha1(self.user_id, "", self.secret)[-64:]
                          if self.secret is not None else self.ha1)
        # what the UA's digest client signs with: fn(realm, algorithm) -> HA1
        self.password = self.ha1_for if (self.credential is not None or
                                         self.secret is not None) else None
        self.max_contacts = c.get("max-contacts")
        self.nat_port = c.get("nat-check") != "ip"
        self.did = c.get("did")
        self.cor = c.get("class-of-restriction")
        self.forward_unreachable = c.get("forward-unreachable")
        self.call_waiting = c.get("call-waiting") != "disable"
        self.dtmf_mode = c.get("dtmf-mode") or "rfc4733"

    def has_credentials(self):
        return self.secret is not None or self.ha1 is not None

    def ha1_for(self, realm, algorithm):
        """HA1 for a digest challenge (realm, MD5 or SHA-256), or None: from
        the reversible secret for any realm, else the stored HA1's realm only."""
        if self.secret is not None:
            # computed per challenge, nothing kept: no heap per registered station
            from firmware.compat import hash_new, hexlify
            name = "md5" if algorithm == "MD5" else "sha256" if algorithm == "SHA-256" else None
            if name is None:
                return None
            text = "%s:%s:%s" % (self.user_id, realm.lower(), self.secret)
            return hexlify(hash_new(name, text.encode()).digest())
        c = self.credential
        if c is None or c[1] != realm.lower():
            return None
        return c[2] if algorithm == "MD5" else c[3] if algorithm == "SHA-256" else None


class Trunk:
    def __init__(self, name, cfg):
        c = cfg.section("%s trunk %s" % (BASE, name))
        self.name = name
        self.fxo_port = c.get("fxo-port")
        self.did_target = c.get("did-target")
        self.prefix = c.get("prefix")
        self.replace_prefix = c.get("replace-prefix") or ""
        self.priority = c.get("priority")
        self.answer_polarity = c.get("answer-supervision") == "polarity-reversal"
        sup = c.get("disconnect-supervision")
        self.supervision = tuple(sup) if sup else ("battery", "loop", "busy")
        self.dial_delay_ms = c.get("dial-delay")
        self.user_id = c.get("user-id")
        self.password = c.get("password")


# fn(cfg) -> dial patterns that the default analog dial plan must also
# accept; registered at import time by the modules that own those numbers
DIAL_PATTERN_SOURCES = []


def settings_of(cfg):
    """The GatewaySettings of a configuration view, parsed once per view."""
    return cfg.derived("gateway", GatewaySettings)


class GatewaySettings:
    def __init__(self, cfg):
        # every configured peer, best (lowest priority) first; self.peer: the primary
        keyed = []
        i = 0
        for name in cfg.entries(BASE + " peer-call-server"):
            p = "%s peer-call-server %s " % (BASE, name)
            keyed.append(((cfg.get(p + "priority"), i), {
                "name": name,
                "address": cfg.get(p + "address"),
                "port": cfg.get(p + "port"),
                "port_set": cfg.has(p + "port"),    # unset with a name: SRV decides
                "transport": cfg.get(p + "transport"),
                "registrar": cfg.get(p + "registrar-address") or cfg.get(p + "address"),
                "register": cfg.get(p + "registration") != "disable",
                "expires": cfg.get(p + "register-expires"),
                "priority": cfg.get(p + "priority"),
            }))
            i += 1
        keyed.sort(key=lambda k: k[0])
        self.peers = [k[1] for k in keyed]
        self.peer = self.peers[0] if self.peers else None
        self.stations = [Station(n, cfg) for n in cfg.entries(BASE + " station")]
        self.trunks = [Trunk(n, cfg) for n in cfg.entries(BASE + " trunk")]
        # hunt groups are the call server's (firmware/callserver/config.py); the
        # analog side dials them and lets trunks deliver DIDs to them
        self.group_exts = tuple(cfg.get("%s hunt-group %s extension" % (BASE, n))
                                for n in cfg.entries(BASE + " hunt-group"))
        self.attendant_ext = cfg.get(BASE + " auto-attendant extension")
        self.operator = cfg.get(BASE + " call-server operator")   # callserver/feature_config.py
        # default patterns of other features (feature codes: callserver/feature_config.py)
        self.extra_patterns = []
        for fn in DIAL_PATTERN_SOURCES:
            self.extra_patterns.extend(fn(cfg))
        from firmware.callserver.features_config import dial_patterns
        self.feature_patterns = dial_patterns(cfg)     # park and pickup numbers
        d = BASE + " dial-plan "
        self.inter_digit_ms = cfg.get(d + "inter-digit-timeout") * 1000
        self.first_digit_ms = cfg.get(d + "first-digit-timeout") * 1000
        pats = cfg.get(d + "pattern")
        self.patterns = tuple(pats) if pats else None
        em = cfg.get(d + "emergency-number")
        self.emergency = tuple(em) if em else ("911", "112")
        a = BASE + " analog "
        self.country = cfg.get(a + "country")
        self.flash_min = cfg.get(a + "hook-flash-min")
        self.flash_max = cfg.get(a + "hook-flash-max")
        self.conference_hangup = cfg.get(a + "conference-hangup")
        m = BASE + " media "
        self.rtp_min = cfg.get(m + "rtp-port-min")
        self.rtp_max = cfg.get(m + "rtp-port-max")
        self.rtp_idle_ms = (cfg.get(m + "rtp-inactivity-timeout") or 0) * 1000

    def wanted(self):
        """Is there anything for the gateway to do?"""
        fxs = [st for st in self.stations if st.fxs_port is not None]
        return bool(self.peer is not None or fxs or self.trunks)

    def station_on(self, port):
        for s in self.stations:
            if s.fxs_port == port:
                return s
        return None

    def station_by_ext(self, ext):
        for s in self.stations:
            if s.extension == ext:
                return s
        return None

    def trunk_on(self, port):
        for t in self.trunks:
            if t.fxo_port == port:
                return t
        return None

    def dial_patterns(self):
        if self.patterns is not None:
            return self.patterns
        out = []
        exts = [s.extension for s in self.stations] + list(self.group_exts)
        if self.attendant_ext:
            exts.append(self.attendant_ext)
        for ext in exts:
            p = "X" * len(ext)
            if p not in out:
                out.append(p)
        for p in self.feature_patterns:
            if p not in out:
                out.append(p)
        for t in self.trunks:
            if t.prefix:
                p = t.prefix + "."
                if p not in out:
                    out.append(p)
        for p in self.extra_patterns:
            if p not in out:
                out.append(p)
        return tuple(out)


def _board_ports(app, kind):
    board = getattr(app, "board", None)
    if not board:
        return None
    return [spec["port"] for spec in board.get(kind, ())]


def check(app, old, new):
    s = settings_of(new)
    fxs = _board_ports(app, "fxs")
    fxo = _board_ports(app, "fxo")
    seen = {}
    exts = {}
    for st in s.stations:
        path = "%s station %s" % (BASE, st.name)
        if st.fxs_port is not None:
            if fxs is not None and st.fxs_port not in fxs:
                raise ConfigError(path + " fxs-port", st.fxs_port,
                                  "this board has no FXS port %d (ports: %s)" % (
                                      st.fxs_port, " ".join(str(p) for p in fxs) or "none"))
            if st.fxs_port in seen:
                raise ConfigError(path + " fxs-port", st.fxs_port,
                                  "FXS port %d is already used by station %s" % (
                                      st.fxs_port, seen[st.fxs_port]))
            seen[st.fxs_port] = st.name
        if st.extension in exts:
            raise ConfigError(path + " extension", st.extension,
                              "extension already used by station %s" % exts[st.extension])
        exts[st.extension] = st.name
    seen = {}
    for t in s.trunks:
        path = "%s trunk %s" % (BASE, t.name)
        if fxo is not None and t.fxo_port not in fxo:
            raise ConfigError(path + " fxo-port", t.fxo_port,
                              "this board has no FXO port %d (ports: %s)" % (
                                  t.fxo_port, " ".join(str(p) for p in fxo) or "none"))
        if t.fxo_port in seen:
            raise ConfigError(path + " fxo-port", t.fxo_port,
                              "FXO port %d is already used by trunk %s" % (t.fxo_port, seen[t.fxo_port]))
        seen[t.fxo_port] = t.name
        if t.did_target == "auto-attendant" and not s.attendant_ext:
            raise ConfigError(path + " did-target", t.did_target,
                              "no auto attendant is configured (auto-attendant extension)")
        if (t.did_target and t.did_target != "auto-attendant" and t.did_target not in exts
                and t.did_target not in s.group_exts):
            raise ConfigError(path + " did-target", t.did_target,
                              "no station or hunt group has this extension")
        if t.prefix:
            for e in list(exts) + list(s.group_exts):
                if e.startswith(t.prefix):
                    raise ConfigError(path + " prefix", t.prefix,
                                      "extension %s of %s starts with the trunk prefix" % (
                                          e, "station " + exts[e] if e in exts else "a hunt group"))
    if s.flash_min >= s.flash_max:
        raise ConfigError(BASE + " analog hook-flash-min", s.flash_min,
                          "must be less than hook-flash-max (%d)" % s.flash_max)
    if s.rtp_min % 2 or s.rtp_max <= s.rtp_min:
        raise ConfigError(BASE + " media rtp-port-min", s.rtp_min,
                          "must be even and below rtp-port-max (%d)" % s.rtp_max)
    if len(s.peers) == 2 and s.peers[0]["priority"] == s.peers[1]["priority"]:
        raise ConfigError("%s peer-call-server %s priority" % (BASE, s.peers[1]["name"]),
                          s.peers[1]["priority"],
                          "same priority as peer-call-server %s: give the backup a higher one"
                          % s.peers[0]["name"])


    from firmware.proxy.survival import check as check_survival
    check_survival(new)


def _show_gateway(app, args):
    if getattr(app, "gateway", None) is None:
        return "no analog station, trunk or peer call server is configured"
    from firmware.gateway.service import _show_gateway as show
    return show(app, args)


def apply(app, old, new):
    settings = settings_of(new)
    app.gateway_settings = settings
    control = getattr(app, "control", None)
    if control is not None:
        # the peers go to the survivability monitor, which drives control
        from firmware.proxy import survival
        survival.apply(app, settings.peers, new)
    if hasattr(app, "commands"):  # the real command is in service.py, loaded with the gateway
        app.commands.register("show gateway", _show_gateway,
                              "Show the analog line agents: registrations, calls, media")
    gw = getattr(app, "gateway", None)
    if gw is not None:
        gw.configure(settings)
    elif settings.wanted() and getattr(app, "sip", None) is not None:
        # first stations/trunks/peer on a running appliance: build the gateway now
        # (it is not built while unconfigured, to keep its code out of the heap)
        from firmware.gateway.service import GatewayService
        app.gateway = GatewayService(app)
        if getattr(app, "gateway_started", False):
            app.gateway.start()


S.on_commit("gateway", apply, check=check)
