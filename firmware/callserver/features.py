"""Dialled feature codes: a station dials a code (with digits after it), the
call server hands it to the feature's handler instead of routing it.  See
docs/feature-codes.md for the registration API other features use.

    from firmware.callserver import features
    features.register("dnd", handler, features.ARG_CHOICE, choices=("0", "1"))

    def handler(fc):            # fc: FeatureCall
        ...                     # do the work
        return features.DONE    # SIP phone: 480 Temporarily Unavailable,
                                # analog phone: confirmation tone

Which codes exist is configuration (firmware/callserver/feature_config.py,
`services convergence-services feature-codes`); which handler serves a
feature is code, registered at import time.  A code whose feature has no
handler in this firmware is not intercepted: the number is routed as
before (404 unless something else answers it).

Dispatch (Features.dispatch, called by B2bua.incoming for calls from a
station only; trunk callers cannot use feature codes):
  1. a number that is a local destination as dialled (station, hunt group,
     attendant, or a number a registered `claims` function takes, e.g. a
     park slot) or an emergency number is never a feature code: extension
     1101 stays a station even though park is 11;
  2. else the longest code that starts the number picks the feature; the
     rest of the number is its argument, checked against the feature's
     argument rule: ARG_NONE (nothing may follow: else 404 "Unknown Feature
     Code"), ARG_DIGITS (1 or more required: else 484 Address Incomplete),
     ARG_OPTIONAL, ARG_CHOICE (one of choices: else 404 "Unknown Feature
     Option", 484 when nothing follows);
  3. the handler runs; its return value answers the INVITE (see
     FeatureCall).  A handler that raises gets 500 and a log line; the
     call server goes on.
"""
from firmware.compat import const

MAX_FEATURES = const(16)        # registered feature handlers (register() raises beyond)
MAX_ARG_DIGITS = const(24)      # digits after a code (longer: 404 "Feature Argument Too Long")

ARG_NONE = "none"
ARG_DIGITS = "digits"
ARG_OPTIONAL = "optional"
ARG_CHOICE = "choice"

DONE = "done"                   # handled: 480 for SIP phones, confirmation tone on analog
TAKEN = "taken"                 # the handler answered or took the INVITE itself

HANDLED_STATUS = 480
HANDLED_REASON = "Temporarily Unavailable"

_ARG_CHARS = "0123456789*#"

# name -> (handler, arg rule, choices); filled at import time by the feature modules
_HANDLERS = {}
# functions claims(cs, number) -> bool: numbers a feature owns as destinations
_CLAIMS = []

# modules that register handlers when imported; the call server imports them
# at start.  Add yours on its own line (see docs/feature-codes.md).
MODULES = (
    "firmware.callserver.forward",
    "firmware.callserver.conference",
)


def register(name, handler, arg=ARG_NONE, choices=None, claims=None):
    """Serve feature `name` (a leaf of `feature-codes`) with handler(fc).
    claims(cs, number) -> bool, optional: numbers that are this feature's
    destinations (e.g. park slots) and so never feature codes."""
    if name not in _HANDLERS and len(_HANDLERS) >= MAX_FEATURES:
        raise ValueError("more than %d feature handlers" % MAX_FEATURES)
    if arg not in (ARG_NONE, ARG_DIGITS, ARG_OPTIONAL, ARG_CHOICE):
        raise ValueError("unknown argument rule %r" % arg)
    if arg == ARG_CHOICE and not choices:
        raise ValueError("ARG_CHOICE needs choices")
    _HANDLERS[name] = (handler, arg, tuple(choices) if choices else ())
    if claims is not None and claims not in _CLAIMS:
        _CLAIMS.append(claims)


def registered(name):
    return name in _HANDLERS


class FeatureCall:
    """One dialled code, as a handler sees it.

    fc.cs         the CallServer          fc.b2b     its B2bua
    fc.station    the dialling Station    fc.name    the feature (e.g. "dnd")
    fc.code       the code as configured  fc.arg     the digits after it ("" if none)
    fc.number     the whole number        fc.sreq    the INVITE (ServerRequest, or the
                                                     callee half of an analog port's
                                                     in-process call: both answer respond())
    fc.flow       NAT flow of the caller (pass on to b2b.incoming), or None
    fc.analog     True when the station is an FXS port of this appliance
    fc.now()      the call server's clock (ms)

    The handler returns:
      DONE                      -> 480 Temporarily Unavailable / confirmation tone
      (status, reason)          -> that final status (reason may be None), e.g.
      status                       (403, "Forbidden (Class Of Restriction)")
      TAKEN                     -> nothing: the handler responded to fc.sreq or
                                   made it a call (fc.route_to, or its own Call)
    fc.route_to(number)       continue the INVITE as an ordinary call to number
                              (no feature codes on that number); return TAKEN after.
    """
    __slots__ = ("cs", "b2b", "station", "name", "code", "arg", "number", "sreq", "flow",
                 "caller_num", "caller_name", "analog")

    def __init__(self, cs, station, name, code, arg, number, sreq, flow, caller_num, caller_name):
        self.cs = cs
        self.b2b = cs.b2b
        self.station = station
        self.name = name
        self.code = code
        self.arg = arg
        self.number = number
        self.sreq = sreq
        self.flow = flow
        self.caller_num = caller_num
        self.caller_name = caller_name
        self.analog = getattr(station, "fxs_port", None) is not None

    def now(self):
        return self.cs.now()

    def route_to(self, number):
        self.b2b.incoming(self.sreq, number, self.station, self.caller_num, self.caller_name,
                          False, self.flow, features=False)


class Features:
    def __init__(self, cs):
        self.cs = cs
        for m in MODULES:
            __import__(m)
        self.counters = {"dialled": 0, "handled": 0, "refused": 0, "errors": 0}

    def codes(self):
        fc = getattr(self.cs.app, "feature_codes", None)
        return fc.by_code if fc is not None else {}

    def match(self, number):
        """(name, code, arg) of the longest configured code that starts number
        and has a handler, or None."""
        best = None
        for code, name in self.codes().items():
            if number.startswith(code) and name in _HANDLERS and (
                    best is None or len(code) > len(best[1])):
                best = (name, code, number[len(code):])
        return best

    def is_destination(self, number):
        cs = self.cs
        if cs.b2b.reachable_by_trunk(number) or number in cs.emergency():
            return True
        for fn in _CLAIMS:
            if fn(cs, number):
                return True
        return False

    def dispatch(self, sreq, number, station, caller_num, caller_name, flow):
        """True when number was a feature code (sreq is then answered or
        taken by the handler)."""
        m = self.match(number)
        if m is None or self.is_destination(number):
            return False
        name, code, arg = m
        handler, rule, choices = _HANDLERS[name]
        self.counters["dialled"] += 1
        bad = _check_arg(rule, choices, arg)
        if bad is not None:
            self.counters["refused"] += 1
            sreq.respond(bad[0], bad[1])
            return True
        fc = FeatureCall(self.cs, station, name, code, arg, number, sreq, flow, caller_num,
                         caller_name)
        try:
            out = handler(fc)
        except Exception as e:
            self.counters["errors"] += 1
            self.cs.app.log.write("error", "feature %s (%s%s) from %s: %s: %s" % (
                name, code, arg, station.extension, type(e).__name__, e))
            _respond(sreq, 500, "Feature Failed")
            return True
        if out == TAKEN:
            self.counters["handled"] += 1
            return True
        if out is None or out == DONE:
            self.counters["handled"] += 1
            self.handled(sreq)
            return True
        status, reason = out if isinstance(out, tuple) else (out, None)
        self.counters["refused"] += 1
        _respond(sreq, status, reason)
        return True

    def handled(self, sreq):
        """The code did its work: 480 to a SIP phone; an analog port's leg
        is marked so that the port plays the confirmation tone."""
        peer = getattr(sreq, "peer", None)      # the FXS port's half of a local pair
        if peer is not None:
            peer.feature_done = True
        _respond(sreq, HANDLED_STATUS, HANDLED_REASON)

    def statistics(self):
        return [("feature codes " + k, self.counters[k]) for k in sorted(self.counters)]


def _respond(sreq, status, reason):
    try:
        sreq.respond(status, reason)
    except Exception:
        pass            # already answered (a handler that responded and returned a status)


def _check_arg(rule, choices, arg):
    """None when arg fits the rule, else (status, reason)."""
    if len(arg) > MAX_ARG_DIGITS:
        return (404, "Feature Argument Too Long")
    for c in arg:
        if c not in _ARG_CHARS:
            return (404, "Unknown Feature Option")
    if rule == ARG_NONE and arg:
        return (404, "Unknown Feature Code")
    if rule == ARG_DIGITS and not arg:
        return (484, "Address Incomplete")
    if rule == ARG_CHOICE and arg not in choices:
        if not arg:
            return (484, "Address Incomplete")
        return (404, "Unknown Feature Option")
    return None


def show_codes(app, args):
    """`show call-server feature-codes`: each code and whether it is served."""
    from firmware.textfmt import table
    from firmware.callserver.feature_config import DEFAULTS
    fc = getattr(app, "feature_codes", None)
    cs = app.callserver
    if fc is None:
        return "no feature code is configured"
    rows = [("Feature", "Code", "State")]
    for name, _, _ in DEFAULTS:
        code = fc.code_of[name]
        # park, retrieve and pickup are served ahead of this table by park.py
        # and pickup.py (b2bua._feature_call), which read their codes from it
        state = "handled" if name in _HANDLERS or name in ("park", "retrieve", "pickup") \
            else "not in this firmware"
        if cs.b2b.reachable_by_trunk(code):
            state = "shadowed by the local destination %s" % code
        rows.append((name, code, state))
    return table(rows)
