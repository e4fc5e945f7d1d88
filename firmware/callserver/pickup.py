"""Call pickup on the local call server (configuration: features_config.py).

    code (*8)                    answers the oldest call ringing on a member
                                 of any pickup group of the caller's station
    code (*8) + EXT              directed pickup: the call ringing on station
                                 EXT (any station may take it)
    INVITE with Replaces naming  what a desk phone's busy-lamp key sends for a
    the ringing leg              ringing extension: the dialog-info NOTIFY
                                 (firmware/callserver/events.py) gives each
                                 early dialog's call-id and tags

The ringing legs are cancelled (the phones stop ringing); the caller's
INVITE is answered with an answer to its offer that describes the picker's
media, and the picker's INVITE with an answer to its offer that describes
the caller's (sip/sdp.py answer(): the codecs both offered); the picker is
the call's callee from then on.  Errors: no station 403 "Pickup Only From
Stations", not in a pickup group 403 "Not In A Pickup Group", nothing ringing
404 "No Ringing Call To Pick Up", no offer 488, no common codec 488.

Replaces authorisation (firmware/sipstack/dialogs.py asks authorise()):
an INVITE with Replaces naming a leg of a call of this call server is
accepted from a station that is a party of that call or, while it rings,
from a station that may pick it up (a member of a pickup group of the
ringing station); anyone else gets 403.
"""
from sip.errors import SipError
from firmware.callserver.b2bua import fix_sdp, _public_of


class Pickup:
    def __init__(self, b2b):
        self.b2b = b2b
        self.counters = {"group": 0, "directed": 0, "replaces": 0, "nothing_ringing": 0,
                         "refused": 0}

    @property
    def settings(self):
        return getattr(self.b2b.cs.app, "feature_settings", None)

    def _ringing_on(self, call):
        """Stations call rings on now."""
        out = []
        if call.b is not None or call.state not in ("routing", "ringing") or \
                call.aa is not None or not call.legs:
            return out
        for leg in call.legs:
            st = getattr(leg, "user", None) or call.callee
            if st is not None and st not in out:
                out.append(st)
        return out

    def may_pick(self, st, call):
        """May station st pick up call (ringing on a member of st's groups)?"""
        f = self.settings
        if f is None or st is None:
            return False
        mates = set()
        for g in f.groups_of(st.extension):
            mates.update(g.members)
        for r in self._ringing_on(call):
            if r.extension in mates and r is not st:
                return True
        return False

    def take(self, sreq, number, caller, caller_num, caller_name, flow):
        """A new call to a pickup code: True once answered here."""
        f = self.settings
        if f is None:
            return False
        code = f.pickup_code
        if number == code:
            kind = "group"
        elif number.startswith(code) and len(number) > len(code):
            kind = "directed"
        else:
            return False
        if caller is None:
            sreq.respond(403, "Pickup Only From Stations")
            return True
        target = None
        if kind == "group":
            if not f.groups_of(caller.extension):
                self.counters["refused"] += 1
                sreq.respond(403, "Not In A Pickup Group")
                return True
            for c in self.b2b.calls:
                if c.caller is not caller and self.may_pick(caller, c):
                    target = c
                    break
        else:
            ext = number[len(code):]
            st = self.b2b.cs.settings.by_ext.get(ext)
            if st is None:
                sreq.respond(404, "No Such Extension")
                return True
            for c in self.b2b.calls:
                if st in self._ringing_on(c) and c.caller is not caller:
                    target = c
                    break
        if target is None:
            self.counters["nothing_ringing"] += 1
            sreq.respond(404, "No Ringing Call To Pick Up")
            return True
        self.counters[kind] += 1
        self.pick(target, sreq, caller, flow)
        return True

    def pick(self, call, sreq, st, flow):
        """Answer ringing call from sreq (station st's INVITE)."""
        b2b = self.b2b
        from firmware.voice.handover import accept
        from sip.sdp import parse_sdp, answer
        offer = fix_sdp(sreq.request.body if hasattr(sreq, "request") else sreq.remote_body,
                        _public_of(flow))
        if not offer or call.delayed:
            sreq.respond(488, "SDP Offer Required")
            return
        try:
            ox = parse_sdp(offer)
            oc = parse_sdp(call.body)
            to_picker = _answer_like(ox, oc, answer)
            to_caller = _answer_like(oc, ox, answer)
        except SipError as e:
            sreq.respond(getattr(e, "status", 488) or 488, "Not Acceptable Here")
            return
        now = b2b.cs.now()
        for leg in call.legs:
            leg.cancel(now)               # the ringing phones stop ringing
        call.legs = []
        call._stop_timer()
        call.group = None
        call.steps = []
        p = accept(b2b.cs.ua, sreq, call)
        p.flow = flow
        if call.a.answer(to_caller) is None:
            p.reject(480)
            call.end("caller gone")
            return
        p.answer(to_picker)
        call.b = p
        call.legs = [p]
        if call.callee is not None:
            b2b.release_station(call.callee)
        call.callee = st
        b2b.active[st.name] = b2b.active.get(st.name, 0) + 1
        call.answered = now
        b2b.counters["answered"] += 1
        call._state("connected")

    # -- INVITE with Replaces (busy-lamp keys)
    def find(self, sreq):
        """(call, session) a Replaces header names among the call server's
        legs (either tag order: phones differ), else None."""
        from sip.headers import parse_replaces
        try:
            cid, tt, ft, early = parse_replaces(sreq.request.get("replaces"))
        except (ValueError, TypeError):
            return None
        tags = (tt, ft)
        for c in self.b2b.calls:
            for s in [c.a] + c.legs:
                if s is None or getattr(s, "call_id", None) != cid:
                    continue
                d = s.dialog
                if d is None or (d.local_tag, d.remote_tag) not in (tags, (ft, tt)):
                    continue
                return c, s
        return None

    def authorise(self, sreq, st):
        """The dialogs module's Replaces gate for station st (None: no
        station): None to let the agent match the dialog, True when this
        module took the request (a busy-lamp pickup), or (403, reason)."""
        hit = self.find(sreq)
        if hit is None:
            return None if st is not None else (403, "Forbidden (Replaces Not Authorised)")
        call, s = hit
        if st is not None and st in (call.caller, call.callee):
            return None
        if st is not None and self.may_pick(st, call):
            self.counters["replaces"] += 1
            self.pick(call, sreq, st, None)
            return True
        self.counters["refused"] += 1
        return (403, "Forbidden (Replaces Not Authorised)")

    def replace(self, call, s, sreq):
        """Call.on_replace: a party of the call replaced its own confirmed
        leg (a phone moving the call to another of its devices): the new
        INVITE takes that leg's place."""
        b2b = self.b2b
        from firmware.voice.handover import accept
        offer = sreq.request.body
        if not offer:
            sreq.respond(488, "SDP Offer Required")
            return
        other = call.b if s is call.a else call.a
        if other is None or other.state != "confirmed":
            sreq.respond(481)
            return
        n = accept(b2b.cs.ua, sreq, call)
        if s is call.a:
            call.a = n
        else:
            call.b = n
            call.legs = [n]

        def done(status, n=n, s=s):
            if 200 <= status < 300:
                n.answer(fix_sdp(other.remote_body, _public_of(other.flow)))
                s.bye(b2b.cs.now())
            else:
                n.reject(status if status >= 300 else 500)

        if not other.reinvite(fix_sdp(offer, None), b2b.cs.now(), done):
            n.reject(491)

    def show(self):
        f = self.settings
        if f is None or not f.groups:
            return "no pickup group is configured"
        from firmware.textfmt import table
        ringing = {}
        for c in self.b2b.calls:
            for st in self._ringing_on(c):
                ringing[st.extension] = c.caller_num or "anonymous"
        rows = [("Group", "Members", "Ringing")]
        for g in f.groups:
            r = ["%s (from %s)" % (m, ringing[m]) for m in g.members if m in ringing]
            rows.append((g.name, " ".join(g.members), ", ".join(r) or "-"))
        return "Codes: group %s, directed %s + extension\n%s" % (
            f.pickup_code, f.pickup_code, table(rows))

    def statistics(self):
        return [("pickup " + k.replace("_", " "), v) for k, v in sorted(self.counters.items())]


def _answer_like(offer, other, answer):
    """An answer to `offer` describing the media of `other` (an SDP the other
    side offered): its address, port and the codecs of its first audio line."""
    m = None
    for x in other.media:
        if x.kind == "audio" and x.port:
            m = x
            break
    if m is None:
        raise SipError("no audio in the other side's offer")
    c = m.connection
    codecs = [n for f, n in m.codecs() if n]
    return answer(offer, codecs, c[2], m.port).serialize()
