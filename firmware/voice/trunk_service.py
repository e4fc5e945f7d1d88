"""The running SIP trunks (firmware/voice/trunks.py has the configuration,
the routing plan and the inbound rule): per trunk its proxy addresses (DNS
when a name), the registration client, the OPTIONS health check and the
in/out-of-service state; `show sip-trunks`.  Loaded only once a SIP trunk is
configured."""
from firmware.compat import const
from sip.transport import is_ip

TRUNK_DNS_RETRY_MS = const(30000)   # a name that failed to resolve is asked again after this
IN_SERVICE = "in-service"
OUT_OF_SERVICE = "out-of-service"


class TrunkState:
    def __init__(self, t, now):
        self.t = t
        self.state = IN_SERVICE       # assumed: the health check decides
        self.since = now
        self.cause = "configured"
        self.misses = 0               # unanswered checks in a row
        self.sent = 0
        self.answered = 0
        self.skipped = 0
        self.last_rtt = None
        self.last_status = None
        self.inflight = False
        self.addrs = [(t.proxy, t.port)] if is_ip(t.proxy) else []
        self.reg_dest = (t.registrar, t.port) if is_ip(t.registrar) else None
        self.reg = None
        self.timer = None
        self.dns_timers = []
        self.stopped = False

    def dest(self):
        return self.addrs[0] if self.addrs else None

    def hosts(self):
        out = [a[0] for a in self.addrs]
        if self.reg_dest is not None and self.reg_dest[0] not in out:
            out.append(self.reg_dest[0])
        return out


class SipTrunkService:
    def __init__(self, app):
        self.app = app
        self.trunks = {}              # name -> TrunkState
        self.counters = {"probes": 0, "calls_out": 0, "calls_in": 0, "refused_in": 0,
                         "overflows": 0}

    def now(self):
        return self.app.clock.now()

    def configure(self, trunks):
        now = self.now()
        want = {}
        for t in trunks:
            want[t.name] = t
        for name in list(self.trunks):
            ts = self.trunks[name]
            t = want.get(name)
            if t is None or t.key() != ts.t.key():
                self._stop(ts)
                del self.trunks[name]
            else:
                ts.t = t              # DIDs, prefix, priority: no restart needed
        for name, t in want.items():
            if name not in self.trunks:
                ts = self.trunks[name] = TrunkState(t, now)
                self._start(ts)

    def _stop(self, ts):
        if ts.timer is not None:
            ts.timer.cancel()
            ts.timer = None
        for tm in ts.dns_timers:
            tm.cancel()
        ts.dns_timers = []
        if ts.reg is not None:
            ts.reg.stop(self.now())
            ts.reg = None
        ts.stopped = True

    def _start(self, ts):
        ts.stopped = False
        t = ts.t
        if not is_ip(t.proxy):
            self._resolve(ts, "proxy")
        if not is_ip(t.registrar) and t.registrar != t.proxy:
            self._resolve(ts, "registrar")
        self._schedule(ts, 0)
        self._register(ts)

    # -- DNS
    def _resolve(self, ts, what):
        from firmware.sipstack import resolver
        host = getattr(ts.t, what)

        def done(addrs, ttl_s, error, now, ts=ts, what=what):
            if ts.stopped:
                return
            if error is not None or not addrs:
                self.app.log.write("warning", "sip-trunk %s: %s %s did not resolve: %s" % (
                    ts.t.name, what, host, error))
                delay = TRUNK_DNS_RETRY_MS
            else:
                if what == "proxy":
                    ts.addrs = addrs
                    if ts.t.registrar == ts.t.proxy:
                        ts.reg_dest = addrs[0]
                else:
                    ts.reg_dest = addrs[0]
                delay = ttl_s * 1000
                self._register(ts)
            ts.dns_timers = [tm for tm in ts.dns_timers if tm.active]
            ts.dns_timers.append(self.app.sip.call_later(
                delay, lambda: not ts.stopped and self._resolve(ts, what)))
        resolver.get(self.app).targets(host, ts.t.port, ts.t.transport, done)

    # -- registration
    def _register(self, ts):
        t = ts.t
        if not t.register or ts.reg_dest is None:
            return
        if ts.reg is not None and ts.reg.dest == ts.reg_dest:
            return
        if ts.reg is not None:
            ts.reg.stop(self.now())
        from firmware.sipstack.dialogs import user_agent
        from sip.usage.registration import Registration
        ts.reg = Registration(user_agent(self.app), t.username, t.registrar, ts.reg_dest,
                              t.username, t.password, t.expires, self._reg_state(ts),
                              transport=t.transport.upper())
        ts.reg.start(self.now())

    def _reg_state(self, ts):
        def fn(reg, ts=ts):
            if reg.state in ("registered", "failed"):
                self.app.log.write("info" if reg.state == "registered" else "warning",
                                   "sip-trunk %s: registration %s (%s)" % (
                                       ts.t.name, reg.state, reg.status))
        return fn

    # -- health check
    def _schedule(self, ts, ms):
        if ts.timer is not None:
            ts.timer.cancel()
        ts.timer = self.app.sip.call_later(ms, lambda: self._probe(ts))

    def _probe(self, ts):
        ts.timer = None
        t = ts.t
        interval = t.interval_ms if ts.state == IN_SERVICE else t.recovery_ms
        self._schedule(ts, interval)
        dest = ts.dest()
        now = self.now()
        if dest is None:
            self._miss(ts, "proxy %s not resolved" % t.proxy, now)
            return
        if ts.inflight:
            # the last check is still unanswered after a whole interval: a
            # miss (its 408 comes only after Timer F's 32 s and is not counted)
            ts.skipped += 1
            self._miss(ts, "health check unanswered", now)
            return
        from firmware.sipstack.dialogs import user_agent
        from firmware.proxy.monitor import _hp
        ua = user_agent(self.app)
        uri = "sip:%s" % _hp(dest)
        req = ua.new_request("OPTIONS", uri, "sip:health@%s" % ua.hostport(), uri,
                             transport=t.transport.upper())
        sent_at = now

        def done(resp, now, ts=ts):
            if resp.status < 200 or ts.stopped:
                return
            ts.inflight = False
            ts.last_status = resp.status
            if resp.status == 408:
                return          # counted as a miss when the next check came due
            if resp.status == 503:
                self._miss(ts, "health check answered 503", now)
                return
            ts.answered += 1
            ts.last_rtt = now - sent_at
            ts.misses = 0
            if ts.state != IN_SERVICE:
                self._set(ts, IN_SERVICE, "health check answered %d" % resp.status, now)
                self._schedule(ts, t.interval_ms)
        self.counters["probes"] += 1
        ts.sent += 1
        try:
            ok = ua.send(req, dest, done, now, t.transport.upper()) is not None
        except (OSError, ValueError):
            ok = False
        if ok:
            ts.inflight = True
        else:
            self._miss(ts, "health check could not be sent", now)

    def _miss(self, ts, cause, now):
        ts.misses += 1
        if ts.state == IN_SERVICE and ts.misses >= ts.t.failures_max:
            self._set(ts, OUT_OF_SERVICE, "%s (%d in a row)" % (cause, ts.misses), now)
            self._schedule(ts, ts.t.recovery_ms)

    def _set(self, ts, state, cause, now):
        ts.state = state
        ts.since = now
        ts.cause = cause
        self.app.log.write("info" if state == IN_SERVICE else "warning",
                           "sip-trunk %s: %s (%s)" % (ts.t.name, state, cause))

    # -- routing
    def in_service(self):
        return [ts.t for ts in self.trunks.values() if ts.state == IN_SERVICE and ts.addrs]

    def state_of(self, name):
        return self.trunks.get(name)

    def trunk_from(self, host):
        for ts in self.trunks.values():
            if host in ts.hosts():
                return ts
        return None

    # -- show sip-trunks
    def show(self):
        now = self.now()
        if not self.trunks:
            return "no SIP trunk is configured"
        lines = []
        for name in sorted(self.trunks):
            ts = self.trunks[name]
            t = ts.t
            lines.append("SIP trunk %s: %s since %s (%s)" % (
                name, ts.state, _ago(now, ts.since), ts.cause))
            lines.append("  proxy %s:%d %s, addresses %s" % (
                t.proxy, t.port, t.transport, " ".join("%s:%d" % a for a in ts.addrs)
                or "not resolved"))
            if t.register:
                r = ts.reg
                lines.append("  registration: %s%s" % (
                    r.state if r is not None else "waiting for the registrar's address",
                    " (%s)" % r.status if r is not None and r.status else ""))
            else:
                lines.append("  registration: disabled")
            lines.append("  health check every %d s: sent %d, answered %d, misses in a row "
                         "%d, skipped %d, last rtt %s" % (
                             t.interval_ms // 1000, ts.sent, ts.answered, ts.misses, ts.skipped,
                             "-" if ts.last_rtt is None else "%d ms" % ts.last_rtt))
            lines.append("  prefix %s, replace-prefix %s, priority %d; DIDs: %s" % (
                t.prefix or "-", t.replace_prefix or "-", t.priority,
                " ".join(t.dids) or "none"))
        return "\n".join(lines)


def _ago(now, t):
    return "%d.%03d s ago" % ((now - t) // 1000, (now - t) % 1000)
