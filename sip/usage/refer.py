"""REFER (RFC 3515) with its implicit subscription, sans-I/O.

Transferor: s.refer(refer_to, referred_by, on_event, now) sends the REFER in
s's dialog; on_event(kind, status) gets "accepted" (2xx), then exactly one of
"rejected" (final >= 300, or 408), "final" (a NOTIFY with a final sipfrag
status, or the subscription terminated without one: status < 200) or
"timeout" (nothing final within REFER_WAIT_MS).

Transferee: the agent calls owner.on_refer(s, sub); a callable answer
accepts: 202, NOTIFY "SIP/2.0 100 Trying" (Event: refer;id=<CSeq>), then the
owner places the new INVITE (sub.target, sub.replaces, sub.referred_by) and
calls sub.final(status, now, phrase=None) with its outcome (NOTIFY with
Subscription-State: terminated; phrase: the sipfrag's reason phrase, e.g. a
call park's "Parked At 701", default the status's own).  sub.on_expire (optional) runs when the
subscription outlives REFER_EXPIRES_S (then NOTIFY 487).
"""
from sip.errors import SipError
from sip.usage.agent import (ignore as _ignore, REFER_EXPIRES_S, REFER_WAIT_MS,
                             TERMINATED, _SIPFRAG)


class ReferClient:
    """Transferor side of one REFER: its transaction and the NOTIFYs of the
    implicit subscription, until one outcome (on_event) is reported."""

    def __init__(self, session, on_event):
        self.session = session
        self.on_event = on_event
        self.done = False
        self.accepted = False
        self.last = None
        self.timer = None

    def send(self, refer_to, referred_by, now):
        s = self.session
        ua = s.ua
        hs = [("Refer-To", "<%s>" % refer_to)]
        if referred_by:
            hs.append(("Referred-By", "<%s>" % referred_by))
        try:
            ua.in_dialog(s.dialog, "REFER", self._response, now, headers=hs)
        except SipError:
            ua.count("errors")
            return False
        ua.count("refers_out")
        self.timer = ua.later(now, REFER_WAIT_MS, self._timeout)
        return True

    def _response(self, resp, now):
        st = resp.status
        if st < 200 or self.done:
            return
        if st < 300:
            self.accepted = True
            if self.on_event is not None:
                self.on_event("accepted", st)
            return
        self._finish("rejected", st)

    def notified(self, status, terminated):
        if self.done:
            return
        self.last = status
        if status >= 200:
            self._finish("final", status)
        elif terminated:
            self._finish("final", status)

    def _timeout(self, now):
        self.timer = None
        if not self.done:
            self._finish("timeout", 408)

    def stop(self):
        """The dialog ended: report nothing more."""
        self.done = True
        self._cancel_timer()
        if self.session.refer_out is self:
            self.session.refer_out = None

    def _cancel_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _finish(self, kind, status):
        self.stop()
        if self.on_event is not None:
            self.on_event(kind, status)


class ReferSubscription:
    """Notifier side of the implicit refer subscription (RFC 3515 §2.4.4):
    NOTIFYs with message/sipfrag bodies in the REFER's dialog."""

    def __init__(self, ua, session, event_id, target, replaces, referred_by):
        self.ua = ua
        self.session = session
        self.event_id = event_id
        self.target = target              # Refer-To URI, its headers removed
        self.replaces = replaces          # unescaped Replaces value or None
        self.referred_by = referred_by
        self.done = False
        self.timer = None
        self.started = None
        self.on_expire = None
        self.last = None

    def __repr__(self):
        return "<ReferSubscription %s %s>" % (self.target, "done" if self.done else "active")

    def start(self, now):
        self.started = now
        self.timer = self.ua.later(now, REFER_EXPIRES_S * 1000, self._expire)

    def notify(self, status, now, final=False, reason="noresource", phrase=None):
        ua = self.ua
        self.last = status
        d = self.session.dialog
        if final:
            state = "terminated;reason=%s" % reason
        else:
            left = REFER_EXPIRES_S - (now - (self.started or now)) // 1000
            state = "active;expires=%d" % max(1, left)
        if d is None or d.state == TERMINATED:
            ua.count("no_dialog")
            return False
        from sip.errors import reason_phrase
        body = "SIP/2.0 %d %s\r\n" % (status, phrase or reason_phrase(status))
        try:
            ua.in_dialog(d, "NOTIFY", _ignore, now, body, _SIPFRAG,
                         (("Event", "refer;id=%d" % self.event_id), ("Subscription-State", state)))
        except SipError:
            ua.count("errors")
            return False
        ua.count("notifies_out")
        return True

    def final(self, status, now, reason="noresource", phrase=None):
        """The new INVITE ended with `status`: last NOTIFY, subscription over."""
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.notify(status, now, True, reason, phrase)
        if self in self.ua.subscriptions:
            self.ua.subscriptions.remove(self)
        if self.session.refer_in is self:
            self.session.refer_in = None

    def _expire(self, now):
        self.timer = None
        if self.done:
            return
        fn = self.on_expire
        self.on_expire = None
        if fn is not None:
            try:
                fn()
            except Exception as e:
                self.ua.error("refer expiry", e)
        self.final(487, now, "timeout")
