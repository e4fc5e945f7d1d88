"""Configuration of the dialled feature codes (issue 14), defaults per the
station manual:

    services convergence-services {
        feature-codes {
            forward-clear 600;          # clear every forward of the station
            forward-all 601;            # + destination
            forward-busy 602;           # + destination
            forward-no-answer 603;      # + destination
            forward-busy-no-answer 604; # + destination (busy and no answer)
            dnd 40;                     # + 1 (on) or 0 (off)
            park 11;                    # [+ slot]
            retrieve 12;                # + slot
            pickup *8;                  # [+ extension: directed pickup]
            conference 46;
        }
    }

Only the table lives here (kept light: it is read at every commit); the
dispatch is firmware/callserver/features.py, which owns the argument rules.

Commit checks: two features with the same code, a code that is a prefix of
another one (the longer could never be dialled).  A number that is a local
destination as dialled (a station, a hunt group: 600 is a common group
extension) wins over a code; `show call-server feature-codes` says which
codes are shadowed that way.
"""
from firmware.config import schema as S
from firmware.config.schema import ConfigError
from firmware.voice.config import BASE, DIAL_PATTERN_SOURCES

_CODE_CHARS = "0123456789*#"

# what may follow a feature's code, as analog dial-plan pattern tails
# (firmware/voice/dialplan.py); a feature not listed takes nothing
_TAILS = {"forward-all": (".",), "forward-busy": (".",), "forward-no-answer": (".",),
          "forward-busy-no-answer": (".",), "dnd": ("[01]",), "park": ("", "."),
          "retrieve": (".",), "pickup": ("", ".")}

# feature name -> (default code, help); the order of the station manual
DEFAULTS = (
    ("forward-clear", "600", "Clear every call forward of the dialling station"),
    ("forward-all", "601", "Forward all calls: the code followed by the destination"),
    ("forward-busy", "602", "Forward when busy: the code followed by the destination"),
    ("forward-no-answer", "603", "Forward on no answer: the code followed by the destination"),
    ("forward-busy-no-answer", "604",
     "Forward when busy and on no answer: the code followed by the destination"),
    ("dnd", "40", "Do not disturb: the code followed by 1 (on) or 0 (off)"),
    ("park", "11", "Park the call: the code, optionally followed by a slot"),
    ("retrieve", "12", "Retrieve a parked call: the code followed by the slot"),
    ("pickup", "*8", "Group pickup; followed by an extension: directed pickup"),
    ("conference", "46", "Start or join a conference"),
)

S.register(BASE, S.Container(
    "feature-codes", "Codes a station dials to use a call feature (SIP phones get 480 once "
                     "a code is handled, analog phones a confirmation tone)",
    children=tuple(S.Leaf(name, S.String(1, 6, charset=_CODE_CHARS), default=code, help=h)
                   for name, code, h in DEFAULTS)))


# the station's configured forwards (firmware/callserver/forward.py reads them)
_NUM = "0123456789*#"
for _kind, _h in (("all", "always (unconditional forward)"),
                  ("busy", "while it is busy or in do-not-disturb"),
                  ("no-answer", "after they rang forward-no-answer-timeout seconds")):
    S.register(BASE + " station", S.Leaf("forward-" + _kind, S.String(1, 24, charset=_NUM),
                                         help="Number that gets the station's calls " + _h))
S.register(BASE + " station", S.Leaf(
    "forward-no-answer-timeout", S.Integer(5, 120, "seconds"), default=20,
    help="How long a call rings before forward-no-answer takes it"))


def station_forwards(cfg):
    """station name -> {"all", "busy", "no-answer": number or None, "timeout_ms"}."""
    out = {}
    for name in cfg.entries(BASE + " station"):
        c = cfg.section("%s station %s" % (BASE, name))
        out[name] = {"all": c.get("forward-all"), "busy": c.get("forward-busy"),
                     "no-answer": c.get("forward-no-answer"),
                     "timeout_ms": c.get("forward-no-answer-timeout") * 1000}
    return out


class FeatureCodes:
    """code -> feature name of a configuration view."""

    def __init__(self, cfg):
        c = cfg.section(BASE + " feature-codes")
        self.by_code = {}
        self.code_of = {}
        for name, _, _ in DEFAULTS:
            code = c.get(name)
            self.code_of[name] = code
            self.by_code.setdefault(code, name)


def codes_of(cfg):
    return cfg.derived("feature-codes", FeatureCodes)


def dial_patterns(cfg):
    """The feature codes as patterns of the default analog dial plan."""
    fc = codes_of(cfg)
    out = []
    for name, _, _ in DEFAULTS:
        for tail in _TAILS.get(name, ("",)):
            out.append(fc.code_of[name] + tail)
    return out


DIAL_PATTERN_SOURCES.append(dial_patterns)


def check(app, old, new):
    for name, f in station_forwards(new).items():
        ext = new.get("%s station %s extension" % (BASE, name))
        for kind in ("all", "busy", "no-answer"):
            if f[kind] is not None and f[kind] == ext:
                raise ConfigError("%s station %s forward-%s" % (BASE, name, kind), f[kind],
                                  "is the station's own extension")
    fc = codes_of(new)
    path = BASE + " feature-codes "
    seen = {}
    for name, _, _ in DEFAULTS:
        code = fc.code_of[name]
        if code in seen:
            raise ConfigError(path + name, code, "already the code of %s" % seen[code])
        seen[code] = name
    for a in seen:
        for b in seen:
            if a != b and b.startswith(a):
                raise ConfigError(path + seen[b], b, "starts with %s, the code of %s: it could "
                                                     "never be dialled" % (a, seen[a]))


def apply(app, old, new):
    app.feature_codes = codes_of(new)
    app.station_forwards = station_forwards(new)
    if hasattr(app, "commands"):
        app.commands.register("show call-server forwarding", _show_forwarding,
                              "Show each station's call forwards and do-not-disturb state")
        app.commands.register("show call-server stations", _show_stations,
                              "Show the stations with their do-not-disturb and forward-all state")
        app.commands.register("show call-server feature-codes", _show_codes,
                              "Show the feature codes and whether this firmware handles them")


def _show_forwarding(app, args):
    cs = getattr(app, "callserver", None)
    if cs is None:
        return "no station is configured"
    return cs.forwarding.show()


def _show_stations(app, args):
    cs = getattr(app, "callserver", None)
    if cs is None:
        return "no station is configured"
    from firmware.textfmt import table
    fw = cs.forwarding
    rows = [("Station", "Extension", "Type", "DND", "Forward all")]
    for st in cs.settings.stations:
        rows.append((st.name, st.extension, st.type.upper(), "on" if fw.dnd(st) else "off",
                     fw.target(st, "all") or "-"))
    return table(rows)


def _show_codes(app, args):
    from firmware.textfmt import table
    fc = getattr(app, "feature_codes", None)
    cs = getattr(app, "callserver", None)
    if fc is None:
        return "no feature code is configured"
    rows = [("Feature", "Code", "State")]
    for name, _, _ in DEFAULTS:
        code = fc.code_of[name]
        if cs is None:
            state = "call server not running (no station)"
        else:
            from firmware.callserver import features
            state = "handled" if features.registered(name) else "not in this firmware"
            if cs.b2b.reachable_by_trunk(code):
                state = "shadowed by the local destination %s" % code
        rows.append((name, code, state))
    return table(rows)


S.on_commit("feature-codes", apply, check=check)
