"""Call forward and do-not-disturb on the local call server (issue 14,
features 2 and 3).

Per station, configured:

    services convergence-services station alice {
        forward-all 2003;               # every call, at once
        forward-busy 2009;              # the station is busy (or in DND)
        forward-no-answer 2009;         # it rang forward-no-answer-timeout seconds
        forward-no-answer-timeout 15;
        forward-unreachable 2009;       # not registered (firmware/voice/config.py)
    }

and by dialled codes (firmware/callserver/features.py; defaults): 600
clear, 601 all, 602 busy, 603 no answer, 604 busy and no answer, each
followed by the destination; 40 1 DND on, 40 0 off.  A code's setting
overrides the configured one of its kind (600 clears them all, configured
ones included) and survives a reboot: the table is written to
<state>/forwarding/ as a generation file with a CRC trailer
(firmware/config/store.py: temp, fsync, rename), at most one write per
dialled code.

Routing (B2bua): a call for a station in DND goes to its busy forward, else
486 "Do Not Disturb"; forward-all diverts at once; a busy station (no call
waiting free) goes to forward-busy, as does a station whose phones all
answer 486; an unreachable one to forward-unreachable; one that rings
longer than its no-answer timeout to forward-no-answer.  Every diversion
adds a Diversion header (RFC 5806, newest first, counter) and a
History-Info entry (RFC 7044, with the RFC 4458 cause in the target URI)
to the INVITEs that leave for the next station.  A diversion to a station
already in the call's chain (a loop), or beyond MAX_FORWARD_HOPS, is not
taken: the station that would have forwarded rings instead (counted as
forward loops).  A diversion to an outside number must be allowed by the
forwarding station's class of restriction: the code is refused with 403,
and at call time the diversion is not taken (counted).
"""
from firmware.compat import const
from firmware.callserver import features

MAX_FORWARD_HOPS = const(3)         # diversions of one call (beyond: not taken, counted as a loop)
MAX_STATE_BYTES = const(16384)      # the persisted table: 256 stations x ~60 bytes
DEFAULT_NO_ANSWER_MS = const(20000)
MAX_ENTRIES = const(256)            # stations with code-set state (= the station list bound)
KINDS = ("all", "busy", "no-answer", "unreachable")

# RFC 5806 reason, RFC 4458 cause of each diversion
_REASON = {"all": ("unconditional", 302), "busy": ("user-busy", 486),
           "dnd": ("do-not-disturb", 486), "no-answer": ("no-answer", 408),
           "unreachable": ("unavailable", 404)}

_NUM = "0123456789*#"


class Forwarding:
    """The forward/DND state of the call server's stations."""

    def __init__(self, cs):
        self.cs = cs
        # extension -> {kind: number or "" (cleared by 600), "dnd": True}; only code-set state
        self.table = {}
        self.counters = {"forwarded": 0, "forward_loops": 0, "forward_restricted": 0,
                         "dnd_rejected": 0, "state_writes": 0, "state_write_errors": 0}
        self.store = None
        state_dir = getattr(cs.app, "state_dir", None)
        if state_dir:
            from firmware.config.store import Store, FileFlash
            try:
                self.store = Store(FileFlash(state_dir + "/forwarding"), max_rollback=1,
                                   max_bytes=MAX_STATE_BYTES)
                self.store.cleanup()
                self._load()
            except OSError as e:
                cs.app.log.write("error", "forwarding state: %s" % e)
                self.store = None

    # -- state
    def _load(self):
        rec = self.store.latest()
        if rec is None:
            return
        for line in rec[2].split("\n"):
            w = line.split()
            if not w or len(self.table) >= MAX_ENTRIES:
                continue
            ent = {}
            for kv in w[1:]:
                k, _, v = kv.partition("=")
                if k == "dnd":
                    ent["dnd"] = v == "1"
                elif k in KINDS and all(c in _NUM for c in v):
                    ent[k] = v
            if ent:
                self.table[w[0]] = ent

    def _save(self):
        if self.store is None:
            return
        by_ext = self.cs.settings.by_ext
        lines = []
        for ext in sorted(self.table):
            if ext not in by_ext:
                continue            # station deleted: its state goes with the next write
            ent = self.table[ext]
            parts = [ext]
            for k in KINDS:
                if k in ent:
                    parts.append("%s=%s" % (k, ent[k]))
            if ent.get("dnd"):
                parts.append("dnd=1")
            lines.append(" ".join(parts))
        try:
            self.store.save("\n".join(lines) + "\n", {})
            self.counters["state_writes"] += 1
        except Exception as e:       # flash full or failing: the state lives on in RAM
            self.counters["state_write_errors"] += 1
            self.cs.app.log.write("error", "forwarding state not saved: %s" % e)

    def _entry(self, st):
        ent = self.table.get(st.extension)
        if ent is None:
            if len(self.table) >= MAX_ENTRIES:
                by_ext = self.cs.settings.by_ext
                for ext in list(self.table):      # drop deleted stations' state first
                    if ext not in by_ext:
                        del self.table[ext]
                if len(self.table) >= MAX_ENTRIES:
                    return None
            ent = self.table[st.extension] = {}
        return ent

    def set(self, st, kinds, number):
        ent = self._entry(st)
        if ent is None:
            return False
        for k in kinds:
            ent[k] = number
        self._save()
        return True

    def set_dnd(self, st, on):
        ent = self._entry(st)
        if ent is None:
            return False
        if on:
            ent["dnd"] = True
        else:
            ent.pop("dnd", None)
        self._save()
        return True

    def target(self, st, kind):
        """The station's forward of kind (code-set first, else configured), or None."""
        ent = self.table.get(st.extension)
        if ent is not None and kind in ent:
            return ent[kind] or None
        if kind == "unreachable":
            return st.forward_unreachable
        return self._configured(st, kind)

    def _configured(self, st, kind):
        c = getattr(self.cs.app, "station_forwards", {}).get(st.name)
        return c.get(kind) if c is not None else None

    def no_answer_ms(self, st):
        c = getattr(self.cs.app, "station_forwards", {}).get(st.name)
        return c["timeout_ms"] if c is not None else DEFAULT_NO_ANSWER_MS

    def dnd(self, st):
        ent = self.table.get(st.extension)
        return bool(ent is not None and ent.get("dnd"))

    # -- routing
    def settle(self, b2b, route, chain, caller=None):
        """Follow DND, forward-all and forward-busy from a station route.
        chain: the call's diversions so far [(Station, kind)], extended;
        caller: the calling Station, never a forward target (it would ring itself).
        -> the route to ring, or (status, reason)."""
        while route[0] == "station":
            st = route[1]
            busy = b2b.busy(st.name) and not st.call_waiting
            if self.dnd(st):
                nxt = self.divert(b2b, st, self.target(st, "busy"), "dnd", chain, caller)
                if nxt is None:
                    self.counters["dnd_rejected"] += 1
                    return (486, "Do Not Disturb")
            elif self.target(st, "all"):
                nxt = self.divert(b2b, st, self.target(st, "all"), "all", chain, caller)
                if nxt is None:
                    return route if not busy else (486, None)
            elif busy and self.target(st, "busy"):
                nxt = self.divert(b2b, st, self.target(st, "busy"), "busy", chain, caller)
                if nxt is None:
                    return (486, None)
            else:
                return route
            route = nxt
        return route

    def divert(self, b2b, st, number, kind, chain, caller=None):
        """The route of st's forward to number, with (st, kind) added to
        chain; None when there is none, it loops, the hop cap is reached or
        the station's class of restriction forbids it."""
        if not number:
            return None
        if len(chain) >= MAX_FORWARD_HOPS or number == st.extension or any(
                s.extension == number for s, _ in chain):
            self.counters["forward_loops"] += 1
            return None
        n = len(chain)
        chain.append((st, kind))
        # resolved as if the forwarding station dialled it: its class of restriction
        route = b2b._resolve(number, st, False, n + 1, chain)
        if route[0] == "station" and (route[1] is caller or any(s is route[1] for s, _ in chain)):
            route = (482, None)             # forward-unreachable led back into the chain
            self.counters["forward_loops"] += 1
        if route[0] not in ("station", "trunk", "group", "attendant"):
            if route[0] == 403:
                self.counters["forward_restricted"] += 1
            del chain[n:]
            return None
        self.counters["forwarded"] += 1
        return route

    def headers(self, call):
        """Diversion (RFC 5806) and History-Info (RFC 7044) of call's chain."""
        chain = getattr(call, "chain", None)
        if not chain:
            return ()
        dom = self.cs.core.domain
        out = []
        n = len(chain)
        for i in range(n - 1, -1, -1):          # newest diversion first
            st, kind = chain[i]
            out.append(("Diversion", "<sip:%s@%s>;reason=%s;counter=%d" % (
                st.extension, dom, _REASON[kind][0], i + 1)))
        # History-Info: the number dialled, then each target with the cause
        # that sent the call there (RFC 4458) and its predecessor (mp)
        entries = ["<sip:%s@%s>;index=1" % (chain[0][0].extension, dom)]
        idx = "1"
        for i in range(n):
            nxt = chain[i + 1][0].extension if i + 1 < n else call.fwd_target
            new = idx + ".1"
            entries.append("<sip:%s@%s;cause=%d>;index=%s;mp=%s" % (
                nxt, dom, _REASON[chain[i][1]][1], new, idx))
            idx = new
        out.append(("History-Info", ", ".join(entries)))
        return tuple(out)

    def after_ring(self, call, status=None):
        """The callee station rang out (status None) or every phone refused
        (status): divert to its no-answer or busy forward.  True when the
        call goes on elsewhere."""
        st = call.callee
        b2b = call.b2b
        if st is None or call.group is not None or call.b is not None or call.aa is not None:
            return False
        if status is None:
            kind = "no-answer"
        elif status == 486:
            kind = "busy"
        else:
            return False
        chain = call.chain
        route = self.divert(b2b, st, self.target(st, kind), kind, chain, call.caller)
        if route is None:
            return False
        route = self.settle(b2b, route, chain, call.caller)
        if route[0] not in ("station", "trunk"):
            return False          # a group or status: the plain outcome is clearer
        for leg in call.legs:
            leg.cancel(call._now())
        call.legs = []
        call.statuses = []
        b2b.release_station(st)
        call.callee = None
        call.fwd_target = route[1].extension if route[0] == "station" else route[1]
        if not b2b._ring(call, route):
            call.fail(480)
            return True
        if route[0] == "station":
            call.callee = route[1]
            b2b.active[route[1].name] = b2b.active.get(route[1].name, 0) + 1
        b2b._ring_timer(call, self.ring_ms(call))
        b2b.changed(call)
        return True

    def ring_ms(self, call):
        """How long the call may ring its callee: the station's no-answer
        timeout when it forwards on no answer."""
        st = call.callee
        if st is not None and call.group is None and self.target(st, "no-answer"):
            return self.no_answer_ms(st)
        return self.cs.settings.no_answer_ms

    # -- views
    def statistics(self):
        return [(k.replace("_", " "), self.counters[k]) for k in sorted(self.counters)]

    def show(self):
        from firmware.textfmt import table
        rows = [("Station", "Extension", "DND", "All", "Busy", "No answer", "Unreachable")]
        for st in self.cs.settings.stations:
            cells = [st.name, st.extension, "on" if self.dnd(st) else "off"]
            for k in KINDS:
                t = self.target(st, k)
                if k == "no-answer" and t:
                    t = "%s (%ds)" % (t, self.no_answer_ms(st) // 1000)
                cells.append(t or "-")
            rows.append(tuple(cells))
        return table(rows)


# -- the feature codes
def _forwarding(fc):
    return fc.cs.forwarding


def _allowed(fc, number):
    """None when st may forward to number, else (status, reason)."""
    if number == fc.station.extension:
        return (403, "Forward To Itself")
    route = fc.b2b._resolve(number, fc.station, False, MAX_FORWARD_HOPS)
    if route[0] in ("station", "trunk", "group", "attendant"):
        return None
    if route[0] == 480:      # an unreachable station is a fine target
        return None
    return (route[0], route[1] or "Forward Target Not Found")


def _setter(kinds):
    def handler(fc):
        bad = _allowed(fc, fc.arg)
        if bad is not None:
            return bad
        if not _forwarding(fc).set(fc.station, kinds, fc.arg):
            return (503, "Forward Table Full")
        return features.DONE
    return handler


def _clear(fc):
    if not _forwarding(fc).set(fc.station, KINDS, ""):
        return (503, "Forward Table Full")
    return features.DONE


def _dnd(fc):
    if not _forwarding(fc).set_dnd(fc.station, fc.arg == "1"):
        return (503, "Forward Table Full")
    return features.DONE


features.register("forward-clear", _clear)
features.register("forward-all", _setter(("all",)), features.ARG_DIGITS)
features.register("forward-busy", _setter(("busy",)), features.ARG_DIGITS)
features.register("forward-no-answer", _setter(("no-answer",)), features.ARG_DIGITS)
features.register("forward-busy-no-answer", _setter(("busy", "no-answer")), features.ARG_DIGITS)
features.register("dnd", _dnd, features.ARG_CHOICE, choices=("0", "1"))


def show_forwarding(app, args):
    cs = getattr(app, "callserver", None)
    if cs is None:
        return "no station is configured"
    return cs.forwarding.show()
