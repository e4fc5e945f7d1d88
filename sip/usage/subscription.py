"""Generic event subscriptions (RFC 6665), sans-I/O: the subscriber and the
notifier, for message summaries (RFC 3842), dialog state (RFC 4235) and
presence.  The implicit REFER subscription is in sip/usage/refer.py.

Subscriber
    sub = Subscriber(agent, event, target, from_uri, dest, owner,
                     expires=3600, accept=None, auth=None, retry_ms=60000)
    sub.start(now)     SUBSCRIBE; refreshed in the dialog at a random
                       REFRESH_MIN_PCT..REFRESH_MAX_PCT of the granted expiry
    sub.stop(now)      unsubscribe (Expires: 0); nothing is retried after it
    sub.gate = fn(sreq) -> None | (status, reason)   asked before each NOTIFY
                       is taken (e.g. only the notifier's address: 403 else)
    sub.state          "idle", "subscribing", "pending", "active",
                       "terminating" (after stop), "terminated" or "failed";
                       sub.reason, sub.status
    owner.on_notify(sub, state, body, content_type)   each NOTIFY (answered 200)
    owner.on_state(sub)                               after each change of state
  The dialog comes from the first NOTIFY or the 2xx, whichever arrives
  first; NOTIFYs from another fork get 481, which ends that fork.  After a
  2xx, a NOTIFY must arrive within TIMER_N_MS.  A failure (a final >= 300
  after digest and 423 handling, a 408, no NOTIFY, a refresh answered 481)
  and a NOTIFY terminated with reason deactivated or timeout start a new
  subscription: at once for those two reasons (RFC 6665 §4.1.3), else
  after retry_ms (or the notifier's retry-after); rejected, noresource and
  invariant are final, and retry_ms None never retries.

Notifier
    Notifier.check(sreq, events, min_expires, max_expires) -> granted | None
                       a new SUBSCRIBE: 489 Bad Event with Allow-Events for
                       an unknown package, 423 with Min-Expires below the
                       minimum (None: already answered); Expires is clamped
                       to max_expires (absent: max_expires)
    n = Notifier.accept(agent, sreq, owner, now, granted, body, content_type,
                        min_expires, max_expires)
                       200 with Expires and Contact, the dialog, then the
                       first NOTIFY at once; None when MAX_EVENT_SUBSCRIPTIONS
                       are in use (503 with Retry-After)
    n.notify(body, content_type, now)   a change of state
    n.terminate(now, reason="noresource")
    owner.on_ended(n, reason)           "timeout" (not refreshed), "unsubscribed",
                                        "rejected" (a NOTIFY failed), or the
                                        reason given to terminate()
  One NOTIFY is outstanding at a time; changes meanwhile are merged into
  the next one (the latest state wins).  A refresh in the dialog gets 200
  and a NOTIFY of the current state; Expires: 0 ends the subscription.

Both register in agent.event_subs (bound MAX_EVENT_SUBSCRIPTIONS); the agent
routes in-dialog SUBSCRIBE and NOTIFY requests to them.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from sip.dialog import Dialog, DialogError
from sip.digest import DigestClient
from sip.errors import SipError
from sip.usage.agent import MAX_AUTH_TRIES

MAX_EVENT_SUBSCRIPTIONS = const(256)
TIMER_N_MS = const(32000)            # 64 * T1: the NOTIFY after a 2xx
REFRESH_MIN_PCT = const(80)
REFRESH_MAX_PCT = const(95)
MIN_REFRESH_MS = const(5000)
_RETRY_AT_ONCE = ("deactivated", "timeout")
_FINAL = ("rejected", "noresource", "invariant")


def parse_subscription_state(value):
    """'active;expires=60' -> ("active", {"expires": "60"}); None when absent."""
    if not value:
        return None
    parts = value.split(";")
    params = {}
    for p in parts[1:]:
        e = p.find("=")
        if e < 0:
            params[p.strip().lower()] = ""
        else:
            params[p[:e].strip().lower()] = p[e + 1:].strip().strip('"')
    return (parts[0].strip().lower(), params)


def _int(text, default=None):
    if text is not None and text.isdigit():
        return int(text)
    return default


def _expires(msg, default):
    v = msg.get("expires")
    if v is None:
        return default
    v = v.strip()
    return int(v) if v.isdigit() else None


def _event(msg):
    return (msg.get("event") or "").split(";")[0].strip().lower()


class Subscriber:
    usage = "subscriber"

    def __init__(self, agent, event, target, from_uri, dest, owner, expires=3600,
                 accept=None, auth=None, retry_ms=60000, transport="UDP"):
        self.ua = agent
        self.event = event
        self.target = target
        self.from_uri = from_uri
        self.dest = dest
        self.owner = owner
        self.expires = expires
        self.accept = accept
        self.auth = auth
        self.retry_ms = retry_ms
        self.transport = transport
        self.state = "idle"
        self.reason = None
        self.status = None
        self.granted = None
        self.dialog = None
        self.request = None       # the initial SUBSCRIBE as last sent
        self.timer = None
        self.notified = False     # a NOTIFY since the last 2xx
        self.stopping = False
        self.tries = 0
        self.notifies = 0
        self.gate = None

    def __repr__(self):
        return "<Subscriber %s %s %s>" % (self.event, self.target, self.state)

    # -- the owner's calls
    def start(self, now):
        ua = self.ua
        self.stopping = False
        if self not in ua.event_subs:
            if len(ua.event_subs) >= MAX_EVENT_SUBSCRIPTIONS:
                ua.count("subscription_overflow")
                self._set("failed", 503, "no room")
                return False
            ua.event_subs.append(self)
        if self.dialog is not None:
            return self._refresh(now, self.expires)
        self.tries = 0
        req = ua.new_request("SUBSCRIBE", self.target, self.from_uri, self.target,
                             contact_user=_user_of(self.from_uri),
                             headers=self._headers(self.expires), transport=self.transport)
        self.request = req
        self._set("subscribing")
        ua.count("subscribes_out")
        ua.send(req, self.dest, self._initial_response, now, self.transport)
        return True

    def stop(self, now):
        self.stopping = True
        self._cancel_timer()
        if self.dialog is not None and self.state in ("pending", "active"):
            # the final NOTIFY ends it, or TIMER_N_MS without one
            if self._refresh(now, 0):
                self._set("terminating")
                self._arm(now, TIMER_N_MS, self._gone)
                return
        self._end("terminated", None, "unsubscribed")

    def _gone(self, now):
        self.timer = None
        self._end("terminated", None, "unsubscribed")

    # -- requests
    def _headers(self, expires):
        hs = [("Event", self.event), ("Expires", str(expires))]
        if self.accept:
            hs.append(("Accept", self.accept))
        return hs

    def _refresh(self, now, expires):
        ua = self.ua
        hs = self._headers(expires)
        if self.dialog.local_contact is None:     # else the dialog adds its own
            hs.append(("Contact", ua.contact(_user_of(self.from_uri))))
        try:
            ua.in_dialog(self.dialog, "SUBSCRIBE",
                         lambda r, n, e=expires: self._refresh_response(r, n, e), now,
                         headers=hs)
        except SipError as e:
            ua.error("SUBSCRIBE refresh", e)
            return False
        ua.count("subscribes_out")
        return True

    def _initial_response(self, resp, now):
        st = resp.status
        if st < 200 or self.state in ("terminated", "failed") or self.stopping:
            return
        if st < 300:
            self.status = st
            self._granted(resp, now)
            if self.dialog is None:
                try:
                    d, new = self.ua.dialogs.on_uac_response(self.request, resp)
                except DialogError:
                    d = None
                if d is None:
                    self._fail(now, 500, "no dialog")
                    return
                self._own(d)
            if not self.notified:
                self._arm(now, TIMER_N_MS, self._no_notify)
            return
        if st in (401, 407) and self.auth is not None and self.tries < MAX_AUTH_TRIES:
            ch = resp.get_all("www-authenticate" if st == 401 else "proxy-authenticate")
            if ch and self._resend(now, ch, st == 407):
                return
        if st == 423:
            m = resp.min_expires
            if m and m > self.expires:
                self.expires = m
                req = self._clone_next(self.request)
                req.set("Expires", str(m))
                self.request = req
                self.ua.send(req, self.dest, self._initial_response, now, self.transport)
                return
        self._fail(now, st, "rejected")

    def _resend(self, now, challenge, is_proxy):
        ua = self.ua
        self.tries += 1
        ua.count("auth_retries")
        req = self._clone_next(self.request)
        try:
            val = DigestClient().authorize("SUBSCRIBE", str(req.uri), challenge,
                                           self.auth[0], self.auth[1], ua.rng)
        except SipError:
            return False
        if val is None:
            return False
        req.add("Proxy-Authorization" if is_proxy else "Authorization", val)
        self.request = req
        ua.send(req, self.dest, self._initial_response, now, self.transport)
        return True

    def _clone_next(self, req):
        from sip.usage.agent import clone
        r = clone(req)
        r.remove("via")
        r.remove("authorization")
        r.remove("proxy-authorization")
        r.add("Via", self.ua.via(self.transport), True)
        r.set("CSeq", "%d SUBSCRIBE" % (req.cseq.num + 1))
        return r

    def _refresh_response(self, resp, now, expires):
        st = resp.status
        if st < 200 or expires == 0 or self.dialog is None:
            return
        if st < 300:
            self._granted(resp, now)
            return
        if st == 423 and resp.min_expires and resp.min_expires > self.expires:
            self.expires = resp.min_expires
            self._refresh(now, self.expires)
            return
        self._fail(now, st, "refresh rejected")

    def _granted(self, resp, now):
        g = _expires(resp, self.expires)
        if g is None or g > self.expires:
            g = self.expires
        self.granted = g
        pct = REFRESH_MIN_PCT + self.ua.rng.randbelow(REFRESH_MAX_PCT - REFRESH_MIN_PCT + 1)
        if self.notified:
            self._arm(now, max(MIN_REFRESH_MS, g * 10 * pct), self._refresh_due)

    def _refresh_due(self, now):
        self.timer = None
        if self.dialog is not None and not self.stopping:
            self._refresh(now, self.expires)

    def _no_notify(self, now):
        self.timer = None
        if not self.notified:
            self._fail(now, 408, "no NOTIFY")

    # -- NOTIFY (the agent routes them here)
    def matches(self, req):
        """A NOTIFY for this subscription that created no dialog yet."""
        r = self.request
        t = req.to
        return (r is not None and self.dialog is None and req.call_id == r.call_id and
                t is not None and t.tag == r.from_.tag)

    def receive_notify(self, sreq, now):
        req = sreq.request
        if self.gate is not None:
            bad = self.gate(sreq)
            if bad is not None:
                sreq.respond(bad[0], bad[1])
                return
        if _event(req) != self.event.split(";")[0].strip().lower():
            sreq.respond(489, "Bad Event")
            return
        ss = parse_subscription_state(req.get("subscription-state"))
        if ss is None:
            sreq.respond(400, "Missing Subscription-State")
            return
        if self.dialog is None:
            try:
                d = Dialog.from_notify(self.request, req)
                self.ua.dialogs.add(d)
            except (DialogError, SipError):
                self.ua.count("dialog_overflow")
                sreq.respond(500, "No Dialog Resources")
                return
            self._own(d)
        else:
            bad = self.dialog.receive_request(req)
            if bad is not None:
                sreq.respond(bad[0], bad[1])
                return
            self.dialog.refresh_target(req)
        sreq.respond(200)
        self.notifies += 1
        self.ua.count("notifies_in")
        state, params = ss
        first = not self.notified
        self.notified = True
        if state in ("active", "pending"):
            if self.state != state:
                self._set(state, self.status)
            e = _int(params.get("expires"))
            if first and self.granted is not None:
                self._granted_again(now, e)
            elif e is not None and self.granted is not None and e < self.granted:
                self._granted_again(now, e)
        callback = getattr(self.owner, "on_notify", None)
        if callback is not None:
            callback(self, state, req.body, req.content_type)
        if state == "terminated":
            reason = params.get("reason")
            self._end("terminated", None, "unsubscribed" if self.stopping else
                      (reason or "terminated"))
            if not self.stopping:
                self._retry(now, reason, _int(params.get("retry-after")))

    def _granted_again(self, now, expires):
        if expires is not None:
            self.granted = min(self.granted, expires)
        pct = REFRESH_MIN_PCT + self.ua.rng.randbelow(REFRESH_MAX_PCT - REFRESH_MIN_PCT + 1)
        self._arm(now, max(MIN_REFRESH_MS, self.granted * 10 * pct), self._refresh_due)

    # -- state
    def _own(self, d):
        d.user = self
        self.dialog = d

    def _fail(self, now, status, reason):
        self._end("failed", status, reason)
        if not self.stopping:
            self._retry(now, None, None)

    def _retry(self, now, reason, retry_after):
        if self.retry_ms is None or reason in _FINAL:
            return
        if reason in _RETRY_AT_ONCE:
            ms = 0                   # RFC 6665 §4.1.3: subscribe again at once
        elif retry_after is not None:
            ms = retry_after * 1000
        else:
            ms = self.retry_ms
        self._arm(now, ms, self._restart)

    def _restart(self, now):
        self.timer = None
        if not self.stopping:
            self.start(now)

    def _end(self, state, status, reason):
        self._cancel_timer()
        d = self.dialog
        if d is not None:
            self.ua.dialogs.remove(d)
            self.dialog = None
        self.notified = False
        self.granted = None
        if self in self.ua.event_subs:
            self.ua.event_subs.remove(self)     # start() adds it again
        self.reason = reason
        self._set(state, status)

    def _set(self, state, status=None, reason=None):
        self.state = state
        if status is not None:
            self.status = status
        if reason is not None:
            self.reason = reason
        fn = getattr(self.owner, "on_state", None)
        if fn is not None:
            fn(self)

    def _arm(self, now, ms, fn):
        self._cancel_timer()
        self.timer = self.ua.later(now, ms, fn)

    def _cancel_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Notifier:
    usage = "notifier"

    def __init__(self, agent, owner, event, min_expires, max_expires):
        self.ua = agent
        self.owner = owner
        self.event = event
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.dialog = None
        self.state = "active"
        self.expires_at = None
        self.timer = None
        self.body = b""
        self.content_type = None
        self.pending = False       # a NOTIFY is outstanding
        self.dirty = False         # the state changed meanwhile
        self.final = None          # the terminated reason once ending
        self.ended_reason = None   # what owner.on_ended hears, when not self.final
        self.notifies = 0

    def __repr__(self):
        return "<Notifier %s %s>" % (self.event, self.state)

    @staticmethod
    def check(sreq, events, min_expires, max_expires):
        req = sreq.request
        ev = _event(req)
        if ev not in events:
            sreq.respond(489, "Bad Event", (("Allow-Events", ", ".join(events)),))
            return None
        e = _expires(req, max_expires)
        if e is None:
            sreq.respond(400, "Bad Expires")
            return None
        if 0 < e < min_expires:
            sreq.respond(423, None, (("Min-Expires", str(min_expires)),))
            return None
        return min(e, max_expires)

    @staticmethod
    def accept(agent, sreq, owner, now, granted, body, content_type, min_expires,
               max_expires):
        if len(agent.event_subs) >= MAX_EVENT_SUBSCRIPTIONS:
            agent.count("subscription_overflow")
            sreq.respond(503, None, (("Retry-After", "30"),))
            return None
        req = sreq.request
        n = Notifier(agent, owner, _event(req), min_expires, max_expires)
        r = sreq.respond(200, None, (("Expires", str(granted)),
                                     ("Contact", agent.contact(req.uri.user or "notifier"))))
        if r is None:
            return None
        try:
            d = Dialog.uas(req, r)
            agent.dialogs.add(d)
        except (DialogError, SipError):
            agent.count("dialog_overflow")
            return None
        d.user = n
        n.dialog = d
        agent.event_subs.append(n)
        agent.count("subscribes_in")
        n.body = body
        n.content_type = content_type
        if granted == 0:
            n.terminate(now, "timeout")     # a fetch: one NOTIFY, then done
            return n
        n._expire_in(now, granted)
        n._send(now)
        return n

    def notify(self, body, content_type, now):
        if self.final is not None:
            return False
        self.body = body
        self.content_type = content_type
        if self.pending:
            self.dirty = True
        else:
            self._send(now)
        return True

    def terminate(self, now, reason="noresource"):
        if self.final is not None:
            return
        self.final = reason
        self._cancel_timer()
        if self.pending:
            self.dirty = True
        else:
            self._send(now)

    def receive_refresh(self, sreq, now):
        req = sreq.request
        bad = self.dialog.receive_request(req)
        if bad is not None:
            sreq.respond(bad[0], bad[1])
            return
        if _event(req) != self.event:
            sreq.respond(489, "Bad Event")
            return
        e = _expires(req, self.max_expires)
        if e is None:
            sreq.respond(400, "Bad Expires")
            return
        if 0 < e < self.min_expires:
            sreq.respond(423, None, (("Min-Expires", str(self.min_expires)),))
            return
        e = min(e, self.max_expires)
        sreq.respond(200, None, (("Expires", str(e)),))
        self.dialog.refresh_target(req)
        if e == 0:
            self.terminate(now, "timeout")
            self.ended_reason = "unsubscribed"
            return
        self._expire_in(now, e)
        self.notify(self.body, self.content_type, now)

    # -- internals
    def _expire_in(self, now, seconds):
        self._cancel_timer()
        self.expires_at = now + seconds * 1000
        self.timer = self.ua.later(now, seconds * 1000, self._expired)

    def _expired(self, now):
        self.timer = None
        self.ended_reason = "timeout"
        self.terminate(now, "timeout")

    def _send(self, now):
        d = self.dialog
        if d is None:
            return
        if self.final is not None:
            state = "terminated;reason=%s" % self.final
        else:
            left = max(1, (self.expires_at - now) // 1000) if self.expires_at else 1
            state = "%s;expires=%d" % (self.state, left)
        hs = [("Event", self.event), ("Subscription-State", state)]
        if d.local_contact is None:               # else the dialog adds its own
            hs.append(("Contact", self.ua.contact(d.local_uri.uri.user or "notifier")))
        self.pending = True
        self.dirty = False
        final = self.final is not None
        try:
            self.ua.in_dialog(d, "NOTIFY", lambda r, n, f=final: self._response(r, n, f), now,
                              self.body, self.content_type, hs)
        except SipError as e:
            self.ua.error("NOTIFY", e)
            self._finish("rejected")
            return
        self.notifies += 1
        self.ua.count("notifies_out")

    def _response(self, resp, now, final):
        if resp.status < 200:
            return
        self.pending = False
        if final:
            self._finish(self.ended_reason or self.final)
            return
        if resp.status >= 300:
            self._finish("rejected")
            return
        if self.dirty:
            self._send(now)

    def _finish(self, reason):
        self._cancel_timer()
        d = self.dialog
        if d is None:
            return
        self.ua.dialogs.remove(d)
        self.dialog = None
        self.state = "terminated"
        if self in self.ua.event_subs:
            self.ua.event_subs.remove(self)
        fn = getattr(self.owner, "on_ended", None)
        if fn is not None:
            fn(self, reason)

    def _cancel_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def _user_of(uri):
    i = uri.find(":")
    j = uri.find("@")
    if i < 0 or j < 0:
        return "subscriber"
    return uri[i + 1:j]
