"""RTP inactivity timeout (issue 14, feature 13: "automatic session
cut-off" where the appliance sees the media).

    set services convergence-services media rtp-inactivity-timeout 60   # seconds, 0: off

The analog ports' calls (FXS and FXO legs) and the conference members are
watched: a session that received no RTP packet (audio or RFC 4733 event)
for the timeout while its far end is not on hold (a held phone may send
nothing) is ended with BYE carrying REASON; over an analog port's
in-process session the same Reason travels as the end reason, and the call
server's BYE to the SIP phone carries it (firmware/voice/handover.py,
firmware/callserver/b2bua.py).  Music on hold is not watched: the held
party was offered sendonly and sends nothing.

    w = IdleCheck(now)
    w.idle(rtp, now, timeout_ms, paused) -> bool     # every media tick
"""
REASON_TEXT = 'SIP;cause=408;text="RTP inactivity"'
REASON = (("Reason", REASON_TEXT),)


def timeout_ms(app):
    gs = getattr(app, "gateway_settings", None)
    return getattr(gs, "rtp_idle_ms", 0) if gs is not None else 0


class IdleCheck:
    __slots__ = ("seen", "since")

    def __init__(self, now):
        self.seen = -1
        self.since = now

    def idle(self, rtp, now, timeout, paused):
        if not timeout:
            return False
        n = rtp.received + rtp.events
        if paused or n != self.seen:
            self.seen = n
            self.since = now
            return False
        return now - self.since >= timeout


def end(session, now):
    """BYE with the stated reason (SIP or in process)."""
    return session.bye(now, REASON)
