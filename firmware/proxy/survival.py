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
response from a peer address is alive; a transaction to it that times out
is a failure), runs its timer on the core's TU timer table, and drives the
one owner of control (firmware/voice/control.py): the best live peer, else
the local call server.  Every change is logged with its cause; the
survivability LED is on while the local call server is in control with a
peer configured.  `show survivability`: state, since when, cause, probe
statistics and last RTT per address.
"""
from firmware.config import schema as S
from firmware.config.schema import ConfigError
from firmware.proxy.monitor import Monitor, Timers, UP

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


def _peer_key(peers):
    return tuple((p["name"], p["priority"], p["address"], p["port"]) for p in peers)


class Survival:
    def __init__(self, app):
        self.app = app
        self.monitor = None
        self.peers = []
        self.timers = None
        self._key = None
        self._timer = None
        self._deadline = None
        self.counters = {"probes": 0, "probe_send_failures": 0, "changes": 0}
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
        if not peers:
            self.monitor = None
            ctl.configure(None)
            return
        now = self.app.clock.now()
        self.monitor = Monitor(timers, [(p["name"], p["priority"], [(p["address"], p["port"])])
                                        for p in peers], now)
        ctl.configure(peers[0])
        self.app.log.info("survivability: monitoring %s (%s)" % (
            ", ".join(p["name"] for p in peers), timers.describe()))
        self._run()

    # -- the task: probes, timers, control
    def _cancel(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = None

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
        uri = "sip:%s:%d" % addr
        frm = "sip:survivability@%s" % ua.hostport()
        req = ua.new_request("OPTIONS", uri, frm, uri)
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
        if ua.send(req, addr, done, now) is None:
            self.counters["probe_send_failures"] += 1
            m.forget(pid)

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
                    peer = p
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
            lines.append("  %-22s %6s %8s %8s %7s %8s %10s" % (
                "address", "sent", "answered", "failures", "skipped", "last rtt", "last alive"))
            for a in p.addrs:
                lines.append("  %-22s %6d %8d %8d %7d %8s %10s" % (
                    "%s:%d" % a.addr, a.sent, a.answered, a.failures, a.skipped,
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
