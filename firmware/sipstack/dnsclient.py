"""The DNS client of the appliance: the sans-I/O resolver
(firmware/sipstack/dns.py) on one UDP socket (resolver.udp_socket) and the
SIP core's timer table.  Built by firmware/sipstack/resolver.py get() on
first use; see there for the configuration and the API."""
from firmware.compat import const
from firmware.sched import RESTART
from firmware.sipstack import dns
from firmware.sipstack.resolver import udp_socket, _sockaddr

_RECV_BYTES = const(1232)     # EDNS-free answers are at most 512; be generous


class DnsClient:
    def __init__(self, app):
        self.app = app
        self.res = dns.Resolver([], app.rng)
        self.sock = None
        self.task = None
        self._timer = None
        self._deadline = None
        self.error = None

    def configure(self, servers):
        self.res.set_servers([(s, 53) for s in servers])

    def lookup(self, name, qtype, fn):
        self.res.lookup(name, qtype, self.app.clock.now(), fn)
        self._flush()

    def targets(self, host, port, transport, fn):
        dns.sip_targets(self.res, host, port, transport, self.app.clock.now(), fn)
        self._flush()

    # -- I/O
    def _open(self):
        if self.sock is not None:
            return True
        try:
            self.sock = udp_socket(self.app, False)
        except OSError as e:
            self.error = "socket: %s" % e
            return False
        self.task = self.app.sched.spawn(self._reader, "dns", RESTART)
        return True

    def _flush(self):
        out = self.res.take()
        if out and not self._open():
            # fail every question now: nothing can be sent
            now = self.app.clock.now()
            for key in list(self.res.pending):
                p = self.res.pending.pop(key)
                self.res._done(p, None, self.error, now, None)
            return
        for data, dest in out:
            try:
                self.sock.sendto(data, _sockaddr(dest[0], dest[1]))
            except OSError:
                self.res.count("send_errors")   # ICMP or no route: the retry timer runs
        self._arm()

    def _arm(self):
        d = self.res.next_deadline()
        if d == self._deadline and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = d
        if d is not None:
            self._timer = self.app.sip.call_later(max(0, d - self.app.clock.now()), self._fire)

    def _fire(self):
        self._timer = None
        self._deadline = None
        self.res.on_timer(self.app.clock.now())
        self._flush()

    async def _read(self):
        tp = self.app.sip.transports
        s = self.sock
        while True:
            await tp._readable(s)
            while True:
                try:
                    data, addr = s.recvfrom(_RECV_BYTES)
                except OSError:
                    break           # EAGAIN, or ICMP (ECONNREFUSED): the retry timer runs
                from firmware.sipstack.transport import peer
                self.res.received(data, peer(addr), self.app.clock.now())
            self._flush()

    def _reader(self):
        return self._read()

    def show(self):
        r = self.res
        now = self.app.clock.now()
        lines = ["Name servers: %s" % (" ".join(s[0] for s in r.servers) or "none")]
        if self.error:
            lines.append("Socket: %s" % self.error)
        lines.append("Counters: " + ", ".join("%s %d" % (k, r.counters[k])
                                               for k in sorted(r.counters)))
        lines.append("%-40s %-5s %8s  %s" % ("name", "type", "ttl left", "answer"))
        names = {dns.A: "A", dns.AAAA: "AAAA", dns.SRV: "SRV"}
        for (name, t), e in sorted(r.cache.items()):
            left = (e.expires - now) // 1000
            if left < 0:
                continue
            if e.records is None:
                ans = "(%s)" % e.error
            else:
                ans = " ".join(_fmt(v) for _, _, v in e.records)
            lines.append("%-40s %-5s %7ds  %s" % (name, names.get(t, str(t)), left, ans))
        return "\n".join(lines)


def _fmt(v):
    if isinstance(v, tuple):
        return "%d/%d %s:%d" % (v[0], v[1], v[3], v[2])
    return str(v)


