# portable: micropython
"""In-process calls between an analog port and the local call server
(firmware/voice/handover.py): what one half does reaches the other half's
owner on the next turn, with the INVITE session's callbacks."""
from sip.timers import TimerTable
from sip.usage.agent import PENDING
from firmware.voice.handover import local_pair, accept, is_local

SDP_A = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
SDP_B = b"v=0\r\no=- 2 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4002 RTP/AVP 0\r\n"


class _Sip:
    def __init__(self):
        self.timers = TimerTable(64)
        self.now = 0

    def call_later(self, ms, fn):
        return self.timers.add(self.now + ms, fn)

    def turn(self):
        for t in self.timers.due(self.now):
            t.fire(self.now)


class _App:
    def __init__(self):
        self.sip = _Sip()


class Owner:
    def __init__(self, offer_answer=None):
        self.ev = []
        self.offer_answer = offer_answer

    def on_progress(self, s, st):
        self.ev.append(("progress", st))

    def on_answer(self, s):
        self.ev.append(("answer", s.remote_body))

    def on_failed(self, s, st):
        self.ev.append(("failed", st))

    def on_confirmed(self, s):
        self.ev.append(("confirmed",))

    def on_ended(self, s, reason):
        self.ev.append(("ended", reason))

    def on_offer(self, s, sdp):
        self.ev.append(("offer", sdp is not None))
        return self.offer_answer


def _call():
    app = _App()
    caller, callee = local_pair(app, ("1001", "Alice"), ("2001", None), SDP_A)
    a, b = Owner(), Owner()
    caller.owner = a
    assert is_local(callee) and accept(None, callee, b) is callee and callee.owner is b
    return app, caller, callee, a, b


def test_ring_answer_confirm_and_bye_arrive_on_the_next_turn():
    app, caller, callee, a, b = _call()
    assert callee.remote_identity == ("1001", "Alice") and callee.remote_sdp is not None
    callee.ring()
    assert a.ev == []                       # never inside the acting side's call
    app.sip.turn()
    assert a.ev == [("progress", 180)] and caller.state == "early"
    callee.answer(SDP_B)
    app.sip.turn()
    assert a.ev[-1] == ("answer", SDP_B) and caller.state == "confirmed"
    app.sip.turn()
    assert b.ev == [("confirmed",)] and callee.acked
    caller.bye()
    app.sip.turn()
    assert b.ev[-1] == ("ended", "bye") and callee.state == "terminated"
    assert not callee.bye(), "nothing to end twice"


def test_reject_cancel_and_a_cancel_crossing_the_answer():
    app, caller, callee, a, b = _call()
    callee.respond(486)
    app.sip.turn()
    assert a.ev == [("failed", 486)] and caller.state == "terminated"
    app, caller, callee, a, b = _call()
    assert caller.cancel()
    app.sip.turn()
    assert b.ev == [("ended", "cancel")] and callee.state == "terminated"
    # the callee answers before the caller's CANCEL is delivered: the caller
    # ends the answered call as a BYE would, and each side hears one end
    app, caller, callee, a, b = _call()
    callee.answer(SDP_B)
    caller.cancel()
    app.sip.turn()
    app.sip.turn()
    assert a.ev == [] and b.ev == [("ended", "bye")], (a.ev, b.ev)
    assert caller.state == callee.state == "terminated"


def test_reoffers_answered_at_once_later_or_refused():
    app, caller, callee, a, b = _call()
    callee.answer(SDP_B)
    app.sip.turn()
    app.sip.turn()
    done = []
    b.offer_answer = SDP_B
    assert caller.reinvite(SDP_A, 0, done.append)
    app.sip.turn()
    app.sip.turn()
    assert done == [200] and b.ev[-1] == ("offer", True)
    b.offer_answer = PENDING
    assert caller.reinvite(SDP_A, 0, done.append)
    app.sip.turn()
    assert done == [200]
    callee.answer_offer(None, 491)
    app.sip.turn()
    assert done == [200, 491]
    b.offer_answer = None
    caller.reinvite(SDP_A, 0, done.append)
    app.sip.turn()
    app.sip.turn()
    assert done == [200, 491, 488]


def test_transfer_is_refused_as_the_call_server_refuses_refer():
    app, caller, callee, a, b = _call()
    callee.answer(SDP_B)
    app.sip.turn()
    got = []
    assert caller.refer("sip:2002@branch", None, lambda kind, st: got.append((kind, st)))
    app.sip.turn()
    assert got == [("rejected", 603)]
