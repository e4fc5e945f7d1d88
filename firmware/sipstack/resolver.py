"""The appliance's DNS client: the sans-I/O resolver (firmware/sipstack/dns.py)
on one UDP socket and the SIP core's timer table.

    system {
        name-server [ 192.0.2.53 198.51.100.53 ];   # asked in turn (at most 3)
    }

    r = resolver.get(app)            # built on first use; None without a SIP core
    r.targets(host, port, transport, fn)   # RFC 3263: fn(addrs, ttl_s, error, now)
    r.lookup(name, qtype, fn)        # fn(records, error, now)

The client (firmware/sipstack/dnsclient.py, with the sans-I/O resolver of
dns.py) is loaded on first use: an appliance that names no host keeps
neither in its heap.  The socket is made the way the SIP transports make theirs (`_sock`, so the
simulated network's sockets work too), bound to the SIP host address on a
random source port (RFC 5452: port and query id from the injected random
source).  It is opened on first use and kept.  A failure to open it fails
each lookup with the OS's reason ("socket: ..."); `show dns` lists the name
servers, the cache and the counters.
"""
from firmware.compat import const
from firmware.config import schema as S
from firmware.config import system as _system  # noqa: F401  (declares `system`, with its help)

MAX_NAME_SERVERS = const(3)
_PORT_TRIES = const(8)

S.register("system", S.LeafList(
    "name-server", S.IPv4Address(), max_items=MAX_NAME_SERVERS,
    help="DNS servers asked for peer and trunk names (in turn, up to %d)" % MAX_NAME_SERVERS))


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
        from firmware.sipstack.dnsclient import DnsClient   # loaded on first use only
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
