"""The registration client, sans-I/O (RFC 3261 §10.2).

    reg = Registration(agent, user, domain, dest, username=None, password=None,
                       expires=3600, on_state=fn(reg), contact_user=None,
                       contact_params="", transport="UDP")
    reg.start(now) / reg.stop(now)   REGISTER (digest on 401/407); stop
                                     unregisters a registered contact
    reg.state in ("idle", "registering", "registered", "failed"), reg.status,
    reg.granted (s), reg.count (successes), reg.failures

Refresh: at a random REFRESH_MIN_PERMILLE..REFRESH_MAX_PERMILLE (80-100 %,
in steps of 0.1 %) of the granted expiry (at least MIN_REFRESH_MS), so that
many stations registered together spread their refreshes over a fifth of the
interval instead of sending a burst.  reg.start_after(now, ms) starts later
(a caller spreading many registrations, e.g. after a failback).  Failure: retry after RETRY_MS,
doubling with each failure in a row up to MAX_RETRY_MS.  423 raises the
expiry to the registrar's Min-Expires and tries again at once.
"""
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from sip.digest import DigestClient
from sip.errors import SipError
from sip.usage.agent import MAX_AUTH_TRIES

RETRY_MS = const(30000)
MAX_RETRY_MS = const(300000)
REFRESH_MIN_PERMILLE = const(800)
REFRESH_MAX_PERMILLE = const(999)   # below 100 %: the binding must not lapse first
MIN_REFRESH_MS = const(5000)


class Registration:
    """One AoR's registration with a registrar (RFC 3261 §10.2)."""

    def __init__(self, ua, user, domain, dest, username=None, password=None,
                 expires=3600, on_state=None, contact_user=None, contact_params="",
                 transport="UDP"):
        self.ua = ua
        self.transport = transport     # "UDP" or "TCP" (a connection the shell opens)
        self.contact_params = contact_params
        self.secret_id = None
        self.user = user
        self.domain = domain
        self.dest = dest
        self.username = username or user
        self.password = password
        self.expires = expires
        self.on_state = on_state
        self.contact_user = contact_user or user
        self.state = "idle"
        self.status = None
        self.granted = None
        self.call_id = "%s@%s" % (ua.rng.token(10), ua.host)
        self.cseq = 0
        self.tries = 0
        self.timer = None
        self.registered_at = None
        self.count = 0
        self.failures = 0
        self.failures_in_row = 0

    def __repr__(self):
        return "<Registration %s %s>" % (self.user, self.state)

    def _set(self, state, status=None):
        self.state = state
        self.status = status
        if self.on_state is not None:
            self.on_state(self)

    def start(self, now):
        self.tries = 0
        self._send(None, self.expires, now)

    def start_after(self, now, ms):
        """Start in ms (at once when ms <= 0)."""
        if ms <= 0:
            self.start(now)
        else:
            self._later(now, ms, self.start)

    def stop(self, now):
        self._cancel_timer()
        self.tries = 0
        if self.state == "registered":
            self._send(None, 0, now)
        self.state = "idle"

    def abandon(self, now):
        """Stop without unregistering: the registrar is unreachable, and an
        un-REGISTER retransmitted until after the link returns would remove
        a binding it should keep until it expires."""
        self._cancel_timer()
        self.tries = 0
        self.state = "idle"

    def _cancel_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _later(self, now, ms, fn):
        self._cancel_timer()
        self.timer = self.ua.later(now, ms, fn)

    def _send(self, challenge, expires, now, is_proxy=False):
        ua = self.ua
        self.cseq += 1
        ruri = "sip:%s" % self.domain
        aor = "sip:%s@%s" % (self.user, self.domain)
        req = ua.new_request("REGISTER", ruri, aor, aor, call_id=self.call_id, cseq=self.cseq,
                             transport=self.transport)
        req.add("Contact", "%s;expires=%d" % (ua.contact(self.contact_user, self.contact_params),
                                               expires))
        req.add("Expires", str(expires))
        if challenge is not None and self.password:
            val = DigestClient().authorize("REGISTER", ruri, challenge, self.username,
                                           self.password, ua.rng)
            req.add("Proxy-Authorization" if is_proxy else "Authorization", val)
        if expires:
            self._set("registering")
        ua.send(req, self.dest, lambda r, n, e=expires: self._response(r, n, e), now,
                self.transport)

    def _response(self, resp, now, expires):
        st = resp.status
        if st < 200:
            return
        if st in (401, 407) and self.password and self.tries < MAX_AUTH_TRIES:
            ch = resp.get_all("www-authenticate" if st == 401 else "proxy-authenticate")
            if ch:
                self.tries += 1
                self.ua.count("auth_retries")
                try:
                    self._send(ch, expires, now, st == 407)
                    return
                except SipError:
                    pass
        self.tries = 0
        if expires == 0:
            return            # the un-REGISTER of stop(): nothing more to do
        if 200 <= st < 300:
            granted = expires
            for c in resp.contact:
                if c != "*" and c.uri.user == self.contact_user:
                    e = c.params.get("expires")
                    if e and e.isdigit():
                        granted = int(e)
            if resp.expires is not None and granted == expires and resp.expires < granted:
                granted = resp.expires
            self.granted = granted
            self.count += 1
            self.registered_at = now
            self._set("registered", st)
            self.failures_in_row = 0
            pm = REFRESH_MIN_PERMILLE + self.ua.rng.randbelow(
                REFRESH_MAX_PERMILLE - REFRESH_MIN_PERMILLE + 1)
            self._later(now, max(MIN_REFRESH_MS, granted * pm), self.start)
            return
        if st == 423:
            m = resp.min_expires
            if m and m > self.expires:
                self.expires = m
                self._send(None, m, now)
                return
        self.failures += 1
        self.failures_in_row += 1
        self._set("failed", st)
        self._later(now, self.retry_ms(), self.start)

    def retry_ms(self):
        """RETRY_MS after the first failure, doubling with each one in a row."""
        ms = RETRY_MS
        for _ in range(1, self.failures_in_row):
            ms *= 2
            if ms >= MAX_RETRY_MS:
                return MAX_RETRY_MS
        return ms
