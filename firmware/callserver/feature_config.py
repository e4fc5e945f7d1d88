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
from firmware.voice.config import BASE

_CODE_CHARS = "0123456789*#"

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


def check(app, old, new):
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


S.on_commit("feature-codes", apply, check=check)
