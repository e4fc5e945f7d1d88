"""The survivability monitor's core: sans-I/O, on `now` in milliseconds.

    m = Monitor(timers, peers, now)   # timers: a Timers; peers: [(name, priority,
                                      #   [(host, port), ...]), ...] best first
    m.due(now) -> [(probe_id, peer name, (host, port)), ...]   OPTIONS to send now
    m.answered(probe_id, status, now)  a response to a probe (a 408 made on
                                      Timer F comes in here too)
    m.heard(addr, now)                 passive: any response from a peer address
    m.failed(addr, why, now)           passive: a transaction to it timed out, a
                                      TCP connection was refused or reset, ICMP
                                      unreachable
    m.peer_failed(name, why, now)      passive, for a whole peer: its DNS name
                                      did not resolve
    m.set_addresses(name, addrs, now)  a peer's addresses changed (DNS): the
                                      statistics of those kept stay, new ones
                                      are probed at once
    m.on_timer(now) -> [(peer name or None, cause), ...]   changes of the best
                                      live peer (None: no peer is alive)
    m.next_deadline()
    m.best                             name of the best live peer, or None
    m.rows(now)                        for `show survivability`

Each address is probed every probe-interval.  A response counts as alive
unless its status is one of failure-codes (503 by default); a 408 (the
probe's own transaction timing out) is not alive either.  A peer is UP,
DOWN, RECOVERING (a probe was answered after it went down: a monitor window
runs) or HOLD (the window met the threshold: the hold-down runs).

- UP -> DOWN: nothing alive from any of its addresses within failure-timeout,
  or a passive failure after at least one probe interval of silence.
- DOWN -> RECOVERING: a probe is answered.
- RECOVERING, at the end of the window: the share of its probes to its
  best address (sent in
  the window, at least one interval before its end) that were answered
  within one probe interval (a late answer, after retransmissions, keeps
  the peer alive but does not count here) at or above failback-threshold %
  -> HOLD; else, if anything was answered, a new
  window; else DOWN.
- HOLD, at the end of the hold-down: the same test over the hold-down ->
  UP; else back to RECOVERING.  Silence for failure-timeout in RECOVERING or
  HOLD -> DOWN.
A peer whose name resolves to nothing has no address to probe: nothing is
heard, so the failure timeout takes it down as any silent peer.
Only a change to or from UP changes control, so a WAN that drops every
other probe cannot pass the window and cannot bounce control: one change at
most (UP -> DOWN).  Bounds: MAX_PEERS peers, MAX_ADDRESSES addresses each,
MAX_OUTSTANDING probes in flight per address (a due probe beyond is not sent
and counted as "skipped" and unanswered), MAX_PROBE_LOG probes remembered per
address for the window (oldest dropped).
"""
from firmware.compat import const

MAX_PEERS = const(2)
MAX_ADDRESSES = const(4)
MAX_OUTSTANDING = const(8)
MAX_PROBE_LOG = const(256)

UP = "up"
DOWN = "down"
RECOVERING = "recovering"
HOLD = "hold-down"


class Timers:
    """The survivability timers (defaults: the recommended setting)."""

    def __init__(self, interval_ms=1000, failure_ms=3000, window_ms=16000, threshold_pct=80,
                 hold_down_ms=10000, failure_codes=(503,)):
        self.interval_ms = interval_ms
        self.failure_ms = failure_ms
        self.window_ms = window_ms
        self.threshold_pct = threshold_pct
        self.hold_down_ms = hold_down_ms
        self.failure_codes = tuple(failure_codes)

    def describe(self):
        return ("probe-interval %d ms, failure-timeout %d ms, failback-window %d ms, "
                "failback-threshold %d %%, hold-down %d ms, failure-codes %s" % (
                    self.interval_ms, self.failure_ms, self.window_ms, self.threshold_pct,
                    self.hold_down_ms, " ".join(str(c) for c in self.failure_codes) or "none"))


class Address:
    def __init__(self, addr):
        self.addr = addr
        self.sent = 0
        self.answered = 0
        self.failures = 0         # failure-code answers, 408s, passive failures
        self.skipped = 0
        self.last_rtt = None
        self.last_alive = None
        self.next_probe = 0
        self.inflight = {}        # probe id -> sent at
        self.log = []             # [sent at, answered?] of recent probes


class Peer:
    def __init__(self, name, priority, addrs, now):
        if len(addrs) > MAX_ADDRESSES:
            raise ValueError("peer %s: more than %d addresses" % (name, MAX_ADDRESSES))
        self.name = name
        self.priority = priority
        self.addrs = [Address(a) for a in addrs]   # may start empty (a name to resolve)
        self.failures = 0         # passive failures of the whole peer (DNS)
        self.state = UP           # assumed alive at start: the failure timeout decides
        self.since = now
        self.cause = "start"
        self.last_alive = now
        self.phase_start = now    # of the window or hold-down
        self.phase_end = None

    def share(self, start, end):
        """(answered, counted) of the probes sent in [start, end) to the
        peer's best address: one address that answers is enough to reach
        it (a name may resolve to addresses that never will)."""
        best = (0, 0)
        for a in self.addrs:
            n = ok = 0
            for at, good in a.log:
                if start <= at < end:
                    n += 1
                    if good:
                        ok += 1
            if n and (best[1] == 0 or ok * best[1] > best[0] * n):
                best = (ok, n)
        return best


class Monitor:
    def __init__(self, timers, peers, now):
        if len(peers) > MAX_PEERS:
            raise ValueError("more than %d peers" % MAX_PEERS)
        self.t = timers
        self.peers = [Peer(n, p, a, now) for n, p, a in peers]
        self.next_id = 0
        self.probes = {}          # probe id -> (peer, address)
        self.best = self._best()
        self.changes = 0

    def _best(self):
        for p in self.peers:
            if p.state == UP:
                return p.name
        return None

    def _find(self, addr):
        for p in self.peers:
            for a in p.addrs:
                if a.addr == addr:
                    return p, a
        return None, None

    # -- probes
    def due(self, now):
        out = []
        for p in self.peers:
            for a in p.addrs:
                if now < a.next_probe:
                    continue
                a.next_probe = now + self.t.interval_ms
                if len(a.inflight) >= MAX_OUTSTANDING:
                    a.skipped += 1
                    self._log(a, now, False)
                    continue
                self.next_id += 1
                pid = self.next_id
                a.inflight[pid] = now
                a.sent += 1
                self.probes[pid] = (p, a)
                self._log(a, now, False)
                out.append((pid, p.name, a.addr))
        return out

    def _log(self, a, at, good):
        a.log.append([at, good])
        if len(a.log) > MAX_PROBE_LOG:
            a.log.pop(0)

    def answered(self, pid, status, now):
        pa = self.probes.pop(pid, None)
        if pa is None:
            return
        p, a = pa
        sent = a.inflight.pop(pid, None)
        alive = status != 408 and status not in self.t.failure_codes
        if not alive:
            a.failures += 1
            return
        a.answered += 1
        if sent is not None:
            a.last_rtt = now - sent
            if a.last_rtt <= self.t.interval_ms:      # timely: counts for failback
                for e in a.log:
                    if e[0] == sent:
                        e[1] = True
                        break
        self._alive(p, a, now, "probe answered %d" % status)

    def _alive(self, p, a, now, why):
        a.last_alive = now
        p.last_alive = now
        if p.state == DOWN:
            self._phase(p, RECOVERING, now, self.t.window_ms, "%s from %s" % (why, _hp(a.addr)))

    def heard(self, addr, now):
        p, a = self._find(addr)
        if p is not None:
            self._alive(p, a, now, "response")

    def failed(self, addr, why, now):
        p, a = self._find(addr)
        if p is None:
            return
        a.failures += 1
        self._passive(p, "%s (%s)" % (why, _hp(addr)), now)

    def _passive(self, p, cause, now):
        # a passive failure right after something alive was heard is stale news
        if p.state == UP and now - p.last_alive >= self.t.interval_ms:
            self._set(p, DOWN, now, cause)

    def _peer(self, name):
        for p in self.peers:
            if p.name == name:
                return p
        return None

    def peer_failed(self, name, why, now):
        p = self._peer(name)
        if p is not None:
            p.failures += 1
            self._passive(p, why, now)

    def set_addresses(self, name, addrs, now):
        p = self._peer(name)
        if p is None:
            return
        old = {}
        for a in p.addrs:
            old[a.addr] = a
        keep = []
        for addr in addrs[:MAX_ADDRESSES]:
            a = old.pop(addr, None)
            keep.append(a if a is not None else Address(addr))
        for a in old.values():          # gone: its probes in flight are forgotten
            for pid in a.inflight:
                self.probes.pop(pid, None)
        p.addrs = keep

    # -- states
    def _set(self, p, state, now, cause):
        p.state = state
        p.since = now
        p.cause = cause
        p.phase_end = None

    def _phase(self, p, state, now, ms, cause):
        self._set(p, state, now, cause)
        p.phase_start = now
        p.phase_end = now + ms

    def on_timer(self, now):
        t = self.t
        for p in self.peers:
            silent = now - p.last_alive
            if p.state != DOWN and silent >= t.failure_ms:
                self._set(p, DOWN, now, "nothing alive heard for %d ms" % silent)
                continue
            if p.phase_end is None or now < p.phase_end:
                continue
            ok, n = p.share(p.phase_start, p.phase_end - t.interval_ms)
            good = n > 0 and ok * 100 >= t.threshold_pct * n
            if p.state == RECOVERING:
                if good:
                    self._phase(p, HOLD, now, t.hold_down_ms,
                                "window: %d of %d probes answered" % (ok, n))
                elif ok:
                    self._phase(p, RECOVERING, now, t.window_ms,
                                "window: only %d of %d probes answered, a new window" % (ok, n))
                else:
                    self._set(p, DOWN, now, "window: no probe answered")
            elif p.state == HOLD:
                if good:
                    self._set(p, UP, now, "failback: window and hold-down passed (%d of %d "
                              "probes answered in the hold-down)" % (ok, n))
                else:
                    self._phase(p, RECOVERING, now, t.window_ms,
                                "hold-down: only %d of %d probes answered" % (ok, n))
        best = self._best()
        if best == self.best:
            return []
        self.best = best
        self.changes += 1
        if best is None:
            down = [p for p in self.peers if p.state != UP]
            return [(None, "; ".join("peer %s %s" % (p.name, p.cause) for p in down))]
        for p in self.peers:
            if p.name == best:
                return [(best, "peer %s %s" % (best, p.cause))]
        return []

    def next_deadline(self):
        d = None
        for p in self.peers:
            for a in p.addrs:
                if d is None or a.next_probe < d:
                    d = a.next_probe
            c = p.last_alive + self.t.failure_ms if p.state != DOWN else None
            for x in (c, p.phase_end):
                if x is not None and (d is None or x < d):
                    d = x
        return d

    def forget(self, pid):
        """A probe whose transaction could not be sent at all."""
        pa = self.probes.pop(pid, None)
        if pa is not None:
            pa[1].inflight.pop(pid, None)

    def rows(self, now):
        out = []
        for p in self.peers:
            out.append((p.name, p.priority, p.state, p.since, p.cause))
        return out


def _hp(addr):
    if ":" in addr[0]:
        return "[%s]:%d" % (addr[0], addr[1])
    return "%s:%d" % (addr[0], addr[1])
