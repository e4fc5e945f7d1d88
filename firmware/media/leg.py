"""One SIP call leg of an analog port: an InviteSession (sip/usage/invite.py) plus its
RtpSession (media.py) and the SDP offer/answer glue.

    leg = Leg(agent, rtp, outgoing)       agent: FxsAgent / FxoAgent (callbacks)
    leg.offer(direction="sendrecv") -> SDP bytes (o= version bumps per offer)
    leg.answer_for(remote_session, direction="sendrecv") -> SDP bytes
    leg.connect_remote()      point the RTP at the far end's SDP (c=, m= port, codec)
    leg.hold() / leg.resume() re-INVITE sendonly / sendrecv
    leg.close()               release the RTP session (session already ended)

The session's owner is the leg; every SIP event goes to the agent as
agent.leg_event(leg, event, value): "progress" (status), "answer", "failed"
(status), "confirmed", "ended" (reason), "reoffer" (held: bool), "dtmf"
(key: a SIP INFO, or in process from the call server; firmware/media/dtmf.py).

Transfer: leg.refer_sub is the ReferSubscription (sip/usage/refer.py) this leg's INVITE
serves (transferee side): its final status is NOTIFYed from on_answer /
on_failed / hangup.  REFER and Replaces go to the agent when it has
refer_in(leg, sub) / replace(leg, sreq); otherwise 603.
"""
from sip import sdp as _sdp
from sip.errors import SipError

CODECS = ("PCMU", "PCMA", "telephone-event")
_AUDIO_PTS = ("0", "8")


class ServerAgent:
    """The agent of a leg the call server terminates itself (music on hold,
    conference): what a Leg needs, .gw.media and .gw.app; events unused."""

    def __init__(self, app, media):
        self.gw = self
        self.app = app
        self.media = media

    def leg_event(self, leg, event, value):
        pass


class Leg:
    def __init__(self, agent, rtp, outgoing):
        self.agent = agent
        self.rtp = rtp
        self.outgoing = outgoing
        self.session = None
        self.sdp_id = agent.gw.app.rng.randbelow(0x7FFFFFFF) + 1
        self.sdp_version = 0
        self.held = False          # we put the far end on hold
        self.remote_hold = False   # the far end put us on hold
        self.media_on = False      # frames flow between the port and this leg
        self.consult = False       # created by a consultation dial (flash)
        self.waiting = False       # an incoming call announced by call waiting
        self.refer_sub = None      # transferee: the REFER this leg's INVITE carries out
        self.replaces_leg = None   # transferee: the leg the transfer will replace
        self.recall = False        # transferor: rung back after a failed transfer
        self.number = None
        self.name = None
        self.status = None
        self.state = "new"
        self.idle = None           # inactivity.IdleCheck while RTP is watched

    def __repr__(self):
        return "<Leg %s %s>" % (self.number, self.state)

    def _now(self):
        return self.agent.gw.app.clock.now()

    def _host(self):
        return self.agent.gw.media.host

    def offer(self, direction="sendrecv"):
        self.sdp_version += 1
        s = _sdp.offer(CODECS, self._host(), self.rtp.port, self.sdp_id, self.sdp_version,
                       direction)
        return s.serialize()

    def answer_for(self, remote, direction="sendrecv"):
        self.sdp_version += 1
        a = _sdp.answer(remote, CODECS, self._host(), self.rtp.port, direction,
                        self.sdp_id, self.sdp_version)
        return a.serialize()

    def connect_remote(self):
        """Point RTP at the far end; False when its SDP has no usable audio."""
        s = self.session
        rs = s.remote_sdp if s is not None else None
        if rs is None or self.rtp is None:
            return False
        for m in rs.media:
            if m.kind != "audio" or m.port == 0:
                continue
            c = m.connection
            if c is None:
                continue
            pt = None
            ev = None
            rm = m.rtpmap
            for f in m.fmts:
                if f in _AUDIO_PTS and pt is None:
                    pt = int(f)
                elif f in rm and rm[f][0].lower() == "telephone-event":
                    try:
                        ev = int(f)
                    except ValueError:
                        pass
            if pt is None:
                continue
            self.remote_hold = _sdp.is_hold(m)
            self.rtp.set_remote(c[2], m.port, pt, ev)
            return True
        return False

    def hold(self):
        if self.session is None or self.held:
            return False
        if self.session.reinvite(self.offer("sendonly"), self._now(), self._reinvite_done):
            self.held = True
            self.media_on = False
            return True
        return False

    def resume(self):
        if self.session is None or not self.held:
            return False
        if self.session.reinvite(self.offer("sendrecv"), self._now(), self._reinvite_done):
            self.held = False
            self.media_on = True
            return True
        return False

    def _reinvite_done(self, status):
        if 200 <= status < 300:
            self.connect_remote()

    def hangup(self):
        if self.session is not None:
            self.session.hangup(self._now())
        self.state = "ended"
        self.media_on = False
        self._refer_final(487)

    def _refer_final(self, status):
        sub = self.refer_sub
        if sub is not None:
            self.refer_sub = None
            sub.final(status, self._now())

    def close(self):
        self.media_on = False
        if self.rtp is not None:
            self.agent.gw.media.close(self.rtp)
            self.rtp = None

    # -- session owner callbacks -> agent
    def on_progress(self, s, status):
        self.status = status
        self.state = "alerting"
        self.agent.leg_event(self, "progress", status)

    def on_answer(self, s):
        self.state = "active"
        self._refer_final(200)
        self.agent.leg_event(self, "answer", None)

    def on_failed(self, s, status):
        self.status = status
        self.state = "ended"
        self._refer_final(status)
        self.agent.leg_event(self, "failed", status)

    def on_refer(self, s, sub):
        fn = getattr(self.agent, "refer_in", None)
        if fn is None:
            return 603
        return fn(self, sub)

    def on_replace(self, s, sreq):
        fn = getattr(self.agent, "replace", None)
        if fn is None:
            sreq.respond(603)
            return
        fn(self, sreq)

    def on_request(self, s, sreq):
        """An in-dialog INFO: a DTMF key to regenerate on the line."""
        from firmware.media.dtmf import parse_info, DtmfError
        req = sreq.request
        try:
            key, ms = parse_info(req.content_type, req.body)
        except DtmfError as e:
            sreq.respond(e.status, str(e))
            return
        sreq.respond(200)
        self.on_dtmf(key, ms)

    def on_dtmf(self, key, ms=None):
        self.agent.leg_event(self, "dtmf", key)

    def on_confirmed(self, s):
        self.agent.leg_event(self, "confirmed", None)

    def on_ended(self, s, reason):
        self.state = "ended"
        self.media_on = False
        self._refer_final(487)
        self.agent.leg_event(self, "ended", reason)

    def on_offer(self, s, remote):
        if remote is None:
            return self.offer("sendonly" if self.held else "sendrecv")
        try:
            body = self.answer_for(remote, "sendonly" if self.held else "sendrecv")
        except SipError:
            return None
        self.connect_remote()
        self.agent.leg_event(self, "reoffer", self.remote_hold)
        return body
