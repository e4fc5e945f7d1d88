"""Conference calls mixed by the appliance (issue 14, feature 7): up to
MAX_MEMBERS parties, SIP phones and analog (FXS) phones alike.

    set services convergence-services call-server conference-extension 7000
    set services convergence-services feature-codes conference 46

Two ways in:
  * the station manual's code: a station with calls (one held, one
    talking, or more) dials 46.  The call server answers that INVITE with
    the bridge's RTP, re-INVITEs the other party of each of the station's
    connected calls to the bridge, and ends the station's own old legs
    (BYE): the station talks to everyone through the 46 call.
  * ad hoc (the way of phones with a "conference" key, RFC 4579 style): the
    phone INVITEs the conference extension (it joins the conference it
    owns, or starts one), and REFERs each party of its calls to the
    conference extension (Refer-To: sip:7000@domain).  The call server acts
    for the referred party (it owns that dialog as a B2BUA): it re-INVITEs it
    to the bridge, NOTIFYs the result (sipfrag 200, or the failure), and
    ends the referrer's old leg LINGER_MS later unless the referrer hung up.
    The order does not matter: a REFER before the referrer's own INVITE
    starts the conference, and the INVITE then joins it.

Media: every member has an RTP session of the call server's (firmware/
media/rtp.py server_media) whose frames go into the member's jitter buffer
of a ConferenceMixer (firmware/media/mixer.py: G.711 tables, one buffer per
member, allocated when the mixer is made; mixers are pooled, at most
MAX_CONFERENCES).  Every 20 ms one task mixes each conference and sends
each member the sum of the others.

When a member leaves (BYE, or its re-INVITE refused) and two are left, the
conference collapses to a plain call between them: a B2BUA call (firmware/
callserver/b2bua.py) takes both dialogs and the call server re-INVITEs each
with the other's SDP (third-party call control, RFC 3725 flow I), so their
media flows phone to phone again and the bridge is released.  One member
left alone is hung up.

Refusals: a 46 without a connected call 403 "No Call To Conference"; more
parties than MAX_MEMBERS 486 "Conference Full"; no free conference 503
"Conference Resources Busy"; an INVITE to the conference extension without
an SDP offer 488; from a trunk caller the extension is not a destination.
`show call-server conferences` lists the conferences and their members.
"""
from firmware.compat import const
from firmware.media.leg import Leg, ServerAgent
from firmware.media.mixer import ConferenceMixer, MAX_MEMBERS
from firmware.callserver import features
from firmware.callserver.config import callserver_view, no_args
from firmware.media import inactivity

MAX_CONFERENCES = const(3)       # conferences at once (x MAX_MEMBERS RTP sessions)
TICK_MS = const(20)
LINGER_MS = const(4000)          # a referrer that does not hang up is hung up after this
CONFIRMED = "confirmed"


def of(cs):
    c = getattr(cs, "conferences", None)
    if c is None:
        c = cs.conferences = Conferences(cs)
    return c


def _side(call, s):
    """(station of s, the other session, its station, its number, its name) in call."""
    if s is call.a:
        return (call.caller, call.b, call.callee, call.number, None)
    return (call.callee, call.a, call.caller, call.caller_num, call.caller_name)


class Member:
    """One party: its session's owner while it is in the conference."""

    def __init__(self, conf, session, station, number, name):
        self.conf = conf
        self.session = session
        self.station = station
        self.number = number or "anonymous"
        self.name = name
        self.leg = None
        self.slot = -1
        self.state = "joining"        # joining | in | gone
        self.joined = conf.cs.now()
        self.idle = inactivity.IdleCheck(self.joined)

    # -- the session's owner callbacks (sip/usage/agent.py)
    def on_ended(self, s, reason):
        self.conf.left(self, reason)

    def on_offer(self, s, sdp):
        leg = self.leg
        if leg is None:
            return None
        if sdp is None:
            return leg.offer()
        try:
            body = leg.answer_for(sdp)
        except Exception:
            return None
        leg.connect_remote()
        return body

    def on_request(self, s, sreq):
        sreq.respond(200)            # INFO: the bridge takes no DTMF

    def on_confirmed(self, s):
        pass


class Conference:
    def __init__(self, confs, cid, owner, mixer):
        self.confs = confs
        self.cs = confs.cs
        self.id = cid
        self.owner = owner            # the Station that started it
        self.members = []
        self.mixer = mixer
        self.started = confs.cs.now()
        self.peak = 0
        self.ended = False

    def full(self, more=1):
        return len(self.members) + more > MAX_MEMBERS

    def _member(self, session, station, number, name):
        confs = self.confs
        mm = confs.media()
        rtp = mm.open()
        if rtp is None:
            return None
        m = Member(self, session, station, number, name)
        m.leg = Leg(ServerAgent(self.cs.app, mm), rtp, False)
        m.leg.session = session
        self.members.append(m)
        if station is not None:
            b2b = self.cs.b2b
            b2b.active[station.name] = b2b.active.get(station.name, 0) + 1
        return m

    def _in(self, m):
        """m's media is connected: it joins the mix."""
        slot = self.mixer.join()
        if slot < 0 or not m.leg.connect_remote():
            self.drop(m, "no media")
            return False
        m.slot = slot
        m.leg.rtp.jitter = self.mixer.jitter_of(slot)
        m.state = "in"
        n = len([x for x in self.members if x.state == "in"])
        if n > self.peak:
            self.peak = n
        self.confs.counters["joined"] += 1
        self.confs.run()
        return True

    def join_invite(self, sreq, station, number, name):
        """A member's own INVITE (46 or the conference extension): answered
        by the bridge.  The status refused with, or None when answered."""
        from firmware.voice.handover import accept
        if self.full():
            return (486, "Conference Full")
        m = self._member(None, station, number, name)
        if m is None:
            return (503, "Conference Resources Busy")
        s = accept(self.cs.ua, sreq, m)
        m.session = m.leg.session = s
        if s.remote_sdp is None:
            self.drop(m, "no offer")
            s.reject(488, "SDP Offer Required")
            return None
        try:
            body = m.leg.answer_for(s.remote_sdp)
        except Exception:
            self.drop(m, "bad offer")
            s.reject(488)
            return None
        if s.answer(body) is None:
            self.drop(m, "caller gone")
            return None
        self._in(m)
        return None

    def pull(self, call, other, station, number, name, done=None):
        """Move `other` (a party of `call`) into the conference: re-INVITE
        it to the bridge; on success the call is over (its other leg is the
        caller's business) and done(200); else the call goes on, done(status)."""
        m = self._member(other, station, number, name)
        if m is None:
            if done is not None:
                done(503)
            return False

        def answered(status, m=m, call=call, other=other):
            if m.state == "gone":
                return
            if not 200 <= status < 300 or call.state == "ended" or other.state != CONFIRMED:
                self.confs.counters["pull_failed"] += 1
                m.session = None                   # still the call's: not ours to end
                self.drop(m, "refused %d" % status)
                if done is not None:
                    done(status if status >= 300 else 500)
                return
            other.owner = m
            call.end("joined conference %d" % self.id)
            self._in(m)
            if done is not None:
                done(200)

        if not other.reinvite(m.leg.offer("sendrecv"), self.cs.now(), answered):
            m.session = None
            self.drop(m, "busy with another offer")
            if done is not None:
                done(491)
            return False
        return True

    def left(self, m, reason):
        self.drop(m, reason)
        self.settle()

    def drop(self, m, why):
        """Release what m holds (its session is over, or was never ours)."""
        if m.state == "gone":
            return
        m.state = "gone"
        if m in self.members:
            self.members.remove(m)
        if m.slot >= 0:
            self.mixer.leave(m.slot)
            m.slot = -1
        if m.leg is not None:
            if m.leg.rtp is not None:
                m.leg.rtp.jitter = None
            m.leg.close()
        if m.station is not None:
            self.cs.b2b.release_station(m.station)
        self.confs.log("conference %d: %s left (%s)" % (self.id, m.number, why))

    def settle(self):
        """After a member left: two collapse to a plain call, one is hung up."""
        if self.ended:
            return
        live = [m for m in self.members if m.state == "in"]
        if len(self.members) != len(live):
            return                       # someone is still joining: wait
        if len(live) == 2 and self.peak >= 3:
            self.collapse(live[0], live[1])
        elif len(live) <= 1 and self.peak >= 2:
            for m in live:
                s = m.session
                self.drop(m, "alone")
                if s is not None:
                    s.hangup(self.cs.now())
            self.end()

    def collapse(self, x, y):
        """Two members left: a B2BUA call between them, media phone to phone."""
        from firmware.callserver.b2bua import Call, fix_sdp, _public_of
        from firmware.callserver import sessiontimer
        cs = self.cs
        b2b = cs.b2b
        xs, ys = x.session, y.session
        for m in (x, y):
            m.session = None
            self.drop(m, "collapse")
        self.end()
        b2b.next_id += 1
        call = Call(b2b, None, x.station, x.number, x.name, y.station, y.number)
        call.a, call.b, call.legs = xs, ys, [ys]
        call.body = None
        call.from_uri = "sip:%s@%s" % (x.number, cs.core.domain)
        call.to_uri = "sip:%s@%s" % (y.number, cs.core.domain)
        xs.owner = ys.owner = call
        b2b._admit(call, ring=False)
        call.state = "connected"
        call.answered = cs.now()
        call.cutoff = sessiontimer.Cutoff(call, cs.settings)
        call.cutoff.start()
        b2b.changed(call)
        self.confs.counters["collapsed"] += 1
        now = cs.now()

        def fail(status):
            if call.state != "ended":
                for s in (xs, ys):
                    s.hangup(cs.now())
                call.end("collapse failed (%d)" % status)

        def y_done(status):
            if not 200 <= status < 300:
                fail(status)

        def x_done(status):
            if not 200 <= status < 300:
                return fail(status)
            if call.state == "ended":
                return
            if not ys.reinvite(fix_sdp(xs.remote_body, _public_of(xs.flow)), cs.now(), y_done):
                fail(491)

        if not xs.reinvite(fix_sdp(ys.remote_body, _public_of(ys.flow)), now, x_done):
            fail(491)

    def end(self):
        if self.ended:
            return
        self.ended = True
        for m in list(self.members):
            s = m.session
            self.drop(m, "conference ended")
            if s is not None:
                s.hangup(self.cs.now())
        self.confs.ended(self)

    def tick(self):
        mixer = self.mixer
        live = [m for m in self.members if m.state == "in"]
        idle_ms = inactivity.timeout_ms(self.cs.app)
        now = self.cs.now()
        for m in live:
            m.leg.rtp.poll()
            if idle_ms and m.idle.idle(m.leg.rtp, now, idle_ms, m.leg.remote_hold):
                s = m.session
                self.drop(m, "no RTP for %d s" % (idle_ms // 1000))
                if s is not None:
                    inactivity.end(s, now)
                self.settle()
                return                   # the member list changed: mix from the next tick
        mixer.tick()
        for m in live:
            m.leg.rtp.send(mixer.out[m.slot])


class Conferences:
    def __init__(self, cs):
        self.cs = cs
        self.app = cs.app
        self.confs = []
        self.pool = []                # mixers of ended conferences, reused
        self.made = 0                 # mixers allocated (at most MAX_CONFERENCES)
        self.next_id = 0
        self.task = None
        self.counters = {"conferences": 0, "joined": 0, "collapsed": 0, "pull_failed": 0,
                         "refused_full": 0, "refused_busy": 0}

    def media(self):
        from firmware.media.rtp import server_media
        return server_media(self.app, self.cs.ua.host)

    def log(self, text):
        self.app.log.write("info", text)

    def _mixer(self):
        if self.pool:
            return self.pool.pop()
        if self.made >= MAX_CONFERENCES:
            return None
        self.made += 1
        return ConferenceMixer(self.media().law)

    def new(self, owner):
        if len(self.confs) >= MAX_CONFERENCES:
            self.counters["refused_busy"] += 1
            return None
        mixer = self._mixer()
        if mixer is None:
            self.counters["refused_busy"] += 1
            return None
        self.next_id += 1
        c = Conference(self, self.next_id, owner, mixer)
        self.confs.append(c)
        self.counters["conferences"] += 1
        return c

    def ended(self, c):
        if c in self.confs:
            self.confs.remove(c)
            self.pool.append(c.mixer)

    def of_station(self, st):
        """The conference st is in, else the one it started."""
        for c in self.confs:
            for m in c.members:
                if m.station is st and m.state != "gone":
                    return c
        for c in self.confs:
            if c.owner is st:
                return c
        return None

    def run(self):
        if self.task is None or self.task.done():
            self.task = self.app.sched.spawn(self._run(), "conference")

    async def _run(self):
        sched = self.app.sched
        while self.confs:
            for c in list(self.confs):
                c.tick()
            await sched.sleep(TICK_MS)

    # -- ways in
    def invite(self, sreq, number, caller, caller_num, caller_name):
        """B2bua.incoming: an INVITE to the conference extension.  True when taken."""
        s = self.cs.settings
        if caller is None or not number or number != s.conference_ext:
            return False
        c = self.of_station(caller)
        if c is None:
            c = self.new(caller)
            if c is None:
                sreq.respond(503, "Conference Resources Busy")
                return True
        refused = c.join_invite(sreq, caller, caller_num, caller_name)
        if refused is not None:
            self.counters["refused_full"] += refused[0] == 486
            sreq.respond(refused[0], refused[1])
            if not c.members:
                c.end()
        return True

    def code(self, fc):
        """The feature code (46): the station's calls become one conference."""
        st = fc.station
        calls = [c for c in self.cs.b2b.calls
                 if c.state == "connected" and c.b is not None and st in (c.caller, c.callee)]
        if not calls:
            return (403, "No Call To Conference")
        if len(calls) + 1 > MAX_MEMBERS:
            self.counters["refused_full"] += 1
            return (486, "Conference Full")
        c = self.new(st)
        if c is None:
            return (503, "Conference Resources Busy")
        refused = c.join_invite(fc.sreq, st, fc.caller_num, fc.caller_name)
        if refused is not None:
            c.end()
            return refused
        for call in calls:
            mine = call.a if call.caller is st and call.a is not None else call.b
            me, other, other_st, num, name = _side(call, mine)

            def done(status, mine=mine):
                if status == 200:
                    mine.hangup(self.cs.now())     # the station hears everyone on its 46 call

            c.pull(call, other, other_st, num, name, done)
        return features.TAKEN

    def refer(self, call, s, sub):
        """Call.on_refer: a REFER to the conference extension moves the other
        party in.  None when the REFER is not for the conference."""
        ext = self.cs.settings.conference_ext
        if ext is None or _target_number(sub.target) != ext:
            return None
        if call.state != "connected" or call.b is None:
            return 603
        me, other, other_st, num, name = _side(call, s)
        if me is None or other is None or other.state != CONFIRMED:
            return 481
        c = self.of_station(me)
        if c is not None and c.full():
            self.counters["refused_full"] += 1
            return 486
        if c is None:
            c = self.new(me)
            if c is None:
                return 503

        def start(c=c):
            def done(status):
                sub.final(status, self.cs.now())
                if status == 200:
                    self.cs.core.call_later(LINGER_MS, lambda: s.hangup(self.cs.now()))
                elif not c.members:
                    c.end()
            c.pull(call, other, other_st, num, name, done)

        return start

    # -- console
    def show(self):
        head = "Conferences: %d (limit %d, %d parties each)" % (
            len(self.confs), MAX_CONFERENCES, MAX_MEMBERS)
        if not self.confs:
            return head
        from firmware.textfmt import table
        now = self.cs.now()
        out = [head]
        for c in self.confs:
            owner = c.owner.extension if c.owner is not None else "-"
            out.append("Conference %d, started by %s, %d members, %d s" % (
                c.id, owner, len(c.members), (now - c.started) // 1000))
            rows = [("Party", "State", "Seconds", "Sent", "Received", "Late", "Lost")]
            for m in c.members:
                r = m.leg.rtp if m.leg is not None else None
                jb = c.mixer.jb[m.slot] if m.slot >= 0 else None
                rows.append((m.number, m.state, str((now - m.joined) // 1000),
                             str(r.sent if r else 0), str(r.received if r else 0),
                             str(jb.late if jb else 0), str(r.lost if r else 0)))
            out.append(table(rows))
        return "\n".join(out)


def _target_number(uri):
    """The user part of a Refer-To URI (sip:7000@domain;params)."""
    u = uri
    if u.startswith("<"):
        u = u[1:].split(">")[0]
    if ":" not in u:
        return None
    u = u.split(":", 1)[1]
    return u.split("@")[0].split(";")[0] if "@" in u else None


def _code(fc):
    return of(fc.cs).code(fc)


def _claims(cs, number):
    return number == getattr(cs.settings, "conference_ext", None)


features.register("conference", _code, features.ARG_NONE, claims=_claims)


_show = callserver_view(lambda cs: of(cs).show())


def register_commands(app):
    app.commands.register("show call-server conferences", _show,
                          "Show the conferences the appliance mixes and their parties",
                          args=no_args)
