"""SIP transports over an in-memory network (simulation only).

`SimTransports` is `Transports` (firmware/sipstack/transport.py) with its
sockets made by an injected network object instead of the socket module:
binding, the receive policy (parsing, Via received/rport, stateless answers
to unparsable requests, the drop counters), TCP framing, connection bounds,
idle timeouts and output bounds are the same code.  Only three things differ:
where a socket comes from (`_sock`) and how a task waits for it (`_readable`,
`_writable`, `_more`), since an in-memory socket has no file descriptor for
the scheduler's poll.

    app = Appliance(opts, clock=VirtualClock(), rng=Random(seed), network=net)

The network (tests/sim/simnet.py SimNetwork) must provide:
    net.attach(sched)                  deliveries run on this scheduler's clock
    net.socket(family, kind)           a non-blocking socket-like object with
        bind/getsockname/setblocking/setsockopt/sendto/recvfrom(n, flags)/
        listen/accept/recv/send/close, raising OSError(EAGAIN) when empty,
        and wait_readable(ms)/wait_writable(ms) (scheduler awaitables that
        raise TimeoutError after ms) and pending() (a datagram waits).
The appliance never creates one itself: only tests pass `network=`.
"""
from firmware.sipstack.transport import Transports


class SimTransports(Transports):
    def __init__(self, net, sched, log, rng, host, port, **kw):
        kw["ipv6"] = False          # a simulated host has one address
        Transports.__init__(self, sched, log, rng, host, port, **kw)
        self.net = net
        net.attach(sched)

    def _sock(self, family, kind):
        return self.net.socket(family, kind)

    def _readable(self, s, timeout_ms=None):
        return s.wait_readable(timeout_ms)

    def _writable(self, s, timeout_ms=None):
        return s.wait_writable(timeout_ms)

    def _more(self, s):
        return s.pending
