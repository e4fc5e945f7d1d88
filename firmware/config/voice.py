"""Voice statements under `services convergence-services` (SRX ICS naming).

    services convergence-services {
        sip { port 5060; domain branch.example.com; service-class voice; }
        service-class voice { dscp-rtp ef; dscp-sip cs3; }
    }

A service class is a named pair of DSCP markings; `sip service-class` picks
the one used for the appliance's own SIP and RTP (later: per station/trunk).
The apply hook keeps the committed values on app.voice (read by the media),
applies the domain, the SIP DSCP to the running SIP service and the RTP
DSCP to every RTP socket (firmware/media/rtp.py set_rtp_dscp), and moves the
SIP service to a new port live through app.rebind_sip(port).
"""
from firmware.config import schema as S
from firmware.config import system  # noqa: F401  (declares `system` first: rendering order)

S.register("", S.Container("services", "Service configuration"))
S.register("services", S.Container(
    "convergence-services", "Branch voice: SIP, stations, trunks, survivability"))


def _class_exists(value, view, path):
    if value not in view.entries("services convergence-services service-class"):
        return "service class not defined under services convergence-services service-class"
    return None


S.register("services convergence-services", S.Container("sip", "SIP settings of the appliance", children=(
    S.Leaf("port", S.Port(), default=5060, help="UDP/TCP port the SIP service listens on"),
    S.Leaf("domain", S.Hostname(253), help="SIP domain of the branch (default: host address)"),
    S.Leaf("service-class", S.Name(), validate=_class_exists,
           help="Service class (DSCP markings) for the appliance's SIP and RTP"),
)))
S.register("services convergence-services", S.List(
    "service-class", "DSCP markings for voice traffic", key=S.Name(), max_entries=16,
    key_help="Service class name", children=(
        S.Leaf("dscp-rtp", S.Dscp(), default=46, help="DSCP for RTP media packets"),
        S.Leaf("dscp-sip", S.Dscp(), default=24, help="DSCP for SIP signalling packets"),
    )))


class VoiceSettings:
    def __init__(self, cfg):
        base = "services convergence-services "
        self.sip_port = cfg.get(base + "sip port")
        self.domain = cfg.get(base + "sip domain")
        cls = cfg.get(base + "sip service-class")
        self.dscp_rtp = 46
        self.dscp_sip = 24
        if cls:
            p = base + "service-class " + cls + " "
            self.dscp_rtp = cfg.get(p + "dscp-rtp")
            self.dscp_sip = cfg.get(p + "dscp-sip")


def apply(app, old, new):
    settings = VoiceSettings(new)
    prev = getattr(app, "voice", None)
    rebind = getattr(app, "rebind_sip", None)
    if rebind is not None and prev is not None and prev.sip_port != settings.sip_port:
        rebind(settings.sip_port)   # may raise ConfigError: the commit fails
    app.voice = settings
    if settings.domain and hasattr(app, "set_domain"):
        app.set_domain(settings.domain)
    if hasattr(app, "set_dscp"):
        app.set_dscp(settings.dscp_sip)
    from firmware.media.rtp import set_rtp_dscp
    set_rtp_dscp(app, settings.dscp_rtp)     # live: re-marks calls already up


S.on_commit("voice", apply)


def _lockout(app, old, new):
    """Warn at commit about an allow list that locks phones out
    (firmware/config/lockout.py, loaded only when an allow list is set)."""
    sec = new.subtree("services convergence-services security")
    if sec and sec.get("allow-list"):
        from firmware.config import lockout
        lockout.check(app, old, new)


S.on_commit("lockout", lambda app, old, new: None, _lockout)
