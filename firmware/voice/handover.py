"""In-process calls between the analog gateway and the local call server.

Parts of one process never talk SIP to each other: when the local call
server is in control, an FXS or FXO port and the B2BUA are joined by a pair
of LocalSession halves instead of INVITEs over the loopback socket.  Each
half offers the owner API of an INVITE session (sip/usage/invite.py:
ring, answer, reject, cancel, bye, hangup, reinvite, answer_offer,
send_ack, refer; state, remote_body, remote_sdp, remote_identity) and calls
the other half's owner back with the same callbacks (on_progress,
on_answer, on_failed, on_confirmed, on_ended, on_offer).  An analog call
through the local call server is then one B2BUA call and one SIP session
(toward the SIP phone), where it used to be three sessions and three
dialogs.

    caller, callee = local_pair(app, caller_id, callee_id, body)
        caller: the UAC half (state CALLING), given to whoever places the call
        callee: the UAS half, handed to the receiving side as its offer:
                callee.respond(status) refuses it; accept(ua, offer, owner)
                turns it (or a SIP ServerRequest) into the receiving session

What one half does reaches the other on the next turn of the SIP core's
timer task (a 0 ms TU timer), never inside the caller's own call, as a
message would: an owner never sees its own action come back in the middle
of handling it.  Pending events per pair are bounded by MAX_PENDING (an
overflowing pair is ended on both sides, counted).
"""
from firmware.compat import const
from sip.sdp import RemoteSdp
from sip.usage.invite import Hangup

MAX_PENDING = const(16)      # events not yet delivered, per pair

CALLING = "calling"
EARLY = "early"
CONFIRMED = "confirmed"
TERMINATED = "terminated"


def accept(ua, offer, owner):
    """The receiving session of a new call: a SIP INVITE (ServerRequest) or
    the callee half of a local pair."""
    if getattr(offer, "usage", None) == "local":
        offer.owner = owner
        return offer
    from sip.usage.invite import InviteSession
    return InviteSession.uas(ua, offer, owner)


def is_local(session):
    return getattr(session, "usage", None) == "local"


class _Pair:
    __slots__ = ("app", "events", "timer", "ended")

    def __init__(self, app):
        self.app = app
        self.events = []
        self.timer = None
        self.ended = False

    def post(self, fn, *args):
        if len(self.events) >= MAX_PENDING:
            counters = getattr(self.app, "handover_counters", None)
            if counters is not None:
                counters["overflow"] = counters.get("overflow", 0) + 1
            self.events = []
            return False
        self.events.append((fn, args))
        if self.timer is None:
            self.timer = self.app.sip.call_later(0, self.run)
        return True

    def run(self):
        self.timer = None
        while self.events:
            fn, args = self.events.pop(0)
            fn(*args)


def local_pair(app, caller_id, callee_id, body):
    """(caller half, callee half) of a new in-process call; caller_id and
    callee_id are (number, name) as each side shows the other."""
    pair = _Pair(app)
    a = LocalSession(pair, True, callee_id)
    b = LocalSession(pair, False, caller_id)
    a.peer = b
    b.peer = a
    a.local_sdp = body
    b.got_remote_sdp(body)
    counters = getattr(app, "handover_counters", None)
    if counters is None:
        counters = app.handover_counters = {"calls": 0, "overflow": 0}
    counters["calls"] += 1
    return a, b


class LocalSession(RemoteSdp, Hangup):
    usage = "local"
    dialog = None                # no SIP dialog: attended transfer falls back to blind

    def __init__(self, pair, is_uac, remote_identity):
        self.pair = pair
        self.peer = None
        self.owner = None
        self.is_uac = is_uac
        self.state = CALLING
        self.remote_identity = remote_identity
        self.local_sdp = None
        self.user = None
        self.flow = None
        self.flow_transport = "UDP"
        self.delay_ack = False
        self.acked = False
        self.refer_in = None
        self.refer_out = None
        self.end_reason = None
        self.final_status = None
        self._offer_done = None   # a re-offer of the peer's the owner answers later

    def __repr__(self):
        return "<LocalSession %s %s>" % ("uac" if self.is_uac else "uas", self.state)

    def _cb(self, name, *args):
        fn = getattr(self.owner, name, None) if self.owner is not None else None
        if fn is not None:
            return fn(self, *args)
        return None

    # -- the receiving side (UAS)
    def respond(self, status, reason=None, headers=None):
        """Refuse the call (the offer interface a ServerRequest also has)."""
        return self.reject(status, reason, headers)

    def ring(self, sdp=None):
        if self.is_uac or self.state not in (CALLING, EARLY):
            return None
        self.state = EARLY
        if sdp is not None:
            self.local_sdp = sdp
        self.pair.post(self.peer._progress, 183 if sdp is not None else 180, sdp)
        return self

    def answer(self, sdp, headers=()):
        if self.is_uac or self.state not in (CALLING, EARLY):
            return None
        self.local_sdp = sdp
        self.state = CONFIRMED
        self.pair.post(self.peer._answered, sdp)
        return self

    def reject(self, status, reason=None, headers=None):
        if self.is_uac or self.state not in (CALLING, EARLY):
            return None
        self.final_status = status
        self._terminate("rejected")
        self.pair.post(self.peer._failed, status)
        return self

    # -- the calling side (UAC)
    def cancel(self, now=None):
        if not self.is_uac or self.state not in (CALLING, EARLY):
            return False
        self._terminate("cancelled")
        self.pair.post(self.peer._ended, "cancel")
        return True

    # -- either side
    def bye(self, now=None, headers=()):
        """headers: a Reason header's value becomes the peer's end reason
        (the call server states it in its BYE to the SIP side)."""
        if self.state != CONFIRMED:
            return False
        self._terminate("bye")
        reason = "bye"
        for name, value in headers:
            if name.lower() == "reason":
                reason = value
        self.pair.post(self.peer._ended, reason)
        return True

    def reinvite(self, sdp, now=None, on_done=None):
        if self.state != CONFIRMED or self.peer.state != CONFIRMED:
            return False
        self.local_sdp = sdp
        self.pair.post(self.peer._offered, sdp, on_done)
        return True

    def answer_offer(self, body, status=488):
        pending = self._offer_done
        self._offer_done = None
        if pending is not None:
            self.pair.post(self.peer._offer_answered, body, status, pending)

    def send_ack(self, sdp, now=None):
        return False             # local calls always carry an offer

    def refer(self, refer_to, referred_by, on_event, now=None, replaces=None):
        """Transfer through the local call server: the peer half's owner
        (a B2BUA call, firmware/callserver/transfer.py) gets on_refer with a
        LocalRefer in place of the REFER's subscription; replaces: our
        session of the consultation call (attended transfer: its peer half
        is the call server's leg the transfer replaces)."""
        if self.state != CONFIRMED or self.refer_out is not None:
            return False
        sub = LocalRefer(self, refer_to, referred_by, on_event,
                         replaces.peer if replaces is not None else None)
        self.refer_out = sub
        self.pair.post(sub.deliver)
        return True

    # -- the peer's events, delivered on the next turn
    def _progress(self, status, sdp):
        if self.state not in (CALLING, EARLY):
            return
        self.state = EARLY
        if sdp is not None:
            self.got_remote_sdp(sdp)
        self._cb("on_progress", status)

    def _answered(self, sdp):
        if self.state not in (CALLING, EARLY):
            # cancelled meanwhile: the answer crossed our CANCEL, end it (as BYE)
            if self.state == TERMINATED and self.peer.state == CONFIRMED:
                self.peer._terminate("bye")
                self.pair.post(self.peer._ended_cb, "bye")
            return
        self.state = CONFIRMED
        self.acked = True
        self.got_remote_sdp(sdp)
        self._cb("on_answer")
        if self.state == CONFIRMED:
            self.pair.post(self.peer._confirmed)

    def _confirmed(self):
        if self.state == CONFIRMED:
            self.acked = True
            self._cb("on_confirmed")

    def _failed(self, status):
        if self.state == TERMINATED:
            return
        self.final_status = status
        self._terminate("failed")
        self._cb("on_failed", status)

    def _ended(self, reason):
        if self.state == TERMINATED:
            return
        self._terminate(reason)
        self._cb("on_ended", reason)

    def _ended_cb(self, reason):
        self._cb("on_ended", reason)

    def _offered(self, sdp, on_done):
        if self.state != CONFIRMED:
            self.pair.post(_done, on_done, 481)
            return
        self.got_remote_sdp(sdp)
        from sip.usage.agent import PENDING
        body = self._cb("on_offer", self.remote_sdp)
        if body is PENDING:
            self._offer_done = on_done
            return
        self.pair.post(self.peer._offer_answered, body, 488, on_done)

    def _offer_answered(self, body, status, on_done):
        if body is None:
            _done(on_done, status)
            return
        self.got_remote_sdp(body)
        _done(on_done, 200)

    def _terminate(self, reason):
        self.state = TERMINATED
        if self.end_reason is None:
            self.end_reason = reason


def _done(on_done, status):
    if on_done is not None:
        on_done(status)


class LocalRefer:
    """A REFER between the halves of a local pair: what the call server sees
    as the REFER's subscription (target, replaces, referred_by, notify,
    final, done) and the transferor's on_event(kind, status) reports
    ("accepted", then "final"; or "rejected"), each on a later turn."""

    def __init__(self, session, target, referred_by, on_event, replaces_session):
        self.session = session
        self.target = target
        self.referred_by = referred_by
        self.replaces = None
        self.replaces_session = replaces_session
        self.on_event = on_event
        self.on_expire = None
        self.done = False
        self.last = None

    def deliver(self):
        s = self.session
        peer = s.peer
        fn = getattr(peer.owner, "on_refer", None) if peer.owner is not None else None
        if s.state != CONFIRMED or fn is None:
            return self._report("rejected", 481 if fn is not None else 603)
        act = fn(peer, self)
        if not callable(act):
            return self._report("rejected", act or 603)
        self._event("accepted", 202)
        try:
            act()
        except Exception as e:
            log = getattr(getattr(s.pair.app, "log", None), "write", None)
            if log is not None:
                log("error", "local transfer: %s: %s" % (type(e).__name__, e))
            self.final(500)

    def notify(self, status, now=None, final=False, reason=None, phrase=None):
        self.last = status
        if final:
            self.final(status, now)
        return True

    def final(self, status, now=None, reason=None, phrase=None):
        if self.done:
            return
        self.last = status
        self._report("final", status)

    def _report(self, kind, status):
        self.done = True
        if self.session.refer_out is self:
            self.session.refer_out = None
        self._event(kind, status)

    def _event(self, kind, status):
        if self.on_event is not None:
            self.session.pair.post(self.on_event, kind, status)
