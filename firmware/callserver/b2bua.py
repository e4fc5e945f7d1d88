"""Station-to-station calls: the call server as a B2BUA.

Why a B2BUA and not a record-routing proxy (the design note the issue asks
for): the next features (park, pickup, transfer, conference, forward on no
answer, CDRs that survive a phone that never sends BYE) need the call
server to own both dialogs: to end one side when the other goes, to put a
party on hold or move it to another phone without that phone's help, and to
hide the branch's topology.  The cost is two dialogs per call instead of
none; MAX_CALLS and the max-dialogs knob bound it.

    b2b = B2bua(cs)
    b2b.incoming(offer, number, caller, caller_num, caller_name, trunk_call, flow)
                                    a new call: a SIP INVITE the call server took,
                                    or the callee half of an in-process call from
                                    an analog port (firmware/voice/handover.py)
    b2b.calls                       live Call objects
    b2b.busy(station_name) -> int   calls the station is in
    b2b.on_change = fn(call)        after a call is admitted, rings, is answered
                                    or ends (busy lamps: firmware/callserver/events.py)

A call (Call) has leg a (the caller's InviteSession, UAS side) and one UAC
leg per contact of the callee (forking, at most MAX_FORKS).  A leg to or
from an analog port of this appliance is a LocalSession joined in process to
the port (firmware/voice/handover.py), never SIP over the loopback socket;
an FXS station is reachable while its port is ready.  180/183 are
passed back (183 with its SDP: early media); the first 2xx wins, every
other leg gets a CANCEL (or ACK+BYE if it answered too late); when every
leg failed the caller gets the best final (6xx first, then 486, then the
lowest other status; all 408 -> 480).  CANCEL from the caller cancels the
legs; BYE on either side ends the other; an in-dialog re-INVITE (hold with
sendonly/inactive, resume) is relayed to the other side and answered with
that side's answer; INFO is relayed.  A call that rings longer than
no-answer-timeout ends with 480.

SDP is passed through unchanged; only when a phone is behind NAT (its
packets come from another address than its Contact) its private c= address
is replaced by the public source address, so that media can flow directly
between the phones (the appliance never relays RTP).  An INVITE without SDP
(delayed offer, RFC 3261 §13.2.1) goes on without SDP; the callee's 2xx
offer is passed to the caller, the ACK to the callee is held back until the
caller's ACK brings the answer, which it then carries (no answer: both
sides get BYE).  The auto attendant needs the offer (488 without).

Routing of the Request-URI user (the number): a station's extension (or its
DID, for trunk calls) -> that station; an emergency number from a station ->
the FXO trunks as dialled, in priority order (from no station: 403); a trunk
prefix -> the FXO trunks through the analog gateway, longest prefix, then
priority, overflow (firmware/voice/routing.py; class of restriction checked:
internal < local < national < international, numbers classed 011/00
international, 1/0 national, else local; 403 beyond the station's class, or
beyond call-server trunk-call-class for a call from no station); else 404.  A station without a registered contact gets
480, or its calls go to forward-unreachable (at most MAX_FORWARD_HOPS
times).  A station already in a call gets 486 unless it has call waiting.

Hunt groups (an extension, or a DID for trunk calls, answered by member
stations, SIP phones or FXS ports alike): ring-all forks to every member's
contacts at once; linear rings one member after the other, each for
ring-timeout; circular does the same starting after the member who
answered the group's last call; round-robin (the default) starts each call
one member further than the previous call started, answered or not.  Members already in a call without call
waiting are skipped (they count as 486), a member that refuses or fails
passes the call on at once, a leg whose turn has passed is cancelled and
ignored if it answers late (ACK + BYE).  When no member is left the call
goes to the group's no-answer target (a station, another group or an
outside number, at most MAX_FORWARD_HOPS times), else fails with the best
status: 486 when every member was busy, 480 when they only rang out.  The
member who answers is the call's callee from then on (busy, `show calls`).
"""
from firmware.compat import const
from sip.transport import is_reliable
from sip.usage.invite import PENDING, CONFIRMED, TERMINATED
from firmware.voice.handover import accept, local_pair, is_local
from firmware.voice.trunks import OVERFLOW_STATUSES
from firmware.callserver.config import MAX_HUNT_GROUPS
from firmware.cdr import sources as cdr
from firmware.callserver import srtp_policy
from firmware.callserver import sessiontimer, hold, conference
from firmware.media import dtmf

MAX_FORKS = const(16)           # contacts rung at once for one call (beyond: not rung, counted)
MAX_FORWARD_HOPS = const(3)     # forward-unreachable chained at most this often

_COR_RANK = {"internal": 0, "local": 1, "national": 2, "international": 3}
_PRIVATE = ("10.", "192.168.", "172.16.", "172.17.", "172.18.", "172.19.", "172.2", "172.30.",
            "172.31.", "100.64.", "169.254.")


def number_class(digits):
    if digits.startswith("011") or digits.startswith("00"):
        return "international"
    if digits.startswith("1") or digits.startswith("0"):
        return "national"
    return "local"


def _is_private(host):
    for p in _PRIVATE:
        if host.startswith(p):
            if p == "172.2" and not (len(host) > 6 and host[5] in "0123456789" and host[6] == "."):
                return False
            return True
    return False


def fix_sdp(body, public):
    """Replace private IPv4 c= addresses of a NATed phone's SDP by `public`."""
    if not body or public is None:
        return body
    lines = body.split(b"\n")
    changed = False
    for i in range(len(lines)):
        ln = lines[i]
        if ln.startswith(b"c=IN IP4 "):
            addr = ln[9:].rstrip(b"\r").split(b"/")[0].decode()
            if _is_private(addr) and addr != public:
                lines[i] = b"c=IN IP4 " + public.encode() + (b"\r" if ln.endswith(b"\r") else b"")
                changed = True
    return b"\n".join(lines) if changed else body


class _Port:
    """An FXS port of this appliance, rung in process."""
    __slots__ = ("port",)

    def __init__(self, port):
        self.port = port


class _Trunk:
    """A number for the analog gateway's trunks, dialled in process."""
    __slots__ = ("number",)

    def __init__(self, number):
        self.number = number


def _public_of(flow):
    return flow[0] if flow is not None else None


class Call:
    def __init__(self, b2b, sreq, caller, caller_num, caller_name, callee, number):
        self.b2b = b2b
        self.id = b2b.next_id
        self.caller = caller          # Station or None (trunk call)
        self.caller_num = caller_num
        self.caller_name = caller_name
        self.callee = callee          # Station or None (outside number)
        self.number = number
        self.a = None
        self.legs = []
        self.b = None
        self.statuses = []
        self.state = "routing"
        self.started = b2b.cs.now()
        self.answered = None
        self.timer = None
        self.rung = False
        self.group = None             # HuntGroup the call was dialled to
        self.steps = []               # groups: member Stations still to ring, in turn
        self.hops = 0                 # forwards taken (no-answer targets)
        self.aa = None                # AaCall while the auto attendant holds the caller
        self.delayed = False          # the caller sent no offer: its ACK answers the callee's
        self.secure = False           # the caller's offer came over TLS (srtp_policy.py)
        self.cutoff = None            # sessiontimer.Cutoff once connected
        self.chain = None             # diversions [(Station, kind)] (firmware/callserver/forward.py)
        self.fwd_target = None        # where the last diversion sent the call
        self.overflow = None          # outbound routes still to try (firmware/voice/trunks.py)
        self.xfer = None              # a transfer under way (firmware/callserver/transfer.py)

    def _now(self):
        return self.b2b.cs.now()

    def __repr__(self):
        return "<Call %d %s->%s %s>" % (self.id, self.caller_num, self.number, self.state)

    # -- legs' callbacks (the owner protocol of sip/usage/agent.py)
    def on_progress(self, s, status):
        if self.b is not None or s not in self.legs or self.a.state not in ("calling", "early"):
            return
        if status == 183 and s.remote_body:
            self.a.ring(fix_sdp(s.remote_body, _public_of(s.flow)))
            self._state("ringing")
        elif not self.rung and 180 <= status < 183:
            self.rung = True
            self.a.ring()
            self._state("ringing")

    def on_answer(self, s):
        if self.b is not None or s not in self.legs or (
                self.aa is None and self.a.state not in ("calling", "early")):
            s.bye(self._now())              # late fork, or a member whose turn had passed
            self._drop_leg(s)
            return
        if self.aa is not None:
            return self._answer_from_attendant(s)
        self.b = s
        if self.callee is None and s.user is not None:   # a hunt group member answered
            self.callee = s.user
            self.b2b.member_answered(self, s.user)
        for leg in self.legs:
            if leg is not s:
                leg.cancel(self._now())
        self.legs = [s]
        self._stop_timer()
        cut = sessiontimer.Cutoff(self, self.b2b.cs.settings)
        if self.a.answer(fix_sdp(s.remote_body, _public_of(s.flow)), cut.answer_headers()) is None:
            s.bye(self._now())
            self.end("caller gone")
            return
        self.cutoff = cut
        cut.start()
        self.answered = self.b2b.cs.now()
        self.b2b.counters["answered"] += 1
        self._state("connected")

    def on_failed(self, s, status):
        if s not in self.legs:
            return               # a leg already cancelled (hunting moved on)
        self._drop_leg(s)
        self.statuses.append(status)
        if self.b is None and not self.legs and self.state != "ended":
            if self.group is not None:
                self.b2b.hunt(self)
                return
            if self.overflow and status in OVERFLOW_STATUSES and self.b2b.next_trunk(self):
                return       # busy or unavailable SIP trunk: the next route
            if self.b2b.cs.forwarding.after_ring(self, self._best()):
                return                  # forward-busy took it
            self.fail(self._best())

    def fail(self, status, reason=None):
        """Nobody took the call: the caller gets status, or goes back to the
        auto attendant when it came from there."""
        for leg in self.legs:
            leg.cancel(self._now())
        self.legs = []
        self._stop_timer()
        if self.aa is not None and self.a.state == CONFIRMED:
            if self.callee is not None:
                self.b2b.release_station(self.callee)
                self.callee = None
            self.b2b.cs.attendant.transfer_failed(self, status)
            return
        self.a.reject(status, reason)
        self.end("failed %d" % status)

    def _answer_from_attendant(self, s):
        """The transfer target answered: re-INVITE the caller with its SDP
        (the target got the caller's original offer) and free the attendant."""
        self.b = s
        for leg in self.legs:
            if leg is not s:
                leg.cancel(self._now())
        self.legs = [s]
        self._stop_timer()
        if self.callee is None and s.user is not None:
            self.callee = s.user
            self.b2b.member_answered(self, s.user)
        self.b2b.cs.attendant.release(self)

        def done(status, s=s):
            if not 200 <= status < 300 and self.state != "ended":
                s.bye(self._now())
                self.a.bye(self._now())
                self.end("caller refused the transfer (%d)" % status)

        if not self.a.reinvite(fix_sdp(s.remote_body, _public_of(s.flow)), self._now(), done):
            s.bye(self._now())
            self.a.bye(self._now())
            self.end("caller busy with another offer")
            return
        self.state = "connected"
        self.answered = self.b2b.cs.now()
        self.b2b.counters["answered"] += 1

    def _best(self):
        sts = self.statuses
        for st in sts:
            if st >= 600:
                return st
        if 486 in sts:
            return 486
        real = [st for st in sts if st != 408]
        if not real:
            return 480
        return min(real)

    def on_confirmed(self, s):
        """The caller's ACK: for a delayed offer it carries the answer to the
        callee's offer, which goes on in the callee's ACK."""
        if s is not self.a or not self.delayed or self.b is None:
            return
        body = fix_sdp(self.a.remote_body, _public_of(self.a.flow)) if self.a.remote_sdp else None
        self.b.send_ack(body, self._now())
        if body is None:                  # no answer: the session cannot be set up
            self.b.bye(self._now())
            self.a.bye(self._now())
            self.end("no answer in the ACK")

    def on_ended(self, s, reason):
        if self.state == "ended":
            return
        if self.xfer is not None:
            from firmware.callserver.transfer import left
            if left(self, s):
                return            # the transferor left: its blind transfer goes on
        if s is self.a:
            for leg in self.legs:
                leg.hangup(self._now())
            self.end("caller " + reason)
        else:
            if s is not self.b and s not in self.legs:
                return           # a cancelled leg ending late
            self._drop_leg(s)
            if s is self.b or not self.legs:
                if self.a.state == CONFIRMED:
                    # an analog port's stated reason (RTP inactivity) goes on in the BYE
                    why = (("Reason", reason),) if reason.startswith("SIP;cause=") else ()
                    self.a.bye(self._now(), why)
                elif self.a.state != TERMINATED:
                    self.a.reject(480)
                self.end("callee " + reason)

    def on_offer(self, s, sdp):
        other = self.b if s is self.a else self.a
        if other is None or other.state != CONFIRMED or self.state != "connected":
            return None
        took = hold.of(self.b2b.cs).offer(self, s, sdp)     # music on hold
        if took is not hold.NOT_MINE:
            if self.cutoff is not None:
                self.cutoff.refreshed()
            return took
        body = fix_sdp(s.remote_body, _public_of(s.flow))

        def done(status, s=s, other=other):
            if 200 <= status < 300:
                s.answer_offer(fix_sdp(other.remote_body, _public_of(other.flow)))
            else:
                s.answer_offer(None, status if status >= 300 else 500)

        if not other.reinvite(body, self._now(), done):
            return None
        if self.cutoff is not None:
            self.cutoff.refreshed()       # RFC 4028: a re-INVITE refreshes the session
        self.b2b.counters["reinvites_relayed"] += 1
        return PENDING

    def on_request(self, s, sreq):
        other = self.b if s is self.a else self.a
        if other is None or other.state != CONFIRMED:
            sreq.respond(481)
            return
        if is_local(other):
            # an analog port: a DTMF INFO is regenerated on its line (415/400 otherwise)
            sreq.respond(dtmf.info_to_port(other, sreq.request))
            return
        req = sreq.request

        def relayed(resp, now, sreq=sreq):
            if resp.status >= 200:
                sreq.respond(resp.status)

        self.b2b.cs.ua.in_dialog(other.dialog, req.method, relayed, self._now(), req.body,
                                 req.content_type)

    # -- call features (conference.py, transfer.py, park.py, pickup.py)
    def on_refer(self, s, sub):
        """A REFER to the conference extension makes an ad-hoc conference;
        any other is a transfer carried out by the call server."""
        r = conference.of(self.b2b.cs).refer(self, s, sub)
        if r:
            return r
        from firmware.callserver.transfer import refer
        return refer(self, s, sub)

    def on_replace(self, s, sreq):
        self.b2b.features("pickup").replace(self, s, sreq)

    # -- housekeeping
    def _state(self, state):
        changed = self.state != state
        self.state = state
        if changed:
            self.b2b.changed(self)

    def _drop_leg(self, s):
        if s in self.legs:
            self.legs.remove(s)

    def _stop_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def no_answer(self):
        self.timer = None
        if self.group is not None and self.b is None and self.state != "ended":
            self.b2b.hunt(self)     # this member (ring-all: the group) rang long enough
            return
        if self.state in ("routing", "ringing") and self.b is None:
            if self.b2b.cs.forwarding.after_ring(self):
                return                  # forward-no-answer took it
            self.fail(480, "No Answer")

    def end(self, why):
        if self.state == "ended":
            return
        self.state = "ended"
        self._stop_timer()
        if self.cutoff is not None:
            self.cutoff.stop()
        moh = getattr(self.b2b.cs, "hold", None)
        if moh is not None:
            moh.release(self)
        self.b2b.ended(self, why)
        self.b2b.changed(self)


class B2bua:
    def __init__(self, cs):
        self.cs = cs
        self.calls = []
        self.rotor = {}           # circular hunt group name -> member index to start at
        self.peak = 0             # most calls at once (sizing max-calls)
        self.next_id = 0
        self.active = {}          # station name -> calls it is in
        self.on_change = None     # fn(call): a call's state changed (events.py)
        self.counters = {"invites": 0, "calls": 0, "answered": 0, "completed": 0,
                         "not_found": 0, "busy": 0, "unavailable": 0, "forwarded": 0,
                         "restricted": 0, "over_limit": 0, "no_offer": 0,
                         "reinvites_relayed": 0, "group_calls": 0, "forks_capped": 0,
                         "delayed_offers": 0, "unassigned_did": 0}
        self._features = {}       # name -> feature module object, built on first use

    def features(self, name):
        """The call feature of that name: transfer, park or pickup."""
        f = self._features.get(name)
        if f is None:
            if name == "transfer":
                from firmware.callserver.transfer import Transfers as f
            elif name == "park":
                from firmware.callserver.park import Park as f
            else:
                from firmware.callserver.pickup import Pickup as f
            f = self._features[name] = f(self)
        return f

    def _feature_call(self, sreq, number, caller, caller_num, caller_name, flow):
        f = getattr(self.cs.app, "feature_settings", None)
        if f is None or not f.claims(number):
            return False          # (park.py and pickup.py stay unloaded)
        for name in ("park", "pickup"):
            if self.features(name).take(sreq, number, caller, caller_num, caller_name, flow):
                return True
        return False

    def ring_route(self, call, route, number):
        """Ring route ("station" | "trunk" | "group", target) for a call the
        call server places itself (a transfer, a park recall); the call is
        admitted here, and a failure goes to call.fail."""
        call.number = number
        call.to_uri = "sip:%s@%s" % (number, self.cs.core.domain)
        if route[0] == "group":
            self._admit(call)
            self.counters["group_calls"] += 1
            call.group = route[1]
            call.steps = self._hunt_order(route[1])
            return self.hunt(call)
        st = route[1] if route[0] == "station" else None
        if st is not None and self.busy(st.name) and not st.call_waiting:
            self.counters["busy"] += 1
            self._admit(call, ring=False)
            return call.fail(486)
        call.callee = st
        self._admit(call)
        if not self._ring(call, route):
            call.fail(480)

    def busy(self, name):
        return self.active.get(name, 0)

    def changed(self, call):
        cdr.callserver_changed(self.cs, call)     # call accounting (docs/cdr.md)
        if self.on_change is not None:
            try:
                self.on_change(call)
            except Exception as e:
                self.cs.app.log.write("error", "call state listener: %s: %s" % (
                    type(e).__name__, e))

    def _resolve(self, number, caller, trunk_call, depth=0, chain=None):
        """-> ("station", Station) | ("trunk", ruri user) | (status, reason).
        chain: a call's diversion list, extended by forward-unreachable."""
        s = self.cs.settings
        st = s.by_ext.get(number)
        dids = getattr(self.cs.app, "trunk_dids", {})   # trunks' DID lists (feature_config.py)
        if st is None and trunk_call:
            st = s.by_did.get(number) or s.by_ext.get((dids.get(number) or (0, None))[1])
        g = s.group_by_ext.get(number)
        if g is None and trunk_call:
            g = s.group_by_did.get(number)
        if g is not None:
            return ("group", g)
        if number == s.attendant.extension and self.cs.attendant is not None:
            return ("attendant", s.attendant)
        if st is not None:
            if not self.targets(st):
                fwd = self.cs.forwarding.target(st, "unreachable")
                if fwd and depth < MAX_FORWARD_HOPS:
                    self.counters["forwarded"] += 1
                    if chain is not None:
                        chain.append((st, "unreachable"))
                    # the forwarding station's class of restriction applies
                    return self._resolve(fwd, st, False, depth + 1, chain)
                self.counters["unavailable"] += 1
                return (480, None)
            return ("station", st)
        if number in self.cs.emergency():
            if caller is None:
                self.counters["restricted"] += 1
                return (403, "Emergency Calls Only From Local Stations")
            if not self._trunk_plan(number):
                return (503, "No Trunk For Emergency Calls")
            return ("trunk", number)      # as dialled, on any line (firmware/voice/routing.py)
        plan = self._trunk_plan(number)   # FXO and in-service SIP trunks, in order
        if plan:
            t = plan[0][0]
            digits = number[len(t.prefix):]
            # every caller has a class: a station its own, a trunk or
            # unknown-source call the call server's trunk-call class
            cor = caller.cor if caller is not None else s.trunk_cor
            if _COR_RANK.get(cor, 3) < _COR_RANK[number_class(digits)]:
                self.counters["restricted"] += 1
                return (403, "Forbidden (Class Of Restriction)")
            return ("trunk", number)
        if trunk_call and depth == 0 and self.cs.attendant is not None:
            # an unassigned DID (a trunk call for no local destination): the
            # auto attendant answers it, as on the SRX
            self.counters["unassigned_did"] += 1
            return ("attendant", s.attendant)
        self.counters["not_found"] += 1
        return (404, None)

    def reachable_by_trunk(self, number):
        """Is number a local destination a trunk call may dial (a station's
        extension or DID, a hunt group's extension or DID, the auto attendant)?
        No counters, no side effects."""
        s = self.cs.settings
        if not number:
            return False
        return (number in s.by_ext or number in s.by_did or number in s.group_by_ext
                or number in s.group_by_did or number in getattr(self.cs.app, "trunk_dids", {})
                or (number == s.attendant.extension and self.cs.attendant is not None))

    def incoming(self, sreq, number, caller, caller_num, caller_name, trunk_call, flow,
                 features=True):
        """A new call; sreq is the SIP INVITE's ServerRequest or the callee
        half of a local pair (both answer respond() when refused).
        features=False: number is not looked up as a feature code."""
        cs = self.cs
        s = cs.settings
        self.counters["invites"] += 1
        if len(self.calls) >= s.max_calls or (len(self.calls) + 1) * 2 > s.max_dialogs:
            self.counters["over_limit"] += 1
            cdr.callserver_refused(cs, sreq, caller, caller_num, number, 503, "Call Limit Reached")
            sreq.respond(503, "Call Limit Reached", (("Retry-After", "10"),))
            return
        if not number:
            self.counters["not_found"] += 1
            cdr.callserver_refused(cs, sreq, caller, caller_num, number, 404)
            sreq.respond(404)
            return
        if sessiontimer.check_invite(sreq, s):
            return                        # 422 (interval below min-se) or 400
        if conference.of(cs).invite(sreq, number, caller, caller_num, caller_name):
            return                        # the conference extension (conference.py)
        if self._feature_call(sreq, number, caller, caller_num, caller_name, flow):
            return            # park, retrieve or pickup (park.py, pickup.py)
        # a station's dialled feature code (firmware/callserver/features.py)
        if features and caller is not None and cs.features.dispatch(
                sreq, number, caller, caller_num, caller_name, flow):
            return
        chain = []
        route = self.cs.forwarding.settle(self, self._resolve(number, caller, trunk_call, 0, chain),
                                          chain, caller)
        if route[0] not in ("station", "trunk", "group", "attendant"):
            cdr.callserver_refused(cs, sreq, caller, caller_num, number, route[0], route[1])
            sreq.respond(route[0], route[1])
            return
        callee = route[1] if route[0] == "station" else None
        if callee is not None and self.busy(callee.name) and not callee.call_waiting:
            self.counters["busy"] += 1
            cdr.callserver_refused(cs, sreq, caller, caller_num, number, 486, "busy")
            sreq.respond(486)
            return
        self.next_id += 1
        call = Call(self, sreq, caller, caller_num, caller_name, callee,
                    route[1].extension if route[0] != "trunk" else route[1])
        a = accept(cs.ua, sreq, call)
        a.flow = flow
        src = getattr(sreq, "source", None)
        if src is not None and is_reliable(src.transport):   # in-dialog requests back over its connection
            a.flow = src.addr
            a.flow_transport = src.transport
        call.a = a
        if chain:
            call.chain = chain
            call.fwd_target = call.number
            call.number = number
        call.body = fix_sdp(a.remote_body, _public_of(flow))
        call.secure = src is not None and src.transport == "TLS"   # SDES keys came over TLS
        bad = srtp_policy.admit(caller, callee, call.body, call.secure)
        if bad is not None:
            self.counters["srtp_refused"] = self.counters.get("srtp_refused", 0) + 1
            cdr.callserver_refused(cs, sreq, caller, caller_num, number, bad[0], bad[1])
            a.reject(bad[0], bad[1])
            call.state = "ended"
            return
        call.delayed = not call.body      # delayed offer: the callee's 2xx will offer
        if call.delayed:
            self.counters["delayed_offers"] += 1
        call.from_uri = "sip:%s@%s" % (caller_num or "anonymous", cs.core.domain)
        call.to_uri = "sip:%s@%s" % (call.number, cs.core.domain)
        if route[0] == "attendant":
            if call.delayed:
                self.counters["no_offer"] += 1    # the attendant answers with media: it needs the offer
                cdr.callserver_refused(cs, sreq, caller, caller_num, number, 488, "SDP Offer Required")
                a.reject(488, "SDP Offer Required")
                call.state = "ended"
                return
            self._admit(call, ring=False)
            if not cs.attendant.take(call):
                a.reject(486, "Attendant Busy")
                call.end("attendant busy")
                return
            call.state = "attendant"
            return
        if route[0] == "group":
            self._admit(call)
            self.counters["group_calls"] += 1
            call.group = route[1]
            call.steps = self._hunt_order(route[1])
            self.hunt(call)
            return
        if not self._ring(call, route):
            cdr.callserver_refused(cs, sreq, caller, caller_num, number, 503, "No Route Available")
            a.reject(503, "No Route Available")
            call.state = "ended"
            return
        self._admit(call)

    def _ring(self, call, route):
        """Start the legs of a station or trunk route: how many started."""
        if route[0] == "station":
            return self._fork(call, None, self.targets(route[1]))
        call.overflow = self._trunk_plan(route[1])
        return self.next_trunk(call)

    def _trunk_plan(self, number):
        from firmware.voice.trunks import plan
        return plan(self.cs.app, self.cs.settings.trunks, number, self.cs.emergency())

    def next_trunk(self, call):
        """Start the next route of call.overflow (firmware/voice/trunks.py):
        the FXO lines go to the gateway, which overflows between them
        itself; a SIP trunk gets an INVITE.  How many legs started."""
        while call.overflow:
            t, digits = call.overflow.pop(0)
            if getattr(t, "kind", "fxo") != "sip":
                call.overflow = [r for r in call.overflow if getattr(r[0], "kind", "fxo") == "sip"]
                n = self._fork(call, None, (_Trunk(call.number),))
            else:
                n = self._sip_trunk_leg(call, t, digits)
            if n:
                return n
        return 0

    def _sip_trunk_leg(self, call, t, digits):
        cs = self.cs
        svc = getattr(cs.app, "sip_trunks", None)
        ts = svc.state_of(t.name) if svc is not None else None
        dest = ts.dest() if ts is not None else None
        if dest is None:
            return 0
        host = t.proxy if ":" not in t.proxy else "[%s]" % t.proxy
        if t.port != 5060:
            host = "%s:%d" % (host, t.port)
        ruri = "sip:%s@%s" % (digits, host)
        frm = "sip:%s@%s" % (t.username or call.caller_num or "anonymous", host)
        leg = cs.ua.invite(ruri, frm, ruri, dest, call.body, call, cs.now(),
                           display=call.caller_name,
                           auth=(t.username, t.password) if t.username and t.password else None,
                           contact_user=call.caller_num or "anonymous",
                           transport=t.transport.upper())
        if leg is None:
            return 0
        leg.user = None
        leg.delay_ack = call.delayed
        if t.transport == "tcp":            # in-dialog requests over the same connection
            leg.flow = dest
            leg.flow_transport = "TCP"
        call.legs.append(leg)
        svc.counters["calls_out"] += 1
        return 1

    def targets(self, st):
        """Where station st rings: its analog port (in process) while the
        port is ready, else its registered contacts."""
        gw = getattr(self.cs.app, "gateway", None)
        port = getattr(st, "fxs_port", None)
        if port is not None and gw is not None and port in gw.fxs:
            return [_Port(port)] if gw.port_ready("fxs", port) else []
        return self.cs.registrar.contacts(st.name)

    def _local(self, call, target):
        """An in-process leg to an analog port: the caller half, or None."""
        gw = getattr(self.cs.app, "gateway", None)
        if gw is None or call.delayed:
            return None          # analog ports need the offer in the INVITE
        leg, port_half = local_pair(self.cs.app, (call.caller_num or "anonymous", call.caller_name),
                                    (call.number, None), call.body)
        leg.owner = call
        if isinstance(target, _Port):
            gw.ring_station(target.port, port_half)
        elif not gw.route_call(port_half, target.number):
            port_half.respond(404)
        return leg

    def _fork(self, call, member, bindings):
        """One UAC leg per binding (contact, or an analog port); member:
        the hunt group member they belong to (None for a plain station or
        trunk call)."""
        cs = self.cs
        n = 0
        for b in bindings:
            if len(call.legs) >= MAX_FORKS:
                self.counters["forks_capped"] += 1
                break
            if isinstance(b, (_Port, _Trunk)):
                leg = self._local(call, b)
                if leg is None:
                    continue
                leg.user = member
                call.legs.append(leg)
                n += 1
                continue
            transport = getattr(b, "transport", "UDP")
            tcp = is_reliable(transport)
            body = srtp_policy.for_leg(call.body, member or call.callee, transport,
                                       getattr(call, "secure", False))
            if body is False:      # keys may not reach this contact, and plain RTP is no option
                self.counters["srtp_unreachable"] = self.counters.get("srtp_unreachable", 0) + 1
                continue
            leg = cs.ua.invite(b.contact, call.from_uri, call.to_uri, b.dest, body, call,
                               cs.now(), display=call.caller_name,
                               headers=cs.forwarding.headers(call),
                               contact_user=call.caller_num or "anonymous",
                               transport=transport if tcp else "UDP")
            if leg is None:
                continue
            leg.user = member
            leg.delay_ack = call.delayed
            if b.nat or tcp:
                leg.flow = b.dest
                leg.flow_transport = transport if tcp else "UDP"
            call.legs.append(leg)
            n += 1
        return n

    def _admit(self, call, ring=True):
        s = self.cs.settings
        self.calls.append(call)
        self.counters["calls"] += 1
        if len(self.calls) > self.peak:
            self.peak = len(self.calls)
        for st in (call.caller, call.callee):
            if st is not None:
                self.active[st.name] = self.active.get(st.name, 0) + 1
        if ring and call.group is None:
            self._ring_timer(call, self.cs.forwarding.ring_ms(call))
        self.changed(call)

    def _ring_timer(self, call, ms):
        call._stop_timer()
        try:
            call.timer = self.cs.core.call_later(ms, call.no_answer)
        except Exception:      # TU timer table full: the caller can still hang up
            call.timer = None

    # -- hunt groups
    def _hunt_order(self, g):
        """The steps of a hunt: lists of member Stations rung together."""
        by_ext = self.cs.settings.by_ext
        members = [by_ext[m] for m in g.members if m in by_ext]
        if not members:
            return []
        if g.type == "ring-all":
            return [members]
        if g.type in ("circular", "round-robin"):
            k = self.rotor.get(g.name, 0) % len(members)
            members = members[k:] + members[:k]
            if g.type == "round-robin":       # the next call starts one member further
                if g.name not in self.rotor and len(self.rotor) >= MAX_HUNT_GROUPS:
                    self.rotor = {}
                self.rotor[g.name] = k + 1
        return [[m] for m in members]

    def hunt(self, call):
        """Ring the next step of call's hunt group; when none is left, the
        group's no-answer target, else the best failure (480 when members
        only rang out)."""
        for leg in call.legs:
            leg.cancel(self.cs.now())
        call.legs = []
        call._stop_timer()
        g = call.group
        while call.steps:
            n = 0
            for st in call.steps.pop(0):
                if st is call.caller:
                    continue
                if self.busy(st.name) and not st.call_waiting:
                    call.statuses.append(486)
                    continue
                n += self._fork(call, st, self.targets(st))
            if n:
                self._ring_timer(call, g.ring_ms)
                self.changed(call)       # other members ring now (busy lamps)
                return
        call.group = None
        target = g.no_answer_target
        if target and call.hops < MAX_FORWARD_HOPS:
            call.hops += 1
            self.counters["forwarded"] += 1
            route = self._resolve(target, call.caller, False, call.hops)
            if route[0] == "group":
                call.group = route[1]
                call.steps = self._hunt_order(route[1])
                return self.hunt(call)
            if route[0] == "station" and self.busy(route[1].name) and not route[1].call_waiting:
                route = (486, None)
            if route[0] in ("station", "trunk"):
                call.to_uri = "sip:%s@%s" % (target, self.cs.core.domain)
                if self._ring(call, route):
                    if route[0] == "station":
                        call.callee = route[1]
                        self.active[route[1].name] = self.active.get(route[1].name, 0) + 1
                    self._ring_timer(call, self.cs.settings.no_answer_ms)
                    return
            else:
                call.statuses.append(route[0])
        status = call._best()
        call.fail(status, "No Answer" if status == 480 else None)

    # -- the auto attendant's transfers
    def transfer_from_attendant(self, call, number):
        """Ring number for a caller the attendant holds (see attendant.py)."""
        route = self._resolve(number, None, False)
        call.statuses = []
        call.to_uri = "sip:%s@%s" % (number, self.cs.core.domain)
        call.number = number
        if route[0] == "group":
            call.group = route[1]
            call.steps = self._hunt_order(route[1])
            return self.hunt(call)
        if route[0] == "station":
            st = route[1]
            if self.busy(st.name) and not st.call_waiting:
                return call.fail(486)
        elif route[0] != "trunk":
            return call.fail(route[0])
        if not self._ring(call, route):
            return call.fail(480)
        if route[0] == "station":
            call.callee = route[1]
            self.active[route[1].name] = self.active.get(route[1].name, 0) + 1
        call.state = "ringing"
        self._ring_timer(call, self.cs.settings.no_answer_ms)

    def hang_up_attendant(self, call):
        if call.a is not None:
            call.a.bye(self.cs.now())
        call.end("attendant hung up")

    def release_station(self, st):
        n = self.active.get(st.name, 0) - 1
        if n > 0:
            self.active[st.name] = n
        else:
            self.active.pop(st.name, None)

    def member_answered(self, call, st):
        """A hunt group member took the call: it is now in a call, and a
        circular group starts after it next time."""
        self.active[st.name] = self.active.get(st.name, 0) + 1
        g = call.group
        if g is not None and g.type == "circular" and st.extension in g.members:
            if g.name not in self.rotor and len(self.rotor) >= MAX_HUNT_GROUPS:
                self.rotor = {}       # groups renamed or deleted over time: start over
            self.rotor[g.name] = g.members.index(st.extension) + 1

    def ended(self, call, why):
        cdr.callserver_ended(self.cs, call, why)
        if call.aa is not None:
            self.cs.attendant.release(call)
        if call in self.calls:
            self.calls.remove(call)
            if call.answered is not None:
                self.counters["completed"] += 1
            for st in (call.caller, call.callee):
                if st is not None:
                    self.release_station(st)

    def hangup_all(self):
        for call in list(self.calls):
            for leg in call.legs:
                leg.hangup(self.cs.now())
            if call.a is not None:
                call.a.hangup(self.cs.now())
            call.end("shutdown")

    def statistics(self):
        ua = self.cs.ua
        out = [("calls now", len(self.calls)), ("calls peak", self.peak),
               ("dialogs now", len(ua.dialogs)), ("dialogs peak", ua.dialogs.peak)]
        for k in sorted(self.counters):
            out.append((k.replace("_", " "), self.counters[k]))
        for name in sorted(self._features):
            out.extend(self._features[name].statistics())
        return out

