"""Automatic session cut-off of the call server's calls (issue 14, feature
13): RFC 4028 session timers, refreshed and enforced, and a maximum call
duration.

    services convergence-services call-server {
        session-timer { session-expires 1800; min-se 90; }  # 0: only when the caller asks
        max-call-duration 0;                                 # seconds, 0: unlimited
    }

An INVITE whose Session-Expires is below min-se gets 422 with Min-SE
(§6); a malformed one gets 400.  At answer the call's interval is the
caller's Session-Expires capped by session-expires (never below the
caller's Min-SE), or session-expires when the caller asked for none.  The
caller refreshes when it supports timers (Supported/Require: timer) and did
not ask for refresher=uas; its 200 then carries Require: timer.  Otherwise
the call server refreshes: every interval/2 it re-INVITEs each SIP leg with
its current SDP (an unchanged offer), and a leg that answers the refresh
with a failure (408, 481, ...) ends the call.  Any re-INVITE relayed
through the call (the caller's refresh) restarts the interval.  With no
refresh by interval - min(32, interval/3) (§10) the call ends.

Every cut-off ends the call on both sides with BYE carrying a Reason
header (RFC 3326) that states why; `show calls` loses the call and the
reason is logged.  One TU timer per call (the earliest deadline), so the
bound is the call table's.
"""
from firmware.callserver.media_config import RFC_MIN_SE


def _delta(value):
    """The delta-seconds of a Session-Expires / Min-SE value and its params
    ("1800;refresher=uac"): (seconds, refresher or None); ValueError when bad."""
    parts = value.split(";")
    secs = int(parts[0].strip())
    if secs < 1:
        raise ValueError(value)
    refresher = None
    for p in parts[1:]:
        k, _, v = p.strip().partition("=")
        if k.strip().lower() == "refresher":
            refresher = v.strip().lower()
    return secs, refresher


def _supports_timer(req):
    for name in ("supported", "require"):
        for v in req.get_all(name):
            for tok in v.split(","):
                if tok.strip().lower() == "timer":
                    return True
    return False


def check_invite(sreq, settings):
    """Session-Expires of a new INVITE: None when acceptable, else refused
    here (422 with our Min-SE, 400 for a malformed value) and True."""
    req = getattr(sreq, "request", None)
    if req is None:
        return None                         # an analog port's in-process call
    v = req.get("session-expires") or req.get("x")
    if v is None:
        return None
    try:
        secs, _ = _delta(v)
    except ValueError:
        sreq.respond(400, "Bad Session-Expires")
        return True
    cut = settings.cutoff
    if secs < cut.min_se:
        sreq.respond(422, "Session Interval Too Small", (("Min-SE", str(cut.min_se)),))
        return True
    return None


class Cutoff:
    """The cut-off timers of one connected call (b2bua Call)."""
    __slots__ = ("call", "interval", "refresher", "deadline", "next_refresh", "end_at",
                 "timer", "refreshes", "pending")

    def __init__(self, call, settings):
        self.call = call
        self.interval = 0           # seconds; 0: no session timer
        self.refresher = None       # "uac" (the caller) | "uas" (the call server)
        self.deadline = None        # ms: the session expires without a refresh
        self.next_refresh = None    # ms: the call server refreshes (refresher uas)
        self.end_at = None          # ms: max-call-duration reached
        self.timer = None
        self.refreshes = 0
        self.pending = 0            # refresh re-INVITEs still unanswered
        cut = settings.cutoff
        req = getattr(call.a, "request", None)
        if req is not None:
            asked = None
            min_se = RFC_MIN_SE
            v = req.get("session-expires") or req.get("x")
            try:
                if v is not None:
                    asked = _delta(v)
                m = req.get("min-se")
                if m is not None:
                    min_se = max(min_se, _delta(m)[0])
            except ValueError:
                asked = None
            se = cut.session_expires
            if asked is not None:
                se = asked[0] if not se else min(asked[0], se)
                se = max(se, min_se)
            if se:
                self.interval = se
                timer = _supports_timer(req)
                self.refresher = "uac" if timer and (asked is None or asked[1] != "uas") else "uas"
        if cut.max_duration:
            self.end_at = call._now() + cut.max_duration * 1000

    def answer_headers(self):
        """Headers of the 200 to the caller (RFC 4028 §9)."""
        if not self.interval:
            return ()
        hs = [("Session-Expires", "%d;refresher=%s" % (self.interval, self.refresher))]
        if self.refresher == "uac":
            hs.append(("Require", "timer"))
        return hs

    def start(self):
        self._refreshed()

    def _refreshed(self):
        now = self.call._now()
        if self.interval:
            ms = self.interval * 1000
            if self.refresher == "uas":
                # our own refresh at ms/2 fails by Timer B (32 s) at the latest:
                # the deadline is only the backstop
                self.next_refresh = now + ms // 2
                self.deadline = now + ms
            else:
                self.next_refresh = None
                self.deadline = now + ms - min(32000, ms // 3)
        self._arm()

    def refreshed(self):
        """A re-INVITE went through the call: the session interval starts again."""
        if self.interval:
            self.refreshes += 1
            self._refreshed()

    def _arm(self):
        self.stop()
        ds = [d for d in (self.deadline, self.next_refresh, self.end_at) if d is not None]
        if not ds:
            return
        call = self.call
        try:
            self.timer = call.b2b.cs.core.call_later(max(0, min(ds) - call._now()), self._fire)
        except Exception:          # TU timer table full: counted; BYE still ends the call
            _count(call, "cutoff_no_timer")

    def stop(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _fire(self, *_):
        self.timer = None
        call = self.call
        if call.state == "ended":
            return
        now = call._now()
        if self.end_at is not None and now >= self.end_at:
            _count(call, "cut_max_duration")
            return cut(call, 200, "Maximum call duration reached")
        if self.deadline is not None and now >= self.deadline:
            _count(call, "cut_session_expired")
            return cut(call, 408, "Session timer expired")
        if self.next_refresh is not None and now >= self.next_refresh:
            self.next_refresh = None
            self._refresh()
        self._arm()

    def _refresh(self):
        """The call server is the refresher: an unchanged offer to each SIP leg."""
        from firmware.voice.handover import is_local
        call = self.call
        legs = [s for s in (call.a, call.b) if s is not None and not is_local(s)]
        self.pending = len(legs)
        for s in legs:
            def done(status, s=s):
                if call.state == "ended":
                    return
                if 200 <= status < 300 or status == 491:      # 491: a refresh crossed ours
                    self.pending -= 1
                    if self.pending == 0:
                        self.refreshed()
                    return
                _count(call, "cut_refresh_failed")
                cut(call, status, "Session refresh failed")
            if not s.reinvite(s.local_sdp, call._now(), done):
                self.pending -= 1
        if not legs:
            self.refreshed()


def _count(call, name):
    c = call.b2b.counters
    c[name] = c.get(name, 0) + 1


def cut(call, cause, text):
    """End a connected call on both sides with a stated reason (RFC 3326)."""
    reason = (("Reason", 'SIP;cause=%d;text="%s"' % (cause, text)),)
    now = call._now()
    for s in (call.a, call.b):
        if s is None:
            continue
        if getattr(s, "dialog", None) is not None:
            s.bye(now, reason)
        else:
            s.bye(now)                   # an analog port in process: no SIP to carry it
    call.b2b.cs.app.log.write("info", "call %d cut off: %s" % (call.id, text))
    call.end(text.lower())
