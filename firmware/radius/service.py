"""The RADIUS accounting service: listens to the call-event stream
(app.calls, docs/cdr.md), turns each call into Start, Interim-Update and Stop
records (records.py) written to the backlog on flash (journal.py), and sends
them with the client (client.py) from two scheduler tasks: one sends and
retransmits on the client's deadlines, one reads the answers.  In
simulation the socket comes from the simulated network (app.network).

A call whose Start was never acknowledged still gets its Stop (the backlog
sends both, in order); a call ended by a timeout ends through the stream
like any other, and so does a call live at a requested shutdown (app.close);
a call live when the appliance lost power or crashed gets a Stop with
Acct-Terminate-Cause NAS-Reboot and its last known session time at the next
boot (the journal remembers open sessions).
"""
from firmware.compat import const
from firmware.radius import packet as P
from firmware.radius.client import Client, Server
from firmware.radius.journal import Journal, MAX_OPEN
from firmware.radius import records as R
from firmware.radius.config import BASE

MAX_SESSIONS = MAX_OPEN     # calls followed for Interim-Update; beyond: none for that call
RECV_BATCH = const(8)       # datagrams read per wake-up
MAX_ANSWER = const(4096)
_REBOOT_FIELDS = ("id", "calling", "called", "src", "src_kind", "dst", "dst_kind", "call_ids",
                  "mode", "start")


class RadiusSettings:
    """The committed `system accounting radius` statements."""
    def __init__(self, cfg):
        b = BASE + " "
        self.servers = [(a, cfg.get(b + "server %s port" % a), cfg.get(b + "server %s secret" % a))
                        for a in cfg.entries(BASE + " server")]
        self.timeout_ms = cfg.get(b + "timeout") * 1000
        self.retries = cfg.get(b + "retries")
        self.dead_ms = cfg.get(b + "dead-time") * 1000
        self.interim_ms = cfg.get(b + "interim-interval") * 1000
        self.backlog = cfg.get(b + "backlog-size")
        self.nas_id = cfg.get(b + "nas-identifier")
        self.nas_ip = cfg.get(b + "nas-ip-address")


class RadiusService:
    def __init__(self, app):
        self.app = app
        self.settings = None
        self.client = None
        self.journal = Journal(app.state_dir, log=app.log.write)
        self.loaded = self.journal.load(app.clock.now())
        self.reboot_open = list(self.journal.open.items())   # live at a power cut or crash
        self.sessions = {}          # session id -> [CallRecord, next interim ms, interim count]
        self.untracked = 0          # calls beyond MAX_SESSIONS (no Interim-Update)
        self.made = 0               # records queued since boot
        self.sock = None
        self.tasks = []
        self.event = None
        self.send_errors = 0
        self.recv_errors = 0
        self.subscribed = False

    # --- configuration ------------------------------------------------------
    def configure(self, s):
        old = self.settings
        self.settings = s
        self.journal.limit = s.backlog
        servers = [(h, p, sec) for h, p, sec in s.servers]
        if old is None or [(h, p, sec) for h, p, sec in old.servers] != servers or self.client is None:
            self.client = Client(self.journal, [Server(h, p, sec) for h, p, sec in servers],
                                 wall=self.app.time.now, log=self.app.log.write) if servers else None
        if self.client is not None:
            c = self.client
            c.timeout_ms, c.retries, c.dead_ms = s.timeout_ms, s.retries, s.dead_ms
        calls = getattr(self.app, "calls", None)
        if servers and calls is not None and not self.subscribed:
            calls.subscribe(self)
            self.subscribed = True
        elif not servers and self.subscribed:
            calls.unsubscribe(self)
            self.subscribed = False
        if servers:
            self._reboot_stops()
            self._start()
        else:
            self.stop()
        self._wake()

    def _nas(self):
        s = self.settings
        ip = s.nas_ip
        if ip is None:
            host = getattr(self.app.opts, "sip_host", None) or ""
            parts = host.split(".")
            ip = host if len(parts) == 4 and host != "0.0.0.0" and all(p.isdigit() for p in parts) else None
        return (s.nas_id or self.app.hostname, ip)

    def _event_s(self):
        t = self.app.time.now()
        return None if t is None else t // 1000

    def _reboot_stops(self):
        """The Stop of each call that was live when the appliance went down."""
        opened, self.reboot_open = self.reboot_open, []
        for sid, (d, secs) in opened:
            d = dict(d)
            d["end"], d["billsec"] = d.get("start"), secs
            self._queue(sid, P.STOP, 0, R.attributes(d, P.STOP, self._nas(), self._event_s(),
                                                     cause=R.NAS_REBOOT),
                        self.journal.closed(sid))

    # --- the call-event stream ------------------------------------------------
    def call_started(self, rec):
        d = rec.as_dict()
        sid = d["id"]
        if len(self.sessions) < MAX_SESSIONS:
            self.sessions[sid] = [rec, None, 0]
        else:
            self.untracked += 1
        keep = {}       # what a Stop after a reboot needs, not the whole CDR (heap, flash)
        for k in _REBOOT_FIELDS:
            if d.get(k):
                keep[k] = d[k]
        self._queue(sid, P.START, 0, R.attributes(d, P.START, self._nas(), self._event_s()),
                    self.journal.opened(sid, keep))

    def call_answered(self, rec):
        s = self.sessions.get(rec.id)
        iv = self.settings.interim_ms if self.settings else 0
        if s is not None and iv:
            s[1] = self.app.clock.now() + iv
            self._wake()

    def call_ended(self, rec):
        self.sessions.pop(rec.id, None)
        d = rec.as_dict()
        self._queue(d["id"], P.STOP, 0, R.attributes(d, P.STOP, self._nas(), self._event_s()),
                    self.journal.closed(d["id"]))

    def _interims(self, now):
        iv = self.settings.interim_ms if self.settings else 0
        nxt = None
        for sid, s in list(self.sessions.items()):
            if s[1] is None or not iv:
                continue
            if s[1] <= now:
                rec = s[0]
                s[1] = now + iv
                s[2] += 1
                on_clock = rec.start + now - rec.mono_start   # now on the CDR's own clock
                attrs = R.attributes(rec.as_dict(), P.INTERIM_UPDATE, self._nas(),
                                     self._event_s(), now_ms=on_clock)
                secs = R.session_time(rec.as_dict(), on_clock)
                self._queue(sid, P.INTERIM_UPDATE, s[2], attrs, self.journal.progressed(sid, secs))
            if nxt is None or s[1] < nxt:
                nxt = s[1]
        return nxt

    def _queue(self, sid, status, n, attrs, extra):
        if self.journal.add((sid, status, n), attrs, self.app.time.now(),
                            self.app.clock.now(), extra) is not None:
            self.made += 1
        self._wake()

    # --- the tasks ---------------------------------------------------------
    def _wake(self):
        if self.event is not None:
            self.event.set()

    def _start(self):
        if self.tasks:
            return
        from firmware.sched import Event
        self.event = Event(self.app.sched)
        self._open()
        sched = self.app.sched
        self.tasks = [sched.spawn(self._sender(), "radius-send"),
                      sched.spawn(self._receiver(), "radius-recv")]

    def stop(self):
        for t in self.tasks:
            if not t.done():
                t.cancel()
        self.tasks = []
        self.event = None
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def _open(self):
        net = self.app.network
        if net is not None:         # simulation: the appliance's host on the simulated network
            s = net.socket(2, 2)
            s.bind((self.app.opts.sip_host, 0))
        else:
            import socket
            from firmware.sipstack.transport import sockaddr
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(sockaddr("0.0.0.0", 0))
            except OSError:
                s.close()
                raise
        s.setblocking(False)
        self.sock = s

    def _readable(self, timeout_ms=None):
        if self.app.network is not None:
            return self.sock.wait_readable(timeout_ms)
        return self.app.sched.readable(self.sock, timeout_ms)

    async def _sender(self):
        from firmware.sched import TimeoutError
        from firmware.sipstack.transport import sockaddr
        app = self.app
        ev = self.event
        while True:
            ev.clear()
            now = app.clock.now()
            nxt = self._interims(now)
            c = self.client
            if c is not None:
                for addr, data in c.poll(now):
                    try:
                        if app.network is not None:
                            self.sock.sendto(data, addr)
                        else:
                            self.sock.sendto(data, sockaddr(addr[0], addr[1]))
                    except OSError as e:
                        self.send_errors += 1
                        app.log.write("warning", "radius: cannot send to %s:%d: %s" % (addr[0], addr[1], e))
                d = c.next_deadline(app.clock.now())
                if d is not None and (nxt is None or d < nxt):
                    nxt = d
            wait = None if nxt is None else max(0, nxt - app.clock.now())
            if wait == 0:
                await app.sched.sleep(0)
                continue
            try:
                await ev.wait(wait)
            except TimeoutError:
                pass

    async def _receiver(self):
        from firmware.sipstack.transport import peer, _errno, _EAGAIN
        app = self.app
        while True:
            await self._readable()
            for _ in range(RECV_BATCH):      # bounded work per wake-up
                try:
                    data, raw = self.sock.recvfrom(MAX_ANSWER)
                except OSError as e:
                    if _errno(e) is None or _errno(e) in _EAGAIN:
                        break
                    self.recv_errors += 1   # an ICMP error reported here: consumed, read on
                    continue
                addr = raw if isinstance(raw, tuple) else peer(raw)
                if self.client is not None and self.client.receive(data, addr[:2], app.clock.now()):
                    self._wake()

    # --- console ------------------------------------------------------------
    def show(self):
        c = self.client
        j = self.journal
        now = self.app.clock.now()
        out = ["RADIUS accounting: %s" % (c.state(now) if c else "no server")]
        if c is not None:
            out.append("  %-22s %-8s %8s %8s %8s %8s %8s" % (
                "Server", "State", "Sent", "Acked", "Retrans", "Timeouts", "Bad"))
            for i, s in enumerate(c.servers):
                st = s.state
                if st == "down" and s.down_until > now:
                    st = "down %ds" % ((s.down_until - now + 999) // 1000)
                mark = "*" if i == c.current else " "
                out.append(" %s%-22s %-8s %8d %8d %8d %8d %8d" % (
                    mark, "%s:%d" % s.addr, st, s.sent, s.acked, s.retransmitted, s.timeouts, s.bad))
                if s.last_bad:
                    out.append("    last refused answer: %s" % s.last_bad)
            out.append("  Failovers: %d" % c.failovers)
        out.append("  Backlog: %d of %d records on flash (%s), %d dropped when full, "
                   "%d duplicates refused" % (len(j.pending), j.limit, j.path, j.dropped, j.duplicates))
        out.append("  Records made since boot: %d; found at boot: %d; live calls followed: %d"
                   % (self.made, self.loaded, len(self.sessions)))
        extra = []
        if j.torn:
            extra.append("%d damaged journal lines skipped" % j.torn)
        if j.write_errors:
            extra.append("%d journal write errors" % j.write_errors)
        if self.untracked:
            extra.append("%d calls without Interim-Update (more than %d live)" % (self.untracked, MAX_SESSIONS))
        if self.send_errors or self.recv_errors:
            extra.append("%d send errors, %d receive errors" % (self.send_errors, self.recv_errors))
        if extra:
            out.append("  " + "; ".join(extra))
        return "\n".join(out)
