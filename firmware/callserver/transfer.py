"""Call transfer on the local call server (RFC 3515 REFER, RFC 3891 Replaces,
RFC 5589 flows), for SIP phones and for FXS ports (whose REFER comes in
process through firmware/voice/handover.py LocalSession.refer).

The call server is a B2BUA: a REFER from one party of a call (the
transferor) arrives on the call server's own leg, and the call server
carries the transfer out itself; the transferee is never REFERred.

Blind (Refer-To without Replaces): 202, NOTIFY 100, then the call server
rings the target with the transferee's SDP (direction forced to sendrecv:
the transferee is usually on hold) in a new call (XferCall) whose caller is
the transferee.  180 from the target -> NOTIFY 180.  Answered -> the
transferee is re-INVITEd with the target's SDP, NOTIFY 200 ends the
subscription, the old call ends without touching the transferee; the
transferor's leg is BYEd after LINGER_MS if the phone did not BYE it.
Not answered (every leg failed, or the station's no-answer timeout) ->
NOTIFY with the final status; a transferor still in the call gets the
transferee back (its phone resumes it), a transferor who already hung up is
recalled: its station rings with the transferee's SDP for RECALL_RING_MS,
and when nobody takes the recall the transferee gets BYE.

Attended (Refer-To ...?Replaces=<the transferor's dialog of another call
of this call server>): the dialog named must be the transferor's own leg of
a connected call (else 403 Forbidden, as for any other party's dialog).
Semi-attended (that call still rings): it ends (487 to the transferor's
INVITE, the target's legs cancelled) and the transferee rings the same
number, as in a blind transfer.
The two remaining parties are joined: the transferee is re-INVITEd with the
target's SDP, then the target with the transferee's answer; NOTIFY 200; the
transferor's leg of the consultation call gets BYE and the transferee takes
its place in that call.

    refer(call, s, sub) -> status | fn()   Call.on_refer's answer
    left(call, s) -> bool                  Call.on_ended hook: True when a
                                           transferor leaving is the
                                           transfer's business
Bounds: one transfer per call at a time (a second REFER: 491); refer
subscriptions are bounded by sip.usage.agent.MAX_REFER_SUBSCRIPTIONS.
"""
from firmware.compat import const
from sip.errors import SipError
from sip.usage.invite import CONFIRMED, TERMINATED
from firmware.callserver.b2bua import Call, fix_sdp, _public_of

LINGER_MS = const(4000)          # transferor did not BYE after NOTIFY 200: we do
RECALL_RING_MS = const(30000)    # an unanswered blind transfer rings the transferor this long


def sendrecv(body):
    """The SDP with every direction attribute made sendrecv: the transferee
    was put on hold by the transferor, the new party must not be."""
    if not body:
        return body
    for a in (b"a=sendonly", b"a=recvonly", b"a=inactive"):
        body = body.replace(a, b"a=sendrecv")
    return body


def target_number(uri):
    try:
        from sip.uri import parse_uri
        u = parse_uri(uri)
    except SipError:
        return None
    return u.user_plain if u.scheme != "tel" else u.user


def side(call, s):
    """(station of s, the other session, station of the other) in call."""
    if s is call.a:
        return call.caller, call.b, call.callee
    if s is call.b:
        return call.callee, call.a, call.caller
    return None, None, None


class _Leaving:
    """Owner of a transferor's leg once its call ended by the transfer: it
    only waits for the phone's BYE (LINGER_MS, then ours)."""

    def __init__(self, b2b, s):
        self.b2b = b2b
        self.s = s
        self.timer = None
        s.owner = self
        try:
            self.timer = b2b.cs.core.call_later(LINGER_MS, self._bye)
        except Exception:
            self._bye()

    def _bye(self):
        self.timer = None
        if self.s.state == CONFIRMED:
            self.s.bye(self.b2b.cs.now())

    def on_ended(self, s, reason):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def on_offer(self, s, sdp):
        return s.local_sdp          # a late resume: answered with what it had

    def on_request(self, s, sreq):
        sreq.respond(200)


def refer(call, s, sub):
    """Call.on_refer: accept (a function the agent runs after 202) or refuse."""
    b2b = call.b2b
    tm = b2b.features("transfer")
    if call.state != "connected" or call.b is None:
        return 491 if call.xfer is not None else 603
    if call.xfer is not None:
        return 491
    me, other, other_st = side(call, s)
    if other is None or other.state != CONFIRMED:
        return 481
    replaced = _replaced(b2b, sub)
    if replaced is not None:
        if replaced is False:
            tm.counters["refused"] += 1
            return 481
        c2, x = replaced
        me2, y, y_st = side(c2, x)
        # the dialog to replace must be the transferor's own leg of another call
        if c2 is call or me2 is None or me is None or me2 is not me:
            tm.counters["refused"] += 1
            return 403
        if x is c2.a and c2.b is None and c2.xfer is None and c2.aa is None and \
                c2.state in ("routing", "ringing"):
            # semi-attended: the consultation still rings; the transferee
            # takes its place (RFC 5589 §7.3), as a blind transfer
            return lambda: _semi_attended(tm, call, s, other, other_st, me, c2, sub)
        if c2.state != "connected" or c2.xfer is not None or y is None or y.state != CONFIRMED:
            return 486
        return lambda: Attended(tm, call, s, other, c2, x, y, sub).start()
    number = target_number(sub.target)
    if not number:
        return 400
    park = b2b.features("park")
    if park is not None and park.is_lot(number):
        return lambda: park.park_by_transfer(call, s, other, other_st, me, sub)
    return lambda: start_blind(tm, call, s, other, other_st, me, number, sub)


def _replaced(b2b, sub):
    """(call, session) the REFER's Replaces names, False when it names
    nothing of ours, None without Replaces."""
    x = getattr(sub, "replaces_session", None)     # an FXS port's local consultation
    if x is None:
        if not sub.replaces:
            return None
        from sip.headers import parse_replaces
        try:
            cid, tt, ft, early = parse_replaces(sub.replaces)
        except ValueError:
            return False
        d = b2b.cs.ua.dialogs.find(cid, tt, ft)
        x = d.user if d is not None else None
    c2 = getattr(x, "owner", None)
    if x is None or not isinstance(c2, Call) or c2 not in b2b.calls:
        return False
    return c2, x


def _semi_attended(tm, call, s, transferee, transferee_st, transferor_st, c2, sub):
    number = c2.number
    c2.fail(487, "Replaced By A Transfer")
    start_blind(tm, call, s, transferee, transferee_st, transferor_st, number, sub)


def start_blind(tm, call, s, transferee, transferee_st, transferor_st, number, sub):
    """Ring number for the transferee of call (s: the transferor's leg)."""
    b2b = call.b2b
    tm.counters["blind"] += 1
    t = XferCall(b2b, call, s, transferee, transferee_st, transferor_st, sub)
    call.xfer = t
    # call accounting: the REFERred call's record names the transfer target
    b2b.cs.app.calls.redirected(getattr(call, "cdr", None), "transferred", number)
    call.cdr_pinned = True
    route = b2b._resolve(number, transferor_st, False)
    if route[0] not in ("station", "trunk", "group"):
        t.fail(route[0], route[1])
        return
    b2b.ring_route(t, route, number)


class XferCall(Call):
    """The transferee's new call: the target rings, then the recall."""

    def __init__(self, b2b, old, s, transferee, transferee_st, transferor_st, sub):
        b2b.next_id += 1
        num, name = transferee.remote_identity
        if transferee_st is not None:
            num, name = transferee_st.extension, transferee_st.display_name or name
        Call.__init__(self, b2b, None, transferee_st, num, name, None, None)
        self.old = old                 # the call the REFER came in; ends when this one connects
        self.transferor = s
        self.transferor_st = transferor_st
        self.sub = sub
        self.a = transferee
        self.body = sendrecv(fix_sdp(transferee.remote_body, _public_of(transferee.flow)))
        self.from_uri = "sip:%s@%s" % (num or "anonymous", b2b.cs.core.domain)
        self.recalling = False
        self.notified_ringing = False
        self.on_done = None            # fn(answered): the park module's hook

    def on_progress(self, s, status):
        if s in self.legs and 180 <= status < 200 and not self.notified_ringing:
            self.notified_ringing = True
            self._notify(180)
            self._state("ringing")

    def _notify(self, status, final=False):
        sub = self.sub
        if sub is None or sub.done:
            return
        now = self.b2b.cs.now()
        if final:
            sub.final(status, now)
        else:
            sub.notify(status, now)

    def on_answer(self, s):
        if self.b is not None or s not in self.legs or self.state == "ended":
            s.bye(self._now())
            self._drop_leg(s)
            return
        self.b = s
        if self.callee is None and s.user is not None:
            self.callee = s.user
            self.b2b.member_answered(self, s.user)
        for leg in self.legs:
            if leg is not s:
                leg.cancel(self._now())
        self.legs = [s]
        self._stop_timer()
        old = self.old
        a = self.a
        if a.state != CONFIRMED:
            s.bye(self._now())
            self.end("transferee gone")
            return
        a.owner = self                 # the transferee is this call's now

        def done(status, s=s):
            if self.state == "ended":
                return
            if not 200 <= status < 300:
                s.bye(self._now())
                a.bye(self._now())
                self._notify(status, True)
                self.end("transferee refused the new party (%d)" % status)
                return
            self.answered = self.b2b.cs.now()
            self.b2b.counters["answered"] += 1
            self._notify(200, True)
            if self.on_done is not None:
                self.on_done(True)
            self._state("connected")

        self._finish_old()
        if not a.reinvite(fix_sdp(s.remote_body, _public_of(s.flow)), self._now(), done):
            s.bye(self._now())
            a.bye(self._now())
            self.end("transferee busy with another offer")
            return
        self.state = "connecting"
        tm = self.b2b.features("transfer")
        tm.counters["recalls_answered" if self.recalling else "completed"] += 1

    def _finish_old(self):
        """The old call ends without the transferee; the transferor's leg is
        left to its BYE (or ours after LINGER_MS)."""
        old = self.old
        if old is None:
            return
        self.old = None
        old.xfer = None
        old.legs = []
        old.b = None
        if self.transferor.state == CONFIRMED:
            _Leaving(self.b2b, self.transferor)
        if old.state != "ended":
            old.end("transferred")

    def fail(self, status, reason=None):
        for leg in self.legs:
            leg.cancel(self._now())
        self.legs = []
        self._stop_timer()
        if self.state == "ended":
            return
        tm = self.b2b.features("transfer")
        self._notify(status, True)
        if self.on_done is not None and not self.recalling:
            self.on_done(False)
        old = self.old
        if not self.recalling and old is not None and old.state != "ended" and \
                self.transferor.state == CONFIRMED:
            # the transferor is still in the call: its phone takes the party back
            old.xfer = None
            self.old = None
            tm.counters["failed"] += 1
            self.end("transfer failed %d" % status)
            return
        if not self.recalling and self.transferor_st is not None and self.a.state == CONFIRMED:
            self.recall()
            return
        tm.counters["failed"] += 1
        if self.a.state == CONFIRMED:
            self.a.bye(self._now())
        self._finish_old()
        self.end("transfer not answered %d" % status)

    def recall(self):
        """Ring the transferor's station back with the transferee."""
        b2b = self.b2b
        st = self.transferor_st
        b2b.features("transfer").counters["recalls"] += 1
        self.recalling = True
        self.statuses = []
        self.group = None
        self.steps = []
        if self.callee is not None:
            b2b.release_station(self.callee)
            self.callee = None
        self.number = st.extension
        self.to_uri = "sip:%s@%s" % (st.extension, b2b.cs.core.domain)
        if not b2b._fork(self, None, b2b.targets(st)):
            return self.fail(480)
        self.callee = st
        b2b.active[st.name] = b2b.active.get(st.name, 0) + 1
        self._state("ringing")
        b2b._ring_timer(self, RECALL_RING_MS)

    def no_answer(self):
        self.timer = None
        if self.group is not None and self.b is None and self.state != "ended":
            self.b2b.hunt(self)
            return
        if self.b is None and self.state != "ended":
            self.fail(480, "No Answer")

    def on_ended(self, s, reason):
        if s is self.a and self.old is not None:
            return                      # the old call still owns the transferee: see abort()
        Call.on_ended(self, s, reason)

    def abort(self, why):
        """The transferee left while the target rang."""
        for leg in self.legs:
            leg.hangup(self._now())
        self.legs = []
        self._notify(487, True)
        self.old = None
        self.end(why)


class Attended:
    """Joining the transferee (other party of call) and the target (other
    party of c2): two re-INVITEs, then the calls are rearranged."""

    def __init__(self, tm, call, s, transferee, c2, x, target, sub):
        self.tm = tm
        self.call = call
        self.s = s
        self.transferee = transferee
        self.c2 = c2
        self.x = x
        self.target = target
        self.sub = sub
        tm.counters["attended"] += 1

    def start(self):
        call, c2 = self.call, self.c2
        call.xfer = self
        c2.xfer = self
        t = self.target
        if not self.transferee.reinvite(sendrecv(fix_sdp(t.remote_body, _public_of(t.flow))),
                                        call.b2b.cs.now(), self._transferee_done):
            self._failed(500)

    def _transferee_done(self, status):
        if not 200 <= status < 300:
            return self._failed(status)
        b = self.transferee
        if not self.target.reinvite(fix_sdp(b.remote_body, _public_of(b.flow)),
                                    self.call.b2b.cs.now(), self._target_done):
            self._failed(500)

    def _target_done(self, status):
        if not 200 <= status < 300:
            return self._failed(status)
        call, c2, b2b = self.call, self.c2, self.call.b2b
        now = b2b.cs.now()
        call.xfer = None
        c2.xfer = None
        if not self.sub.done:
            self.sub.final(200, now)
        # the transferee takes the transferor's place in c2
        b_st = side(call, self.transferee)[0]
        x_st = side(c2, self.x)[0]
        if self.x is c2.a:
            c2.a = self.transferee
            c2.caller = b_st
            c2.caller_num = b_st.extension if b_st is not None else call.caller_num
        else:
            c2.b = self.transferee
            c2.legs = [self.transferee]
            c2.callee = b_st
        self.transferee.owner = c2
        if b_st is not None:
            b2b.active[b_st.name] = b2b.active.get(b_st.name, 0) + 1
        if x_st is not None:
            b2b.release_station(x_st)
        self.x.owner = None
        self.x.bye(now)               # the transferor's consultation leg
        call.legs = []
        if self.s is call.a:
            call.b = None
        else:
            call.a = self.s
            call.b = None
        if self.s.state == CONFIRMED:
            _Leaving(b2b, self.s)
        call.end("transferred")
        b2b.changed(c2)
        self.tm.counters["completed"] += 1

    def _failed(self, status):
        self.call.xfer = None
        self.c2.xfer = None
        self.tm.counters["failed"] += 1
        if not self.sub.done:
            self.sub.final(status if status >= 300 else 500, self.call.b2b.cs.now())


def left(call, s):
    """Call.on_ended hook while a transfer runs: the transferor may leave
    (its blind transfer goes on); the transferee leaving aborts it."""
    x = call.xfer
    if isinstance(x, XferCall):
        if s is x.transferor:
            x.transferor = s
            return True
        x.abort("transferee hung up")
        call.xfer = None
        return False
    if isinstance(x, Attended):
        x._failed(487)
    return False


class Transfers:
    """The transfer feature of one B2BUA: counters for `show call-server
    statistics`."""

    def __init__(self, b2b):
        self.b2b = b2b
        self.counters = {"blind": 0, "attended": 0, "completed": 0, "failed": 0,
                         "recalls": 0, "recalls_answered": 0, "refused": 0}

    def statistics(self):
        return [("transfer " + k.replace("_", " "), v) for k, v in sorted(self.counters.items())]
