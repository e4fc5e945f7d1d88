"""SIP access security: source allow list, failed-registration blocking, a
per-source request rate limit (pike-like) and a bounded access log.

    services convergence-services {
        security {
            allow-list [ 127.0.0.0/8 10.1.0.0/16 ];   # empty/absent: every source allowed
            failed-registration { threshold 5; window 60; block-time 300; response silent; }
            rate-limit { requests 200; window 2; }
            tcp { max-connections-per-source 4; }
        }
    }

`Security` is pure logic (sans-I/O): every method takes `now`, monotonic
milliseconds, and nothing here reads a clock.  The SIP core asks
`gate(host, port, method, now)` for every request it receives, before the
transaction layer; the registrar and call control report outcomes with
`auth_failed()`, `record()` and `auth_ok()`.

gate() checks, in this order:

1. Allow list.  With an allow list configured, a source outside it is
   dropped silently (`not_allowed`).  It is written to the access log at most
   once a minute per source and at most MAX_NOTED sources a minute in all
   (beyond: `access_log_suppressed`), so that an address scan cannot flush the
   log.  Prefixes are parsed once, at configure(), into 16-bit halves so that
   matching never builds a long integer on a 32-bit MicroPython board.
   IPv6 sources: with an allow list, `::1` is matched as 127.0.0.1 and an
   IPv4-mapped `::ffff:a.b.c.d` as a.b.c.d; every other IPv6 source is
   outside the list (it holds IPv4 prefixes only).  Without an allow list
   every source, IPv4 or IPv6, is allowed.
2. Blocked source (after `threshold` failed authentications within `window`
   seconds; lasts `block-time` seconds).  `response silent` drops the request
   (`blocked_dropped`); `response reject` answers 403 Forbidden
   (`blocked_rejected`), except when the source also exceeds the rate limit,
   which turns the 403s into drops so a blocked flooder gets no replies.
   ACK, CANCEL and BYE are not refused by a block: they carry no credentials
   and end calls, so a block (a misconfigured phone behind the same NAT as a
   working one, say) does not leave a call in progress half-established,
   ringing or hung.  They still go through the allow list and the rate limit.
3. Rate limit, per source address: more than `requests` requests in a
   window of `window` seconds (starting at the source's first request) are
   dropped (`rate_limited`).  Every method counts, ACK and CANCEL included,
   and every method is dropped: a flood is a flood, and a phone that sends
   more than 100 requests a second is broken anyway.  A source that exceeded
   the limit in one window stays limited for the whole next window and
   recovers after a window where it stayed at or below the limit (as
   Kamailio's pike does), so a steady flooder gets nothing through rather
   than `requests` per window.  One access-log record per episode (when the
   source starts being limited), not one per packet.

SIP over TCP: the transport asks `admit(host, port, now)` when it accepts a
connection, before the connection takes one of its slots
(firmware/sipstack/transport.py "TCP admission").  A source outside the allow
list (`tcp_not_allowed`) or blocked (`tcp_blocked`, whatever `response` says:
a refused connection gets no 403) is refused, and the transport closes the
connection at once.  Each is written to the access log at most once a minute
per source, in the same bounded table of notes as the allow-list drops.  A
block refuses new connections only: a connection accepted before the block
keeps carrying ACK, CANCEL and BYE (its other requests meet gate()).  The
per-source connection cap (`tcp max-connections-per-source`) is enforced by
the transport (tp.max_per_source; apply() and the appliance set it).

Failed authentications (`auth_failed`) are counted per source address in a
sliding window: the timestamps of the last threshold-1 failures are kept,
and the threshold-th failure within `window` seconds blocks the address for
`block-time` seconds (its own access-log record, "blocked for N s after K
failures", and a warning in the system log).  A successful authentication
does not reset the count (`auth_ok` only counts it): otherwise an attacker
holding one valid account could interleave it with guesses at the others.
Per-source blocking cannot stop guessing spread over many addresses; strong
passwords remain the defence against that.  The caller reports only
failures whose request carried a nonce we issued to that very source (proof
that the source receives our replies), so that a spoofed UDP source cannot
get a real phone's address blocked: sip/digest.py binds every nonce to the
source's host:port and answers any other nonce STALE, which is not counted
(registrar.nonce_bind).

Every table is bounded (principle 7), with a counter for what it drops:

- rate trackers, MAX_TRACKED_SOURCES (one [start, count, limited] list per
  address): when full, the idle trackers go first, then the least recently
  started ones that are not limited (limited flooders keep theirs), a batch
  of 1/8 at a time (`trackers_evicted`);
- failure trackers, MAX_FAILURE_SOURCES (a list of at most threshold-1
  timestamps per address), holding MAX_FAILURE_STAMPS timestamps in all, so
  that a high threshold cannot multiply the memory: when either is full, idle
  trackers go, then those whose last failure is oldest, down to 7/8 of the
  bound (`failure_trackers_evicted`);
- blocked sources, MAX_BLOCKED: when full, the block ending soonest is
  lifted early (`blocks_evicted`);
- the access log, MAX_ACCESS_LOG records (ms, "host:port", user, reason):
  when full, the oldest is dropped (`access_log_dropped`).  User names come
  from the wire; they are cut to MAX_USER_CHARS and control characters are
  replaced by `?`.

Expired trackers and blocks are removed lazily by gate()/auth_failed() and
by on_timer(now), which the owner calls at next_deadline() (or from any
periodic tick; a call before the deadline returns at once).  Correctness
never depends on the timer: a block ends at its deadline whether or not
on_timer ran; the timer only frees memory and logs the end of the block.

Console (operational mode; register_commands(app), also done by the commit
hook): `show security access-log`, `show security blocked`,
`request security unblock ADDRESS|all`.  The commit hook keeps a
SecuritySettings on app.security_settings and hands it to app.security (a
Security) when there is one.
"""
from firmware.compat import const
from firmware.commands import CommandError
from firmware.config import schema as S
from firmware.config import voice  # noqa: F401  (declares `services` after `system`)
from firmware.textfmt import table

PARENT = "services convergence-services"
BASE = PARENT + " security"

MAX_ALLOW_PREFIXES = const(32)     # allow-list entries
MAX_TRACKED_SOURCES = const(256)   # rate trackers (one per source address)
MAX_FAILURE_SOURCES = const(128)   # failed-authentication trackers
MAX_FAILURE_STAMPS = const(1024)   # failure timestamps kept in all trackers together
MAX_BLOCKED = const(128)           # blocked source addresses
MAX_ACCESS_LOG = const(128)        # access-log records (ring)
MAX_NOTED = const(32)              # "not in allow list"/TCP refusal records per minute, all sources
NOTE_INTERVAL_MS = const(60000)    # one such record per source per minute
SWEEP_MIN_MS = const(1000)         # on_timer sweeps at most once a second
MAX_USER_CHARS = const(32)         # user names kept in the access log
MAX_REASON_CHARS = const(80)

DEFAULT_THRESHOLD = const(5)
DEFAULT_FAIL_WINDOW = const(60)    # seconds
DEFAULT_BLOCK_TIME = const(300)    # seconds
DEFAULT_RATE_REQUESTS = const(200)
DEFAULT_RATE_WINDOW = const(2)     # seconds
DEFAULT_TCP_PER_SOURCE = const(4)  # = transport.MAX_TCP_PER_SOURCE
MAX_TCP_PER_SOURCE_SETTING = const(16)   # = transport.MAX_TCP_CONNECTIONS

DROP = "drop"
FORBIDDEN = (403, "Forbidden")
# Methods a block does not refuse (see the module docstring); the rate limit
# and the allow list still apply to them.
BLOCK_EXEMPT = ("ACK", "CANCEL", "BYE")

# --- configuration schema -------------------------------------------------------

S.register(PARENT, S.Container(
    "security", "Protection of the SIP service: source allow list, blocking after "
    "failed registrations, request rate limit", children=(
        S.LeafList("allow-list", S.IPv4Prefix(), max_items=MAX_ALLOW_PREFIXES,
                   help="Sources allowed to send SIP requests (a.b.c.d/len or an address); "
                        "others are dropped silently. Empty: every source. IPv6: only ::1 "
                        "(as 127.0.0.1) and ::ffff:a.b.c.d"),
        S.Container("failed-registration", "Block a source address after repeated failed "
                    "authentication (registrations and calls)", children=(
                        S.Leaf("threshold", S.Integer(1, 100), default=DEFAULT_THRESHOLD,
                               help="Failed authentications within the window that block the source"),
                        S.Leaf("window", S.Integer(1, 3600, "seconds"), default=DEFAULT_FAIL_WINDOW,
                               help="Sliding window in which failures are counted; a success "
                                    "does not reset the count"),
                        S.Leaf("block-time", S.Integer(1, 86400, "seconds"), default=DEFAULT_BLOCK_TIME,
                               help="How long a source stays blocked (request security unblock "
                                    "lifts it early)"),
                        S.Leaf("response", S.Enum(("silent", "reject")), default="silent",
                               help="Requests from a blocked source: silent (dropped) or "
                                    "reject (403 Forbidden); ACK, CANCEL and BYE still pass"),
                    )),
        S.Container("rate-limit", "Drop requests from a source address that sends too many "
                    "(flood protection, like pike)", children=(
                        S.Leaf("requests", S.Integer(1, 100000), default=DEFAULT_RATE_REQUESTS,
                               help="Requests a source may send per window; beyond, its requests are "
                                    "dropped until it keeps within the limit for a whole window"),
                        S.Leaf("window", S.Integer(1, 60, "seconds"), default=DEFAULT_RATE_WINDOW,
                               help="Length of the rate-limit window"),
                    )),
        S.Container("tcp", "SIP over TCP: connection limits (sources outside the allow list "
                    "or blocked are refused at accept)", children=(
                        S.Leaf("max-connections-per-source",
                               S.Integer(1, MAX_TCP_PER_SOURCE_SETTING),
                               default=DEFAULT_TCP_PER_SOURCE,
                               help="TCP connections one source address may hold; beyond, "
                                    "a new connection is closed at once"),
                    )),
    )))


class SecuritySettings:
    """The committed security statements (cfg: a firmware.config.tree.Config;
    None: the defaults).  Plain attributes, which tests may change before
    handing the object to Security.configure()."""

    def __init__(self, cfg=None):
        self.allow_list = ()
        self.threshold = DEFAULT_THRESHOLD
        self.fail_window = DEFAULT_FAIL_WINDOW      # seconds
        self.block_time = DEFAULT_BLOCK_TIME        # seconds
        self.response = "silent"
        self.rate_requests = DEFAULT_RATE_REQUESTS
        self.rate_window = DEFAULT_RATE_WINDOW      # seconds
        self.tcp_per_source = DEFAULT_TCP_PER_SOURCE
        if cfg is None:
            return
        p = BASE + " "
        self.allow_list = tuple(cfg.get(p + "allow-list") or ())
        f = p + "failed-registration "
        self.threshold = cfg.get(f + "threshold")
        self.fail_window = cfg.get(f + "window")
        self.block_time = cfg.get(f + "block-time")
        self.response = cfg.get(f + "response")
        r = p + "rate-limit "
        self.rate_requests = cfg.get(r + "requests")
        self.rate_window = cfg.get(r + "window")
        self.tcp_per_source = cfg.get(p + "tcp max-connections-per-source")


def apply(app, old, new):
    settings = SecuritySettings(new)
    app.security_settings = settings
    sec = getattr(app, "security", None)
    if sec is not None:
        sec.configure(settings)
    tp = getattr(app, "sip_transports", None)
    if tp is not None:
        tp.max_per_source = settings.tcp_per_source
    if getattr(app, "commands", None) is not None:
        register_commands(app)


S.on_commit("security", apply, check=None)


# --- addresses -------------------------------------------------------------------

def parse_prefix(text):
    """'a.b.c.d/len' (or 'a.b.c.d', taken as /32) -> (net_hi, net_lo, mask_hi,
    mask_lo), each a 16-bit half.  ValueError when malformed."""
    addr, sep, plen = text.partition("/")
    halves = ipv4_halves(addr)
    if halves is None or ":" in addr:
        raise ValueError("not an IPv4 prefix: %s" % text)
    if not sep:
        plen = "32"
    if not plen.isdigit() or int(plen) > 32:
        raise ValueError("prefix length must be 0..32: %s" % text)
    n = int(plen)
    mhi = (0xFFFF << (16 - n)) & 0xFFFF if n < 16 else 0xFFFF
    mlo = 0 if n <= 16 else (0xFFFF << (32 - n)) & 0xFFFF
    return (halves[0] & mhi, halves[1] & mlo, mhi, mlo)


def ipv4_halves(host):
    """The IPv4 address a source stands for, as (high 16 bits, low 16 bits), or
    None.  `::1` stands for 127.0.0.1, `::ffff:a.b.c.d` for a.b.c.d; other IPv6
    addresses and non-addresses give None."""
    if ":" in host:
        h = host.lower()
        if h[:1] == "[":
            h = h[1:].split("]")[0]
        h = h.split("%")[0]
        if h == "::1" or h == "0:0:0:0:0:0:0:1":
            return (0x7F00, 1)
        if h[:7] == "::ffff:" and "." in h:
            host = h[7:]
        else:
            return None
    parts = host.split(".")
    if len(parts) != 4:
        return None
    v = []
    for p in parts:
        if not p.isdigit() or len(p) > 3:
            return None
        n = int(p)
        if n > 255:
            return None
        v.append(n)
    return ((v[0] << 8) | v[1], (v[2] << 8) | v[3])


def _source(host, port):
    if ":" in host and host[:1] != "[":
        return "[%s]:%s" % (host, port)
    return "%s:%s" % (host, port)


def _clean(text, limit):
    """Wire text made safe for a console table: cut, control characters -> '?'."""
    if text is None:
        return ""
    text = str(text)
    if len(text) > limit:
        text = text[:limit - 1] + "~"
    for ch in text:
        if ord(ch) < 32 or ord(ch) == 127:
            return "".join("?" if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return text


# --- the security state ---------------------------------------------------------------

class Security:
    """Allow list, failed-authentication blocks, rate limit and access log;
    see the module docstring.  log: optional callable(level, text), e.g. the
    appliance's Log."""

    def __init__(self, log=None):
        self.log = log
        self.settings = None
        self._prefixes = None   # None: no allow list; else tuple of 16-bit-half prefixes
        self._rate = {}         # host -> [window start ms, count (capped), limited 0/1]
        self._fail = {}         # host -> [failure ms, ...] (at most threshold-1, oldest first)
        self._stamps = 0        # timestamps in all of _fail (MAX_FAILURE_STAMPS)
        self._blocked = {}      # host -> [until ms, failures]
        self._noted = {}        # host -> ms of its last "not in allow list" record
        self._log = []          # access log: (ms, source, user, reason), oldest first
        self._next = None       # earliest time on_timer has something to do
        self.counters = {}
        for name in ("not_allowed", "blocked_dropped", "blocked_rejected", "rate_limited",
                     "rate_limit_starts", "auth_failures", "auth_successes", "access_denied",
                     "blocks", "blocks_expired", "unblocks", "blocks_evicted",
                     "trackers_evicted", "failure_trackers_evicted",
                     "access_log_dropped", "access_log_suppressed",
                     "tcp_not_allowed", "tcp_blocked"):
            self.counters[name] = 0
        self.configure(SecuritySettings())

    def configure(self, settings):
        """Take new settings (a SecuritySettings; None: defaults).  Blocks in
        force keep their end time; trackers carry on under the new limits."""
        if settings is None:
            settings = SecuritySettings()
        prefixes = [parse_prefix(p) for p in settings.allow_list]
        self._prefixes = tuple(prefixes) if prefixes else None
        self.settings = settings
        self._threshold = settings.threshold
        self._fail_ms = settings.fail_window * 1000
        self._block_ms = settings.block_time * 1000
        self._reject = settings.response == "reject"
        self._rate_max = settings.rate_requests
        self._rate_ms = settings.rate_window * 1000

    # -- the per-request decision
    def allowed(self, host):
        """Does the allow list let this source in?"""
        if self._prefixes is None:
            return True
        h = ipv4_halves(host)
        if h is None:
            return False
        hi, lo = h
        for nhi, nlo, mhi, mlo in self._prefixes:
            if (hi & mhi) == nhi and (lo & mlo) == nlo:
                return True
        return False

    def gate(self, host, port, method, now):
        """None: go on; "drop": drop silently; (403, "Forbidden"): answer that.
        method None (unparsable request) is treated as any non-exempt method."""
        c = self.counters
        if self._prefixes is not None and not self.allowed(host):
            c["not_allowed"] += 1
            self._note_not_allowed(host, port, now)
            return DROP
        if self._blocked:
            b = self._blocked.get(host)
            if b is not None:
                if now >= b[0]:
                    self._end_block(host, now)
                elif method not in BLOCK_EXEMPT:
                    if not self._reject:
                        c["blocked_dropped"] += 1
                        return DROP
                    if self._rate_check(host, port, now):
                        return DROP
                    c["blocked_rejected"] += 1
                    return FORBIDDEN
        if self._rate_check(host, port, now):
            return DROP
        return None

    def admit(self, host, port, now):
        """A TCP connection from host:port is being accepted: None lets it in;
        "not_allowed" or "blocked" refuses it (counted, noted in the access log
        at most once a minute per source)."""
        if self._prefixes is not None and not self.allowed(host):
            self.counters["tcp_not_allowed"] += 1
            self._note_not_allowed(host, port, now, "TCP connection refused: not in allow list")
            return "not_allowed"
        if self._blocked:
            b = self._blocked.get(host)
            if b is not None:
                if now >= b[0]:
                    self._end_block(host, now)
                else:
                    self.counters["tcp_blocked"] += 1
                    self._note_not_allowed(host, port, now, "TCP connection refused: blocked")
                    return "blocked"
        return None

    def _rate_check(self, host, port, now):
        """Count one request; True when it must be dropped."""
        t = self._rate.get(host)
        if t is None:
            if len(self._rate) >= MAX_TRACKED_SOURCES:
                self._make_room_rate(now)
            t = [now, 0, 0]
            self._rate[host] = t
            self._wake(now + self._rate_ms)
        else:
            age = now - t[0]
            if age >= self._rate_ms:
                # a new window: limited again only if the window just ended was
                # over the limit (an idle window in between clears it)
                t[2] = 1 if t[1] > self._rate_max and age < 2 * self._rate_ms else 0
                t[0] = now
                t[1] = 0
                self._wake(now + 2 * self._rate_ms)
        if t[1] <= self._rate_max:
            t[1] += 1
        if t[1] > self._rate_max and not t[2]:
            t[2] = 1
            self.counters["rate_limit_starts"] += 1
            reason = "rate limit: more than %d requests in %d s" % (
                self._rate_max, self._rate_ms // 1000)
            self._append(now, _source(host, port), "", reason)
            self._syslog("warning", "security: %s dropped, %s" % (host, reason))
        if t[2]:
            self.counters["rate_limited"] += 1
            return True
        return False

    def _note_not_allowed(self, host, port, now, reason="not in allow list"):
        t = self._noted.get(host)
        if t is not None and now - t < NOTE_INTERVAL_MS:
            return
        if t is None and len(self._noted) >= MAX_NOTED:
            self._purge_noted(now)
            if len(self._noted) >= MAX_NOTED:
                self.counters["access_log_suppressed"] += 1
                return
        self._noted[host] = now
        self._wake(now + NOTE_INTERVAL_MS)
        self._append(now, _source(host, port), "", reason)
        what = "dropped: not in the allow list" if reason == "not in allow list" else reason
        self._syslog("warning", "security: SIP from %s %s (logged once a minute per source)" % (
            _source(host, port), what))

    def _purge_noted(self, now):
        for h, t in list(self._noted.items()):
            if now - t >= NOTE_INTERVAL_MS:
                del self._noted[h]

    # -- outcomes reported by the registrar and call control
    def auth_failed(self, host, port, user, reason, now):
        """A request from host:port failed authentication as `user`: log it and
        count it; the threshold-th failure within the window blocks the address.
        Returns True when the address is (now) blocked."""
        self.counters["auth_failures"] += 1
        self._append(now, _source(host, port), user, reason)
        b = self._blocked.get(host)
        if b is not None:
            if now < b[0]:
                b[1] += 1
                return True
            self._end_block(host, now)
        ts = self._fail.get(host)
        if ts is not None:
            self._slide(ts, now)
            if not ts:
                self._forget(host)
                ts = None
        if ((ts is None and len(self._fail) >= MAX_FAILURE_SOURCES)
                or self._stamps >= MAX_FAILURE_STAMPS):
            self._make_room_fail(now, host)
        if ts is None:
            ts = []
            self._fail[host] = ts
        ts.append(now)
        self._stamps += 1
        if len(ts) < self._threshold:
            self._wake(now + self._fail_ms)
            return False
        self._forget(host)
        self._block(host, port, user, len(ts), now)
        return True

    def _slide(self, ts, now):
        """Drop the failures that left the window (oldest first)."""
        while ts and now - ts[0] >= self._fail_ms:
            ts.pop(0)
            self._stamps -= 1

    def _forget(self, host):
        ts = self._fail.pop(host, None)
        if ts is not None:
            self._stamps -= len(ts)

    def auth_ok(self, host, now):
        """A successful authentication.  Counted only: it does not reset the
        failures of the address (see the module docstring)."""
        self.counters["auth_successes"] += 1

    def record(self, host, port, user, reason, now):
        """Log another refused access (licence limit, too many contacts, ...);
        it does not count toward the block."""
        self.counters["access_denied"] += 1
        self._append(now, _source(host, port), user, reason)

    def is_blocked(self, host, now):
        b = self._blocked.get(host)
        return b is not None and now < b[0]

    def _block(self, host, port, user, failures, now):
        if len(self._blocked) >= MAX_BLOCKED:
            self._expire_blocks(now)
            if len(self._blocked) >= MAX_BLOCKED:
                soonest = None
                for h, b in self._blocked.items():
                    if soonest is None or b[0] < self._blocked[soonest][0]:
                        soonest = h
                del self._blocked[soonest]
                self.counters["blocks_evicted"] += 1
                self._syslog("warning", "security: block table full (%d), block of %s "
                             "lifted early" % (MAX_BLOCKED, soonest))
        self._blocked[host] = [now + self._block_ms, failures]
        self.counters["blocks"] += 1
        self._wake(now + self._block_ms)
        reason = "blocked for %d s after %d failures" % (self._block_ms // 1000, failures)
        self._append(now, _source(host, port), user, reason)
        self._syslog("warning", "security: %s %s" % (host, reason))

    def _end_block(self, host, now):
        del self._blocked[host]
        self.counters["blocks_expired"] += 1
        self._syslog("notice", "security: block of %s ended" % host)

    def _expire_blocks(self, now):
        for h, b in list(self._blocked.items()):
            if now >= b[0]:
                self._end_block(h, now)

    # -- bounded tables
    def _rate_idle(self, t, now):
        age = now - t[0]
        return age >= 2 * self._rate_ms or (age >= self._rate_ms and t[1] <= self._rate_max)

    def _make_room_rate(self, now):
        for h, t in list(self._rate.items()):
            if self._rate_idle(t, now):
                del self._rate[h]
        if len(self._rate) < MAX_TRACKED_SOURCES:
            return
        items = list(self._rate.items())
        items.sort(key=lambda kv: (kv[1][2], kv[1][0]))   # not limited first, oldest first
        for h, _ in items[:MAX_TRACKED_SOURCES // 8]:
            del self._rate[h]
            self.counters["trackers_evicted"] += 1

    def _make_room_fail(self, now, keep):
        """Free a tracker slot and timestamp room: idle trackers first, then
        those whose last failure is oldest, down to 7/8 of either bound."""
        for h, ts in list(self._fail.items()):
            if h != keep and now - ts[-1] >= self._fail_ms:
                self._forget(h)
        if len(self._fail) < MAX_FAILURE_SOURCES and self._stamps < MAX_FAILURE_STAMPS:
            return
        items = list(self._fail.items())
        items.sort(key=lambda kv: kv[1][-1])
        for h, _ in items:
            if (len(self._fail) <= MAX_FAILURE_SOURCES - MAX_FAILURE_SOURCES // 8
                    and self._stamps <= MAX_FAILURE_STAMPS - MAX_FAILURE_STAMPS // 8):
                break
            if h != keep:
                self._forget(h)
                self.counters["failure_trackers_evicted"] += 1

    def _append(self, now, source, user, reason):
        if len(self._log) >= MAX_ACCESS_LOG:
            self._log.pop(0)
            self.counters["access_log_dropped"] += 1
        self._log.append((now, source, _clean(user, MAX_USER_CHARS),
                          _clean(reason, MAX_REASON_CHARS)))

    def _syslog(self, level, text):
        if self.log is not None:
            self.log(level, text)

    # -- timers
    def _wake(self, t):
        if self._next is None or t < self._next:
            self._next = t

    def next_deadline(self):
        """When on_timer(now) next has work (ms), or None when nothing is tracked."""
        return self._next

    def on_timer(self, now):
        """Drop expired trackers, blocks and notes.  Cheap before next_deadline()."""
        if self._next is None or now < self._next:
            return
        nxt = None
        for h, t in list(self._rate.items()):
            if self._rate_idle(t, now):
                del self._rate[h]
            else:
                end = t[0] + (self._rate_ms if t[1] <= self._rate_max else 2 * self._rate_ms)
                nxt = end if nxt is None or end < nxt else nxt
        for h, ts in list(self._fail.items()):
            self._slide(ts, now)
            if not ts:
                del self._fail[h]
            else:
                end = ts[-1] + self._fail_ms
                nxt = end if nxt is None or end < nxt else nxt
        self._purge_noted(now)
        for t in self._noted.values():
            end = t + NOTE_INTERVAL_MS
            nxt = end if nxt is None or end < nxt else nxt
        if nxt is not None and nxt < now + SWEEP_MIN_MS:
            nxt = now + SWEEP_MIN_MS   # tracker clean-up: at most once a second
        for h, b in list(self._blocked.items()):
            if now >= b[0]:
                self._end_block(h, now)
            else:
                nxt = b[0] if nxt is None or b[0] < nxt else nxt   # block ends: exact
        self._next = nxt

    # -- views
    def blocked(self, now):
        """[(host, seconds left (rounded up), failures)], the block ending soonest first."""
        self._expire_blocks(now)
        rows = [(h, (b[0] - now + 999) // 1000, b[1]) for h, b in self._blocked.items()]
        rows.sort(key=lambda r: (r[1], r[0]))
        return rows

    def unblock(self, host):
        """Lift the block of host (and forget its failures).  True if it was blocked."""
        self._forget(host)
        if self._blocked.pop(host, None) is None:
            return False
        self.counters["unblocks"] += 1
        self._syslog("notice", "security: block of %s lifted by the operator" % host)
        return True

    def access_log(self):
        """[(ms, "host:port", user, reason)], oldest first."""
        return list(self._log)

    def statistics(self):
        """[(name, value)] for show commands: counters, then table occupancy."""
        c = self.counters
        return [
            ("requests dropped: not in allow list", c["not_allowed"]),
            ("requests dropped: source blocked", c["blocked_dropped"]),
            ("requests rejected (403): source blocked", c["blocked_rejected"]),
            ("requests dropped: rate limit", c["rate_limited"]),
            ("TCP connections refused: not in allow list", c["tcp_not_allowed"]),
            ("TCP connections refused: source blocked", c["tcp_blocked"]),
            ("rate limit episodes", c["rate_limit_starts"]),
            ("authentication failures", c["auth_failures"]),
            ("authentication successes", c["auth_successes"]),
            ("other access refusals", c["access_denied"]),
            ("sources blocked", c["blocks"]),
            ("blocks expired", c["blocks_expired"]),
            ("blocks lifted by operator", c["unblocks"]),
            ("blocks lifted early: table full", c["blocks_evicted"]),
            ("rate trackers evicted: table full", c["trackers_evicted"]),
            ("failure trackers evicted: table full", c["failure_trackers_evicted"]),
            ("access log records dropped (oldest)", c["access_log_dropped"]),
            ("access log records suppressed", c["access_log_suppressed"]),
            ("blocked sources now (max %d)" % MAX_BLOCKED, len(self._blocked)),
            ("rate trackers now (max %d)" % MAX_TRACKED_SOURCES, len(self._rate)),
            ("failure trackers now (max %d)" % MAX_FAILURE_SOURCES, len(self._fail)),
            ("failure timestamps now (max %d)" % MAX_FAILURE_STAMPS, self._stamps),
            ("access log records now (max %d)" % MAX_ACCESS_LOG, len(self._log)),
        ]


# --- console commands -------------------------------------------------------------------

def _ago(ms):
    s = ms // 1000
    if s < 60:
        return "%ds ago" % s
    if s < 3600:
        return "%dm%02ds ago" % (s // 60, s % 60)
    if s < 86400:
        return "%dh%02dm ago" % (s // 3600, s % 3600 // 60)
    return "%dd%02dh ago" % (s // 86400, s % 86400 // 3600)


def _left(s):
    if s < 60:
        return "%ds" % s
    if s < 3600:
        return "%dm%02ds" % (s // 60, s % 60)
    return "%dh%02dm%02ds" % (s // 3600, s % 3600 // 60, s % 60)


def _words(args):
    return [a for a in args if a[:1] != "|"]   # drop "|display set" / "|compare"


def _no_args(args, usage):
    if _words(args):
        raise CommandError("unexpected argument '%s' (usage: %s)" % (_words(args)[0], usage))


_NOT_RUNNING = "SIP security is not active (it starts with the SIP service)"


def show_access_log(app, args):
    _no_args(args, "show security access-log")
    sec = getattr(app, "security", None)
    if sec is None:
        return _NOT_RUNNING
    now = app.clock.now()
    recs = sec.access_log()
    dropped = sec.counters["access_log_dropped"]
    head = "Access log: %d record%s (at most %d)" % (len(recs), "" if len(recs) == 1 else "s",
                                                     MAX_ACCESS_LOG)
    if dropped:
        head += ", %d older dropped" % dropped
    if not recs:
        return head
    rows = [("Time", "Age", "Source", "User", "Reason")]
    for ms, source, user, reason in recs:
        rows.append(("%d.%03d" % (ms // 1000, ms % 1000), _ago(now - ms), source,
                     user or "-", reason))
    return head + "\n" + table(rows)


def show_blocked(app, args):
    _no_args(args, "show security blocked")
    sec = getattr(app, "security", None)
    if sec is None:
        return _NOT_RUNNING
    s = sec.settings
    rows = sec.blocked(app.clock.now())
    head = "Blocked sources: %d (at most %d); block-time %d s, response %s" % (
        len(rows), MAX_BLOCKED, s.block_time, s.response)
    if not rows:
        return head
    out = [("Source", "Time left", "Failures")]
    for host, left, failures in rows:
        out.append((host, _left(left), failures))
    return head + "\n" + table(out)


def request_unblock(app, args):
    words = _words(args)
    if len(words) != 1:
        raise CommandError("expected one address: request security unblock ADDRESS|all")
    sec = getattr(app, "security", None)
    if sec is None:
        return _NOT_RUNNING
    target = words[0]
    if target == "all":
        hosts = [r[0] for r in sec.blocked(app.clock.now())]
        for h in hosts:
            sec.unblock(h)
        return "Unblocked %d source%s" % (len(hosts), "" if len(hosts) == 1 else "s")
    if ":" not in target and ipv4_halves(target) is None:
        raise CommandError("not an IP address: %s" % target)
    sec.blocked(app.clock.now())   # drop expired blocks first
    if sec.unblock(target):
        return "Unblocked %s" % target
    return "%s is not blocked" % target


def _unblock_args(app, args, partial):
    if args:
        return []
    out = [("<address>", "Blocked source address"), ("all", "Every blocked source")]
    sec = getattr(app, "security", None)
    if sec is not None:
        for host, left, failures in sec.blocked(app.clock.now()):
            out.append((host, "blocked, %s left, %d failures" % (_left(left), failures)))
    return [o for o in out if o[0][:1] == "<" or o[0].startswith(partial)]


def register_commands(app):
    """Add the security show/request commands to app.commands (idempotent)."""
    reg = app.commands
    reg.register("show security access-log", show_access_log,
                 "Show refused SIP access: failed authentication, blocks, allow list, rate limit")
    reg.register("show security blocked", show_blocked,
                 "Show the SIP sources blocked after failed authentication")
    reg.register("request security unblock", request_unblock,
                 "Lift the block of a SIP source address (or all)", args=_unblock_args)
