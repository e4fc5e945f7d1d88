"""The appliance's DNS client: the sans-I/O resolver (firmware/sipstack/dns.py)
on one UDP socket and the SIP core's timer table.

    system {
        name-server [ 192.0.2.53 198.51.100.53 ];   # asked in turn (at most 3)
    }

    r = resolver.get(app)            # built on first use; None without a SIP core
    r.targets(host, port, transport, fn)   # RFC 3263: fn(addrs, ttl_s, error, now)
    r.lookup(name, qtype, fn)        # fn(records, error, now)

The socket is made the way the SIP transports make theirs (`_sock`, so the
simulated network's sockets work too), bound to the SIP host address on a
random source port (RFC 5452: port and query id from the injected random
source).  It is opened on first use and kept.  A failure to open it fails
each lookup with the OS's reason ("socket: ..."); `show dns` lists the name
servers, the cache and the counters.
"""
from firmware.compat import const
from firmware.config import schema as S
from firmware.config import system as _system  # noqa: F401  (declares `system`, with its help)
from firmware.sched import RESTART
from firmware.sipstack import dns

MAX_NAME_SERVERS = const(3)
_PORT_TRIES = const(8)
_RECV_BYTES = const(1232)     # EDNS-free answers are at most 512; be generous

S.register("system", S.LeafList(
    "name-server", S.IPv4Address(), max_items=MAX_NAME_SERVERS,
    help="DNS servers asked for peer and trunk names (in turn, up to %d)" % MAX_NAME_SERVERS))


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


def udp_socket(app, ipv6):
    """A non-blocking UDP socket made as the SIP transports make theirs (the
    simulated network's too), bound to the SIP host on a random port from the
    injected random source (RFC 5452; MicroPython cannot read back port 0).
    Raises OSError after _PORT_TRIES ports in use."""
    import socket
    tp = app.sip.transports
    host = tp.host
    if ipv6 != (":" in host):
        host = "::" if ipv6 else "0.0.0.0"
    err = None
    for _ in range(_PORT_TRIES):
        s = None
        try:
            s = tp._sock(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(_sockaddr(host, 20000 + app.rng.randbelow(40000)))
            s.setblocking(False)
            return s
        except OSError as e:
            err = e
            if s is not None:
                s.close()
    raise err


def _sockaddr(host, port):
    from firmware.sipstack.transport import sockaddr
    return sockaddr(host, port)


def _show(app, args):
    c = getattr(app, "dns", None)
    if c is None:
        return "DNS: not used yet (no peer or trunk is configured by name)"
    return c.show()


def get(app):
    c = getattr(app, "dns", None)
    if c is None:
        if getattr(app, "sip", None) is None:
            return None
        c = app.dns = DnsClient(app)
        c.configure(getattr(app, "name_servers", ()))
        if hasattr(app, "commands"):
            app.commands.register("show dns", _show,
                                  "Show the DNS client: name servers, cached names, counters")
    return c


def apply(app, old, new):
    servers = new.get("system name-server") or ()
    c = getattr(app, "dns", None)
    if c is not None:
        c.configure(servers)
    app.name_servers = tuple(servers)


S.on_commit("dns", apply)
