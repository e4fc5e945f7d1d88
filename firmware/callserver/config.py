"""Configuration of the call server (the stations themselves are declared in
firmware/voice/config.py, shared with the analog gateway):

    services convergence-services {
        call-server {
            max-registrations 100;      # licence count: contacts registered at once
            max-calls 64;               # concurrent calls (503 + Retry-After beyond)
            max-dialogs 128;            # SIP dialogs of the call server (503 beyond)
            registration { default-expires 600; min-expires 60; max-expires 3600; }
            digest-algorithm [ md5 sha-256 ];   # offered in this order (default: md5 only:
                                # baresip 1.0 fails on any SHA-256 challenge, SIPp and
                                # many phones read only the first one)
            unknown-source reject;      # reject | trunk: INVITEs without credentials
            trunk-call-class internal;  # class of restriction of calls from no station
                                # (FXO lines, unknown sources): internal = no outside number
            no-answer-timeout 60;       # seconds a call rings before 480
        }
        hunt-group sales {
            extension 600;
            member [ 2001 2002 1001 ];  # station extensions (SIP or FXS), hunting order
            type linear;                # round-robin (default) | linear | circular | ring-all
            ring-timeout 15;            # per member (ring-all: the whole group)
            no-answer-target 2010;      # else 480 when nobody answers
            did 5550600;
        }
    }

The station list of firmware/voice/config.py gets one statement from here:
`station NAME caller-authentication digest|registered-source` (how an INVITE
from the station is authenticated; firmware/callserver/service.py).

Commit checks (precise errors): a SIP station without a password, an FXS
station without fxs-port (or a SIP station with one), caller-authentication
registered-source on an FXS station, a stored HA1 for
another user or realm than the station now has (the password must be typed
again), min-expires > default-expires > max-expires, a DID used twice, a
forward-unreachable target that is the station itself, licence count above
MAX_BINDINGS; a hunt group whose extension is a station's extension or user
ID or another group's, without members, with a member that is no station's
extension, with a DID already used, or that is its own no-answer target.

The apply hook keeps CallServerSettings on app.callserver_settings and
builds the CallServer (firmware/callserver/service.py) once a station is
configured, so that its code stays out of the heap otherwise.
"""
from firmware.compat import const
from firmware.config import schema as S
from firmware.config.schema import ConfigError
from firmware.voice.config import BASE, settings_of, realm_of, _ENA
from firmware.voice.routing import trunk_routes
from firmware.voice.trusted import parse as parse_trusted, check as check_trusted

MAX_BINDINGS = const(1024)      # registered contacts, hard ceiling of max-registrations
MAX_CALLS = const(256)          # concurrent calls, ceiling of max-calls
MAX_CS_DIALOGS = const(512)     # dialogs, ceiling of max-dialogs
MAX_HUNT_GROUPS = const(32)
MAX_PROMPT_BYTES = const(491520)   # a 60 s G.711 greeting (+ a WAV header)
_FILE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
_DIAL_CHARS = "0123456789*#"
MAX_GROUP_MEMBERS = const(16)

S.register(BASE, S.Container("call-server", "The branch call server: registrar and call control", children=(
    S.Leaf("max-registrations", S.Integer(1, MAX_BINDINGS), default=100,
           help="Licensed registrations: contacts registered at once (403 beyond)"),
    S.Leaf("max-calls", S.Integer(1, MAX_CALLS), default=64,
           help="Concurrent calls (503 Service Unavailable beyond)"),
    S.Leaf("max-dialogs", S.Integer(2, MAX_CS_DIALOGS), default=128,
           help="SIP dialogs of the call server, two per call (503 beyond)"),
    S.Container("registration", "Registration lifetime policy", children=(
        S.Leaf("default-expires", S.Integer(60, 86400, "seconds"), default=600,
               help="Lifetime granted when the phone asks for none"),
        S.Leaf("min-expires", S.Integer(10, 86400, "seconds"), default=60,
               help="Shorter requests get 423 Interval Too Brief"),
        S.Leaf("max-expires", S.Integer(60, 604800, "seconds"), default=3600,
               help="Longer requests are shortened to this"),
    )),
    S.LeafList("digest-algorithm", S.Enum(("md5", "sha-256")), max_items=2,
               help="Digest algorithms offered, in order of preference (default: md5; "
                    "some phones fail on a challenge they do not know)"),
    S.Leaf("unknown-source", S.Enum(("reject", "trunk")), default="reject",
           help="INVITE without credentials: reject (407 challenge for every caller, station or "
                "not) or trunk (a call to a local destination: station, DID, hunt group, "
                "attendant, is taken as a trunk call whatever its From; others are challenged)"),
    S.Leaf("trunk-call-class", S.Enum(("internal", "local", "national", "international")),
           default="internal",
           help="Class of restriction of calls that come from no station (FXO lines, "
                "unknown sources): how far out they may be forwarded or transferred"),
    S.Leaf("no-answer-timeout", S.Integer(5, 600, "seconds"), default=60,
           help="How long a call rings before it ends with 480"),
    S.Leaf("survival-registration-expiry", S.Integer(30, 3600, "seconds"), default=120,
           help="Survival mode: phones registering get 50-100 % of this, so that after "
                "failback they re-register through the outbound proxy to the peer within "
                "this window, spread over it"),
)))

# session timers, max-call-duration, music-on-hold, conference-extension (issue 14)
from firmware.callserver import media_config as _media  # noqa: E402

# on the station list of firmware/voice/config.py: only the call server reads it
S.register(BASE + " station", S.Leaf(
    "caller-authentication", S.Enum(("digest", "registered-source")), default="digest",
    help="How the call server knows a call comes from this SIP station: digest (a 407 "
         "challenge, default) or registered-source (trusted without a challenge when it "
         "comes from a registered contact's address and port; only for phones that cannot "
         "answer a challenge: whoever can forge that address can call as the station)"))

S.register(BASE + " station", S.Leaf(
    "srtp", S.Enum(("disable", "prefer", "require")), default="prefer",
    help="SRTP keys (SDES) of this SIP station's calls: prefer (passed on where they can "
         "travel over TLS), require (a call without a usable key gets 488; needs the TLS "
         "listener, security tls), disable (keys removed, plain RTP)"))

S.register(BASE, S.List(
    "hunt-group", "Stations answering one extension together (ring group) or in turn (hunt group)",
    key=S.Name(), max_entries=MAX_HUNT_GROUPS, key_help="Group name", children=(
        S.Leaf("extension", S.String(2, 8, digits=True), mandatory=True,
               help="Extension number of the group"),
        S.LeafList("member", S.String(2, 8, digits=True), max_items=MAX_GROUP_MEMBERS,
                   help="Station extensions, in hunting order (SIP phones or FXS ports)"),
        S.Leaf("type", S.Enum(("round-robin", "linear", "circular", "ring-all")),
               default="round-robin",
               help="round-robin (default, as the SRX): each call starts at the member after "
                    "the one the previous call started at; linear: first member first; "
                    "circular: after the last one who answered; ring-all: every member at once"),
        S.Leaf("ring-timeout", S.Integer(5, 120, "seconds"), default=15,
               help="How long a member rings before the next (ring-all: the whole group)"),
        S.Leaf("no-answer-target", S.String(1, 24, charset="0123456789*#"),
               help="Number that gets the call when no member answers (default: 480)"),
        S.Leaf("did", S.String(1, 16, digits=True), help="Direct inward dialling number"),
    )))


S.register(BASE, S.Container(
    "auto-attendant", "Answers calls with a greeting and transfers them by the digits dialled",
    children=(
        S.Leaf("extension", S.String(2, 8, digits=True),
               help="Extension of the attendant (a trunk's did-target auto-attendant rings it)"),
        S.Leaf("greeting", S.String(1, 64, charset=_FILE_CHARS),
               help="Prompt file in the flash's prompts/ directory: WAV (G.711 u-law or A-law, "
                    "8 kHz mono) or raw .ul/.al (default: two beeps)"),
        S.Leaf("digit-timeout", S.Integer(2, 20, "seconds"), default=5,
               help="Wait for the first or the next digit"),
        S.Leaf("max-retries", S.Integer(0, 5), default=2,
               help="Greeting replays after no input or an invalid entry"),
        S.Leaf("operator", S.String(1, 24, charset=_DIAL_CHARS),
               help="Number for 0 and for callers who enter nothing valid (default: hang up)"),
        S.Leaf("dial-by-extension", S.Enum(_ENA), default="enable",
               help="Callers may dial a station or hunt group extension"),
        S.List("menu", "A single-key choice of the greeting", key=S.String(1, 1, charset="0123456789*"),
               max_entries=11, key_help="Key", children=(
                   S.Leaf("target", S.String(1, 24, charset=_DIAL_CHARS), mandatory=True,
                          help="Number the key transfers to"),
               )),
    )))


class AttendantSettings:
    def __init__(self, cfg):
        c = cfg.section(BASE + " auto-attendant")
        self.extension = c.get("extension")
        self.greeting = c.get("greeting")
        self.digit_ms = c.get("digit-timeout") * 1000
        self.max_retries = c.get("max-retries")
        self.operator = c.get("operator")
        self.by_extension = c.get("dial-by-extension") != "disable"
        self.menu = {}
        for key in cfg.entries(BASE + " auto-attendant menu"):
            self.menu[key] = cfg.get("%s auto-attendant menu %s target" % (BASE, key))


class HuntGroup:
    def __init__(self, name, cfg):
        c = cfg.section("%s hunt-group %s" % (BASE, name))
        self.name = name
        self.extension = c.get("extension")
        self.members = tuple(c.get("member") or ())
        self.type = c.get("type")
        self.ring_ms = c.get("ring-timeout") * 1000
        self.no_answer_target = c.get("no-answer-target")
        self.did = c.get("did")


class CallServerSettings:
    def __init__(self, cfg, app=None):
        c = BASE + " call-server "
        self.max_registrations = cfg.get(c + "max-registrations")
        self.max_calls = cfg.get(c + "max-calls")
        self.max_dialogs = cfg.get(c + "max-dialogs")
        self.default_expires = cfg.get(c + "registration default-expires")
        self.min_expires = cfg.get(c + "registration min-expires")
        self.max_expires = cfg.get(c + "registration max-expires")
        self.unknown_trunk = cfg.get(c + "unknown-source") == "trunk"
        self.trusted = parse_trusted(cfg)     # firmware/voice/trusted.py
        self.tls = cfg.get(BASE + " security tls certificate") is not None   # sipstack/tlsconfig.py
        self.trunk_cor = cfg.get(c + "trunk-call-class")
        self.no_answer_ms = cfg.get(c + "no-answer-timeout") * 1000
        self.cutoff = _media.CutoffSettings(cfg)
        self.conference_ext = _media.conference_extension_of(cfg)
        self.survival_expiry = cfg.get(c + "survival-registration-expiry")
        algs = cfg.get(c + "digest-algorithm") or ("md5",)
        self.algorithms = tuple(a.upper() for a in algs)
        self.realm = realm_of(app, cfg)
        g = settings_of(cfg)
        self.stations = g.stations
        self.trunks = g.trunks
        self.peer = g.peer
        self.by_ext = {}
        self.by_user = {}
        self.by_did = {}
        for st in self.stations:
            st.trust_source = cfg.get("%s station %s caller-authentication" % (
                BASE, st.name)) == "registered-source"
            st.music_on_hold = _media.hold_source_of(cfg, st.name)
            st.srtp = cfg.get("%s station %s srtp" % (BASE, st.name))
            self.by_ext[st.extension] = st
            self.by_user[st.user_id] = st
            if st.did:
                self.by_did[st.did] = st
        self.groups = [HuntGroup(n, cfg) for n in cfg.entries(BASE + " hunt-group")]
        self.attendant = AttendantSettings(cfg)
        self.group_by_ext = {}
        self.group_by_did = {}
        for g in self.groups:
            self.group_by_ext[g.extension] = g
            if g.did:
                self.group_by_did[g.did] = g

    def station_for_aor(self, user):
        """The station an AoR / From user names: extension or user ID."""
        return self.by_ext.get(user) or self.by_user.get(user)

    def trunk_for(self, number):
        """(trunk, digits) of the first route for an outside number (longest
        prefix, then priority: firmware/voice/routing.py), or (None, None)."""
        r = trunk_routes(self.trunks, number)
        if not r:
            return None, None
        t = r[0][0]
        return t, number[len(t.prefix):]


def _settings(app, cfg):
    return cfg.derived("callserver", lambda c: CallServerSettings(c, app))


def check(app, old, new):
    s = _settings(app, new)
    bad = check_trusted(new)
    if bad is not None:
        raise ConfigError(*bad)
    if not s.min_expires <= s.default_expires <= s.max_expires:
        raise ConfigError(BASE + " call-server registration default-expires", s.default_expires,
                          "must lie between min-expires (%d) and max-expires (%d)" % (
                              s.min_expires, s.max_expires))
    dids = {}
    errors = []         # every station the commit cannot accept, reported in one go
    for st in s.stations:
        try:
            _check_station(s, st, dids)
        except ConfigError as e:
            errors.append(str(e))
    if len(errors) == 1:
        raise ConfigError("", None, errors[0])
    if errors:
        raise ConfigError("", None, "%d stations cannot be accepted:\n  %s" % (
            len(errors), "\n  ".join(errors)))
    _check_groups(app, s, dids)


def _check_station(s, st, dids):
    """One station's commit checks; raises ConfigError."""
    if True:
        path = "%s station %s" % (BASE, st.name)
        if st.type == "fxs" and st.fxs_port is None:
            raise ConfigError(path + " type", "fxs", "an FXS station needs fxs-port")
        if st.type == "sip" and st.fxs_port is not None:
            raise ConfigError(path + " fxs-port", st.fxs_port, "a SIP station has no FXS port")
        if st.type == "fxs" and st.trust_source:
            raise ConfigError(path + " caller-authentication", "registered-source",
                              "only for SIP stations (an FXS station calls from the appliance)")
        if st.srtp == "require" and (st.type != "sip" or not s.tls):
            raise ConfigError(path + " srtp", "require",
                              "SRTP keys travel only over TLS: %s" % (
                                  "an FXS station's media is not encrypted yet"
                                  if st.type != "sip" else
                                  "configure security tls certificate first"))
        if st.type == "sip" and not st.has_credentials():
            raise ConfigError(path + " password", None,
                              "a SIP station needs a password (there is no default)")
        if st.type == "fxs" and s.peer is not None and s.peer["register"] \
                and not st.has_credentials():
            raise ConfigError(path + " password", None,
                              "an FXS station registers to peer call server %s and needs its "
                              "password there (or set peer-call-server %s registration disable)"
                              % (s.peer["name"], s.peer["name"]))
        if st.ha1 is not None and st.secret is None:
            if st.credential is None:
                raise ConfigError(path + " password-ha1", None, "malformed stored credential")
            user, realm = st.credential[0], st.credential[1]
            if user != st.user_id or realm != s.realm:
                raise ConfigError(path + " password", None,
                                  "stored for user %s in realm %s, but the station is now user %s "
                                  "in realm %s: set the password again" % (
                                      user, realm, st.user_id, s.realm))
        if st.user_id in s.by_ext and s.by_ext[st.user_id] is not st:
            raise ConfigError(path + " user-id", st.user_id,
                              "is the extension of station %s" % s.by_ext[st.user_id].name)
        if s.by_user.get(st.user_id) is not st:
            raise ConfigError(path + " user-id", st.user_id, "already used by another station")
        _claim_did(dids, path, st.did, "station " + st.name)
        if st.forward_unreachable == st.extension:
            raise ConfigError(path + " forward-unreachable", st.forward_unreachable,
                              "is the station's own extension")


def _check_groups(app, s, dids):
    seen = {}
    for g in s.groups:
        path = "%s hunt-group %s" % (BASE, g.name)
        if g.extension in s.by_ext:
            raise ConfigError(path + " extension", g.extension,
                              "is the extension of station %s" % s.by_ext[g.extension].name)
        if g.extension in s.by_user:
            raise ConfigError(path + " extension", g.extension,
                              "is the user ID of station %s" % s.by_user[g.extension].name)
        if g.extension in seen:
            raise ConfigError(path + " extension", g.extension,
                              "already the extension of hunt group %s" % seen[g.extension])
        seen[g.extension] = g.name
        if not g.members:
            raise ConfigError(path + " member", None, "a hunt group needs at least one member")
        for m in g.members:
            if m not in s.by_ext:
                raise ConfigError(path + " member", m, "no station has this extension")
        _claim_did(dids, path, g.did, "hunt group " + g.name)
        if g.no_answer_target == g.extension:
            raise ConfigError(path + " no-answer-target", g.no_answer_target,
                              "is the group's own extension")
    _check_attendant(app, s)
    _media.check(app, s)


def _claim_did(dids, path, did, owner):
    if did:
        if did in dids:
            raise ConfigError(path + " did", did, "already the DID of %s" % dids[did])
        dids[did] = owner


def _check_attendant(app, s):
    aa = s.attendant
    path = BASE + " auto-attendant"
    if aa.extension is None:
        if aa.greeting or aa.menu or aa.operator:
            raise ConfigError(path + " extension", None, "the auto attendant needs an extension")
        return
    if aa.extension in s.by_ext or aa.extension in s.by_user or aa.extension in s.group_by_ext:
        raise ConfigError(path + " extension", aa.extension,
                          "already the extension of a station or hunt group")
    for key, target in aa.menu.items():
        if target == aa.extension:
            raise ConfigError("%s menu %s target" % (path, key), target, "is the attendant itself")
    if aa.operator == aa.extension:
        raise ConfigError(path + " operator", aa.operator, "is the attendant itself")
    if aa.greeting:
        from firmware.media.prompt import open_prompt, PromptError
        try:
            open_prompt(prompt_path(app, aa.greeting)).close()
        except PromptError as e:
            raise ConfigError(path + " greeting", aa.greeting, str(e))


def prompt_path(app, name):
    return "%s/prompts/%s" % (getattr(app, "state_dir", "."), name)


def _lazy(name):
    def run(app, args, name=name):
        if getattr(app, "callserver", None) is None:
            return "no station is configured"
        from firmware.callserver import service
        return getattr(service, name)(app, args)
    return run


REGISTRATIONS_HELP = ("Show the registered contacts of the stations (all: every configured "
                      "station with its state)")


def _registrations_args(app, args, partial):
    if args:
        return []
    return [o for o in (("all", "Every configured station with its state, registered or not"),)
            if o[0].startswith(partial)]


def _show_registrations(app, args):
    from firmware.commands import CommandError
    words = [a for a in args if not a.startswith("|")]
    if words and words != ["all"]:
        raise CommandError("syntax error: unexpected word '%s' after 'show sip registrations' "
                           "(possible: all)" % words[0])
    if not words:
        return _lazy("_show_registrations")(app, args)
    return station_states(app)


def station_states(app):
    """Every configured station and its state (`show sip registrations all`)."""
    s = getattr(app, "callserver_settings", None)
    if s is None or not s.stations:
        return "no station is configured"
    from firmware.textfmt import table
    cs = getattr(app, "callserver", None)
    reg = getattr(cs, "registrar", None) if cs is not None else None
    gw = getattr(app, "gateway", None)
    control = getattr(app, "control", None)
    local = control is None or control.local
    rows = [("Station", "Extension", "Type", "State")]
    for st in s.stations:
        if st.type == "sip":
            n = len(reg.contacts(st.name)) if reg is not None else 0
            state = ("registered, %d contact%s" % (n, "" if n == 1 else "s")) if n else "not registered"
        elif local:
            state = "FXS port %s, served by this appliance (no registration needed)" % st.fxs_port
        else:
            r = gw.registrations.get(st.extension) if gw is not None else None
            if r is None:
                state = "FXS port %s, not registering to the peer" % st.fxs_port
            else:
                state = "FXS port %s, %s at the peer%s" % (
                    st.fxs_port, r.state, " (%s)" % r.status if r.status else "")
        rows.append((st.name, st.extension, st.type.upper(), state))
    return table(rows)


def apply(app, old, new):
    settings = _settings(app, new)
    app.callserver_settings = settings
    if hasattr(app, "commands"):   # the real views are in service.py, loaded with the server
        app.commands.register("show sip registrations", _show_registrations,
                              REGISTRATIONS_HELP, args=_registrations_args)
        app.commands.register("show calls", _lazy("_show_calls"), "Show the calls in progress")
    cs = getattr(app, "callserver", None)
    if cs is not None:
        cs.configure(settings)
    elif settings.stations and getattr(app, "sip", None) is not None:
        from firmware.callserver.service import CallServer
        app.callserver = CallServer(app)
        if getattr(app, "callserver_started", False):
            app.callserver.start()


S.on_commit("callserver", apply, check=check)

from firmware.callserver import feature_config  # noqa: E402,F401  (feature-codes, after the call server)


def callserver_view(show):
    """A `show call-server ...` command that takes no argument and prints
    show(cs) of the running call server."""
    def run(app, args):
        from firmware.commands import CommandError
        words = [a for a in args if not a.startswith("|")]
        if words:
            raise CommandError("syntax error: unexpected word '%s'" % words[0])
        cs = getattr(app, "callserver", None)
        if cs is None:
            return "no station is configured"
        return show(cs)
    return run


def no_args(app, args, partial):
    return []
