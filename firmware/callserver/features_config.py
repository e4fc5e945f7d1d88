"""Configuration of call park and pickup groups (the code that does the work
is firmware/callserver/park.py and pickup.py, loaded on first use):

    services convergence-services {
        call-park {
            extension 700;          # the lot: a blind transfer here parks the call
            slot-first 701;         # slot extensions: the first free one is taken
            slot-last 709;
            recall-timeout 120;     # seconds until an unretrieved call rings the parker
        }
        pickup-group front {
            member [ 2001 2002 1001 ];  # at most 20; a station may be in several groups
        }
    }

The codes are the feature-code table's (firmware/callserver/feature_config.py):
`feature-codes park 11` (+ slot: park the held call there), `retrieve 12`
(+ slot: take the parked call), `pickup *8` (alone: a call ringing on a
member of one's groups; + an extension: that station's call).

Commit checks (precise errors): a lot or slot that is a station's, hunt
group's or the attendant's extension; slot-first after slot-last, more than
MAX_PARK_SLOTS slots, slot numbers of unequal length; a slot range without
a lot; a park or retrieve code followed by a slot that is a station's
extension; a pickup code that starts a station's extension (it would take
that station's calls); a pickup group member that is no station's extension.
"""
from firmware.compat import const
from firmware.config import schema as S
from firmware.config.schema import ConfigError
from firmware.voice.config import BASE
from firmware.callserver.config import callserver_view

MAX_PARK_SLOTS = const(50)
MAX_PICKUP_GROUPS = const(32)
MAX_PICKUP_MEMBERS = const(20)
_CODE = "0123456789*#"

S.register(BASE, S.Container(
    "call-park", "Call park: a lot extension and a range of slot extensions", children=(
        S.Leaf("extension", S.String(2, 8, digits=True),
               help="The lot: a blind transfer to it parks the call in the first free slot"),
        S.Leaf("slot-first", S.String(2, 8, digits=True), help="First slot extension"),
        S.Leaf("slot-last", S.String(2, 8, digits=True), help="Last slot extension"),
        S.Leaf("recall-timeout", S.Integer(10, 3600, "seconds"), default=120,
               help="An unretrieved call rings the station that parked it after this long"),
    )))

S.register(BASE, S.List(
    "pickup-group", "Stations that may answer each other's ringing calls",
    key=S.Name(), max_entries=MAX_PICKUP_GROUPS, key_help="Group name", children=(
        S.LeafList("member", S.String(2, 8, digits=True), max_items=MAX_PICKUP_MEMBERS,
                   help="Station extensions (SIP phones or FXS ports)"),
    )))

class PickupGroup:
    def __init__(self, name, members):
        self.name = name
        self.members = members


class FeatureSettings:
    def __init__(self, cfg):
        c = cfg.section(BASE + " call-park")
        self.lot = c.get("extension")
        self.first = c.get("slot-first")
        self.last = c.get("slot-last")
        self.recall_ms = c.get("recall-timeout") * 1000
        from firmware.callserver.feature_config import codes_of
        codes = codes_of(cfg).code_of          # the feature-code table
        self.park_code = codes["park"]
        self.retrieve_code = codes["retrieve"]
        self.slots = []
        if self.first and self.last and len(self.first) == len(self.last):
            w = len(self.first)
            for n in range(int(self.first), min(int(self.last), int(self.first)
                                                + MAX_PARK_SLOTS - 1) + 1):
                d = str(n)
                self.slots.append("0" * (w - len(d)) + d)     # (MicroPython has no %0*d)
        self.groups = []
        for n in cfg.entries(BASE + " pickup-group"):
            self.groups.append(PickupGroup(n, tuple(
                cfg.get("%s pickup-group %s member" % (BASE, n)) or ())))
        self.pickup_code = codes["pickup"]

    def claims(self, number):
        """Is number one of park's or pickup's (the lot, a slot, a code)?  The
        call server loads park.py / pickup.py only for such a number."""
        if self.slots:
            if number == self.lot or number in self.slots:
                return True
            for code in (self.park_code, self.retrieve_code):
                if number.startswith(code) and number[len(code):] in self.slots:
                    return True
        return number.startswith(self.pickup_code)

    def groups_of(self, ext):
        return [g for g in self.groups if ext in g.members]


def dial_patterns(cfg):
    """Dial-plan patterns of the park and pickup numbers (the analog
    stations' default dial plan, firmware/voice/config.py): the lot, the
    slots and the codes with a slot or an extension."""
    f = FeatureSettings(cfg)
    out = []
    if f.slots and f.lot:            # (an incomplete lot is refused by check())
        w = "X" * len(f.first)
        out.extend(("X" * len(f.lot), w, f.park_code + w, f.retrieve_code + w))
    out.append(f.pickup_code)
    lens = []
    for n in cfg.entries(BASE + " station"):
        e = cfg.get("%s station %s extension" % (BASE, n))
        if e and len(e) not in lens:
            lens.append(len(e))
            out.append(f.pickup_code + "X" * len(e))
    return out


def check(app, old, new):
    f = FeatureSettings(new)
    from firmware.callserver.config import _settings
    s = _settings(app, new)
    taken = {}
    for st in s.stations:
        taken[st.extension] = "station " + st.name
    for g in s.groups:
        taken[g.extension] = "hunt group " + g.name
    if s.attendant.extension:
        taken[s.attendant.extension] = "the auto attendant"
    path = BASE + " call-park"
    if f.lot in taken:
        raise ConfigError(path + " extension", f.lot, "is already the extension of " + taken[f.lot])
    if (f.first is None) != (f.last is None):
        raise ConfigError(path + (" slot-last" if f.last is None else " slot-first"), None,
                          "a slot range needs both slot-first and slot-last")
    if f.first is not None:
        if f.lot is None:
            raise ConfigError(path + " extension", None, "park slots need a lot extension")
        if len(f.first) != len(f.last):
            raise ConfigError(path + " slot-last", f.last,
                              "must have as many digits as slot-first (%s)" % f.first)
        if int(f.first) > int(f.last):
            raise ConfigError(path + " slot-last", f.last, "is before slot-first (%s)" % f.first)
        if int(f.last) - int(f.first) + 1 > MAX_PARK_SLOTS:
            raise ConfigError(path + " slot-last", f.last,
                              "more than %d slots from slot-first %s" % (MAX_PARK_SLOTS, f.first))
        for slot in f.slots:
            if slot in taken:
                raise ConfigError(path + " slot-first", f.first, "slot %s is already the "
                                  "extension of %s" % (slot, taken[slot]))
            if slot == f.lot:
                raise ConfigError(path + " extension", f.lot, "is one of the slots")
    # (codes used twice, or starting one another: feature_config.py's check)
    for leaf, code in (("park", f.park_code), ("retrieve", f.retrieve_code)):
        for slot in f.slots:
            if code + slot in taken:
                raise ConfigError("%s feature-codes %s" % (BASE, leaf), code,
                                  "with slot %s it is the extension of %s" % (
                                      slot, taken[code + slot]))
    for ext, owner in taken.items():
        if ext.startswith(f.pickup_code):
            raise ConfigError(BASE + " feature-codes pickup", f.pickup_code,
                              "is the start of %s's extension %s" % (owner, ext))
    for g in f.groups:
        gp = "%s pickup-group %s member" % (BASE, g.name)
        if not g.members:
            raise ConfigError(gp, None, "a pickup group needs at least one member")
        for m in g.members:
            if m not in s.by_ext:
                raise ConfigError(gp, m, "no station has this extension")


def _show(name):
    return callserver_view(lambda cs, name=name: cs.b2b.features(name).show())


def apply(app, old, new):
    app.feature_settings = FeatureSettings(new)
    if hasattr(app, "commands"):
        app.commands.register("show call-server parked-calls", _show("park"),
                              "Show the parked calls: slot, party, parker, time left")
        app.commands.register("show call-server pickup-groups", _show("pickup"),
                              "Show the pickup groups, their members and what rings on them")


S.on_commit("callfeatures", apply, check=check)
