"""The survivability monitor's firmware task and its configuration:

    services convergence-services survivability {
        probe-interval 1;           # seconds between OPTIONS probes to each peer address
        failure-timeout 3;          # seconds of silence that declare a peer dead
                                    # (Juniper SRX: default 32, 16-120; accepted)
        failback-window 16;         # seconds of probes that must be answered ...
        failback-threshold 80;      # ... at least this share (%) of them
        hold-down 10;               # then this long again before control goes back
        failure-codes [ 503 ];      # answers that count as dead, not alive
    }

The core is firmware/proxy/monitor.py (sans-I/O); this module sends its
probes as OPTIONS client transactions of the appliance's user agent,
feeds it the responses and the passive signals of the SIP core (every
response from a peer address is alive; a transaction to it that times out,
an outgoing TCP connection to it refused or reset, ICMP unreachable for
a UDP peer address (a connected "sentinel" socket per address, up to
MAX_SENTINELS, sends a CRLF keep-alive with each probe: Linux reports ICMP
errors only to connected sockets, on both interpreters), and a peer name
that fails to resolve are failures), runs its timer on the core's TU timer table, and drives the
one owner of control (firmware/voice/control.py): the best live peer, else
the local call server.  Every change is logged with its cause; the
survivability LED is on while the local call server is in control with a
peer configured.  `show survivability`: state, since when, cause, probe
statistics and last RTT per address.
"""
from firmware.compat import const
from firmware.config import schema as S
from firmware.config import voice as _voice  # noqa: F401  (declares `services` after `system`)
from firmware.config.schema import ConfigError
from firmware.proxy.monitor import Monitor, Timers, UP, _hp
from sip.transport import is_ip


def _literal(p):
    """The addresses of a peer given by IP (a name's come from DNS)."""
    return [(p["address"], p["port"])] if is_ip(p["address"]) else []

BASE = "services convergence-services"

S.register(BASE, S.Container("survivability", "Peer call server monitor: failover and failback", children=(
    S.Leaf("probe-interval", S.Integer(1, 60, "seconds"), default=1,
           help="Seconds between OPTIONS probes to every peer address"),
    S.Leaf("failure-timeout", S.Integer(2, 120, "seconds"), default=3,
           help="A peer with nothing alive heard for this long is dead (SRX: 32, 16-120)"),
    S.Leaf("failback-window", S.Integer(2, 600, "seconds"), default=16,
           help="Monitor window of probes before control goes back to a recovered peer"),
    S.Leaf("failback-threshold", S.Integer(1, 100, "percent"), default=80,
           help="Share of the window's probes that must be answered"),
    S.Leaf("hold-down", S.Integer(0, 600, "seconds"), default=10,
           help="After a good window, this long again before control goes back"),
    S.LeafList("failure-codes", S.Integer(300, 699), max_items=8,
               help="Probe answers that count as dead (default: 503)"),
)))


def timers_of(cfg):
    c = cfg.section(BASE + " survivability")
    codes = c.get("failure-codes")
    return Timers(c.get("probe-interval") * 1000, c.get("failure-timeout") * 1000,
                  c.get("failback-window") * 1000, c.get("failback-threshold"),
                  c.get("hold-down") * 1000, tuple(codes) if codes else (503,))


def check(cfg):
    t = timers_of(cfg)
    p = BASE + " survivability "
    if t.failure_ms < 2 * t.interval_ms:
        raise ConfigError(p + "failure-timeout", t.failure_ms // 1000,
                          "must be at least twice probe-interval (%d s)" % (t.interval_ms // 1000))
    if t.window_ms < 2 * t.interval_ms:
        raise ConfigError(p + "failback-window", t.window_ms // 1000,
                          "must be at least twice probe-interval (%d s)" % (t.interval_ms // 1000))


_KEY_FIELDS = ("name", "priority", "address", "port", "port_set", "transport", "registrar",
               "register", "expires")


def _peer_key(peers):
    # every field: a change to any of them restarts the monitor and control
    return tuple(tuple(p.get(k) for k in _KEY_FIELDS) for p in peers)


DNS_RETRY_MS = const(5000)     # a name that failed to resolve is asked again after this
MAX_SENTINELS = const(4)       # connected UDP sockets hearing ICMP errors (more addresses: none)
_SENTINEL_PING = b"\r\n\r\n"   # a keep-alive SIP servers ignore (RFC 5626 §4.4.1 style)
_ICMP = {111: "ICMP port unreachable", 113: "ICMP host unreachable",
         101: "ICMP network unreachable"}


class Survival:
    def __init__(self, app):
        self.app = app
        self.monitor = None
        self.peers = []
        self.timers = None
        self._key = None
        self._timer = None
        self._deadline = None
        self._dns_timers = {}     # (peer name, "address" or "registrar") -> timer
        self.generation = 0       # of the configuration: stale DNS answers are dropped
        self.counters = {"probes": 0, "probe_send_failures": 0, "changes": 0,
                         "dns_lookups": 0, "dns_failures": 0, "icmp_errors": 0,
                         "sentinels_full": 0}
        self._sentinels = {}      # (host, port) -> UDP socket connected to it
        app.control.subscribe(self._led)
        core = getattr(app, "sip", None)
        if core is not None:
            core.watch(self._passive)

    def configure(self, peers, timers):
        """peers: the settings dicts, best first (firmware/voice/config.py)."""
        ctl = self.app.control
        key = (_peer_key(peers), timers.describe())
        if key == self._key:
            return
        self._key = key
        self.peers = peers
        self.timers = timers
        self._cancel()
        self._cancel_dns()
        self._close_sentinels()
        if not peers:
            self.monitor = None
            ctl.configure(None)
            return
        now = self.app.clock.now()
        self.generation += 1
        for p in peers:
            p["resolved"] = []
        self.monitor = Monitor(timers, [(p["name"], p["priority"], _literal(p))
                                        for p in peers], now)
        first = self._control_peer(peers[0])
        if first is None:
            ctl.configure(None, "configuration: resolving %s" % peers[0]["address"])
        else:
            ctl.configure(first)
        self.app.log.info("survivability: monitoring %s (%s)" % (
            ", ".join(p["name"] for p in peers), timers.describe()))
        for p in peers:
            for what in ("address", "registrar"):
                if not is_ip(p[what]) and (what == "address" or p[what] != p["address"]):
                    self._resolve(p, what, self.generation)
        self._run()

    # -- DNS (firmware/sipstack/resolver.py): names of peers and registrars
    def _resolve(self, p, what, gen):
        from firmware.sipstack import resolver
        c = resolver.get(self.app)
        port = p["port"] if (p["port_set"] or what == "registrar") else None

        def done(addrs, ttl_s, error, now, p=p, what=what, gen=gen):
            if gen != self.generation:
                return          # an answer for a configuration that is gone
            self._resolved(p, what, addrs, ttl_s, error, now, gen)
        self.counters["dns_lookups"] += 1
        c.targets(p[what], port, p["transport"], done)

    def _resolved(self, p, what, addrs, ttl_s, error, now, gen):
        m = self.monitor
        if error is not None or not addrs:
            # keep the addresses we had (serve stale) and count a passive
            # failure; ask again soon
            self.counters["dns_failures"] += 1
            self.app.log.write("warning", "survivability: %s %s of peer %s did not resolve: %s"
                               % (what, p[what], p["name"], error))
            if what == "address":
                m.peer_failed(p["name"], "passive: DNS %s: %s" % (p[what], error), now)
            delay = DNS_RETRY_MS
        else:
            key = "resolved" if what == "address" else "registrar_resolved"
            if p.get(key) != addrs:
                self.app.log.info("survivability: %s %s of peer %s is %s (ttl %d s)" % (
                    what, p[what], p["name"], " ".join(_hp(a) for a in addrs), ttl_s))
            p[key] = addrs
            if what == "address":
                m.set_addresses(p["name"], addrs, now)
            delay = ttl_s * 1000     # re-resolve when the answer expires
        core = self.app.sip
        self._dns_timers[(p["name"], what)] = core.call_later(
            delay, lambda: gen == self.generation and self._resolve(p, what, gen))
        self._sync_control("DNS")
        self._decide(now)
        self._run()

    def _control_peer(self, p):
        """The settings dict control gets for peer p: with a name, its best
        resolved address (the last one heard alive) in place of the name;
        None while it has none."""
        if is_ip(p["address"]) and is_ip(p["registrar"]):
            return p
        q = dict(p)
        if not is_ip(p["address"]):
            addrs = p.get("resolved") or []
            if not addrs:
                return None
            best = addrs[0]
            m = self.monitor
            seen = -1
            for pe in (m.peers if m is not None else ()):
                if pe.name == p["name"]:
                    for a in pe.addrs:
                        if a.last_alive is not None and a.last_alive > seen:
                            seen, best = a.last_alive, a.addr
            q["address"], q["port"] = best
        if p["registrar"] == p["address"]:
            q["registrar"] = q["address"]
        elif not is_ip(p["registrar"]):
            r = p.get("registrar_resolved") or []
            if not r:
                return None
            q["registrar"] = r[0][0]
        return q

    def _sync_control(self, why):
        """A name resolved anew: control follows when its peer is the best."""
        m = self.monitor
        ctl = self.app.control
        if m is None or m.best is None:
            return
        for p in self.peers:
            if p["name"] != m.best:
                continue
            q = self._control_peer(p)
            cur = ctl.peer
            if q is None:
                return
            addrs = p.get("resolved") or [(q["address"], q["port"])]
            if cur is not None and cur["name"] == p["name"] and \
                    (cur["address"], cur["port"]) in addrs and cur["registrar"] == q["registrar"]:
                return          # still one of its addresses: no change of control
            ctl.select(q, "survivability: peer %s at %s:%d (%s)" % (
                p["name"], q["address"], q["port"], why))

    # -- the task: probes, timers, control
    def _cancel(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = None

    def _cancel_dns(self):
        for t in self._dns_timers.values():
            t.cancel()
        self._dns_timers = {}

    def _run(self):
        m = self.monitor
        core = getattr(self.app, "sip", None)
        if m is None or core is None:
            return
        now = self.app.clock.now()
        for pid, name, addr in m.due(now):
            self._probe(pid, addr, now)
        self._decide(now)
        d = m.next_deadline()
        if d != self._deadline or self._timer is None:
            self._cancel()
            self._deadline = d
            self._timer = core.call_later(max(0, d - now), self._fire)

    def _fire(self):
        self._timer = None
        self._deadline = None
        self._run()

    def _probe(self, pid, addr, now):
        from firmware.sipstack.dialogs import user_agent
        ua = user_agent(self.app)
        m = self.monitor
        uri = "sip:%s" % _hp(addr)
        frm = "sip:survivability@%s" % ua.hostport()
        tp = "TCP" if self._transport_of(m, pid) == "tcp" else "UDP"
        req = ua.new_request("OPTIONS", uri, frm, uri, transport=tp)
        req.add("Accept", "application/sdp")

        def done(resp, now, pid=pid, m=m):
            if resp.status < 200 or self.monitor is not m:
                return
            m.answered(pid, resp.status, now)
            px = getattr(self.app, "outbound", None)
            if px is not None:
                px.peer_answered(addr, resp)      # does the peer take Path (RFC 3327)?
            self._decide(now)

        self.counters["probes"] += 1
        try:
            sent = ua.send(req, addr, done, now, tp)
        except (OSError, ValueError) as e:      # e.g. no IPv6 on this host
            sent = None
            self.app.log.write("warning", "survivability: probe to %s not sent: %s" % (
                _hp(addr), e))
        if sent is None:
            self.counters["probe_send_failures"] += 1
            m.forget(pid)
        if tp == "UDP":
            self._sentinel(addr, now)

    # -- ICMP unreachable (UDP peers)
    def _sentinel(self, addr, now):
        """Linux reports an ICMP error for a UDP datagram only to a socket
        connected to its destination: one such socket per peer address sends
        a CRLF keep-alive with every probe, and an error it reports (on the
        next read or send) is a passive failure of that address."""
        s = self._sentinels.get(addr)
        if s is None:
            if len(self._sentinels) >= MAX_SENTINELS:
                self.counters["sentinels_full"] += 1
                return
            from firmware.sipstack.resolver import udp_socket, _sockaddr
            s = None
            try:
                s = udp_socket(self.app, ":" in addr[0])
                s.connect(_sockaddr(addr[0], addr[1]))
            except OSError as e:
                self.app.log.write("warning", "survivability: no ICMP watch of %s: %s" % (
                    _hp(addr), e))
                if s is not None:
                    s.close()
                return
            self._sentinels[addr] = s
        err = None
        for _ in range(8):              # what comes back is read away (bounded)
            try:
                s.recv(64)
            except OSError as e:
                err = e.args[0] if e.args else None
                break
        if err not in _ICMP:
            try:
                s.send(_SENTINEL_PING)
            except OSError as e:
                err = e.args[0] if e.args else None
        if err in _ICMP:
            self.counters["icmp_errors"] += 1
            self.monitor.failed(addr, "passive: %s" % _ICMP[err], now)
            self._decide(now)

    def _close_sentinels(self):
        for s in self._sentinels.values():
            try:
                s.close()
            except OSError:
                pass
        self._sentinels = {}

    def _transport_of(self, m, pid):
        pa = m.probes.get(pid)
        for p in self.peers:
            if pa is not None and p["name"] == pa[0].name:
                return p["transport"]
        return "udp"

    def _passive(self, kind, addr, now):
        m = self.monitor
        if m is None:
            return
        if kind == "response":
            m.heard(addr, now)
        else:
            m.failed(addr, "passive: %s" % kind, now)
        self._decide(now)

    def _decide(self, now):
        m = self.monitor
        for best, cause in m.on_timer(now):
            self.counters["changes"] += 1
            peer = None
            for p in self.peers:
                if p["name"] == best:
                    peer = self._control_peer(p)
            self.app.log.info("survivability: %s" % cause)
            self.app.control.select(peer, "survivability: " + cause)

    def _led(self, ctl, old):
        hw = getattr(self.app, "hardware", None)
        leds = getattr(getattr(hw, "hw", None), "leds", None)
        if leds is None or "survivability" not in leds.pins:
            return
        leds.set("survivability", "on" if ctl.local and self.monitor is not None else "off")

    # -- show survivability
    def show(self):
        ctl = self.app.control
        now = self.app.clock.now()
        m = self.monitor
        lines = ["Control: %s since %s (%s)" % (ctl.who(), _ago(now, ctl.since), ctl.cause)]
        if m is None:
            lines.append("Monitor: off (no peer call server configured)")
            return "\n".join(lines)
        lines.append("Timers: " + self.timers.describe())
        lines.append("Changes of control by the monitor: %d" % m.changes)
        for p in m.peers:
            lines.append("Peer %s (priority %d): %s since %s (%s)" % (
                p.name, p.priority, p.state, _ago(now, p.since), p.cause))
            for cfg in self.peers:
                if cfg["name"] == p.name and not is_ip(cfg["address"]):
                    lines.append("  DNS %s: %s; %d failure(s) to resolve" % (
                        cfg["address"], " ".join(_hp(a) for a in cfg.get("resolved") or ())
                        or "not resolved", p.failures))
            lines.append("  %-22s %6s %8s %8s %7s %8s %10s" % (
                "address", "sent", "answered", "failures", "skipped", "last rtt", "last alive"))
            for a in p.addrs:
                lines.append("  %-22s %6d %8d %8d %7d %8s %10s" % (
                    _hp(a.addr), a.sent, a.answered, a.failures, a.skipped,
                    "-" if a.last_rtt is None else "%d ms" % a.last_rtt,
                    "-" if a.last_alive is None else _ago(now, a.last_alive)))
        return "\n".join(lines)


def _ago(now, t):
    return "%d.%03d s ago" % ((now - t) // 1000, (now - t) % 1000)


def _show(app, args):
    s = getattr(app, "survival", None)
    if s is None:
        return "Control: %s (%s)\nMonitor: off (no peer call server configured)" % (
            app.control.who(), app.control.cause)
    return s.show()


def apply(app, peers, cfg):
    """From the gateway's commit hook (firmware/voice/config.py), after the
    peers are parsed: build or update the monitor."""
    if hasattr(app, "commands"):
        app.commands.register("show survivability", _show,
                              "Show the peer monitor: control, probe statistics, RTT per address")
    s = getattr(app, "survival", None)
    if s is None:
        if not peers:
            app.control.configure(None)
            return
        s = app.survival = Survival(app)
    s.configure(peers, timers_of(cfg))
