"""SimNetwork: an in-memory IP network on the virtual clock, for whole-appliance
simulations on both interpreters (no OS sockets, no ports, no wall clock).

Named hosts, each with one address, exchange datagrams (SIP over UDP, RTP)
and byte streams (SIP over TCP) through socket-like objects.  Every link
(an ordered pair of hosts) has its own seeded impairments, and every delivery
is an event on the scheduler's clock, so a run replays exactly from its seed:
one Random drawn from the seed drives every choice the network makes (loss,
duplication, jitter, reordering), and events at the same millisecond are
delivered in the order they were sent.

    net = SimNetwork(seed=7, trace=256)       # trace: ring of the last N deliveries
    net.add_host("appliance", "127.0.0.1")    # addresses are labels; any string
    net.attach(app.sched)                     # before the first send (simulated() does it)
                                              # or net.use_clock(clock): a sans-I/O loop
                                              # calls net.next_deadline(), net.deliver_due()
    s = net.socket(AF_INET, SOCK_DGRAM)       # or net.host("name").socket(kind)
    s.bind(("127.0.0.1", 0))                  # port 0: the next ephemeral port
    s.sendto(b"...", ("127.0.0.1", 5060)); s.recvfrom(n); s.recv(n); s.recv_into(buf)
    await s.wait_readable(timeout_ms)         # TimeoutError after timeout_ms
    net.link("phones", "appliance", loss=0.1, latency=20, jitter=10,
             reorder=0.05, reorder_ms=40, dup=0.01)   # both directions; oneway=True
    net.partition("appliance", ["hq"], reset=False)  # cut both ways; reset=True also
                                              # resets streams and refuses connects
    net.heal("appliance", ["hq"])  /  net.heal()     # restore one cut / every cut
    net.stats("phone1", "appliance")          # per-link counters (a dict)
    net.traced()                              # [(ms, "src:port", "dst:port", first line)]

Sockets (SimSocket) follow the non-blocking socket API the firmware uses:
bind, getsockname, setblocking, setsockopt/getsockopt (IP_TOS is kept; the
mark of the last datagram sent is `net.last_tos`), sendto, recvfrom(n,
MSG_PEEK), recv, recv_into, close; streams: listen, accept, connect, send,
sendall, recv, getpeername.  An empty socket raises OSError(EAGAIN); wait_readable() and
wait_writable() are the scheduler awaitables (firmware.sipstack.simnet's
SimTransports uses them).  A socket bound to an address no host has yet
creates a host named by that address (raw test clients: `w.raw("127.0.0.9")`).

Datagrams: a send draws, in this order, loss, duplication (a second copy),
then for each copy latency + uniform jitter and reordering (held back by
reorder_ms more, so later datagrams overtake it; the others keep the link's
FIFO order).  A datagram in flight when its link is cut is dropped on arrival.
No listener at the destination: dropped, counted ("no_listener"); an address
no host has: counted in net.counters["no_route"].  ICMP port unreachable: a
datagram socket connect()ed to its destination (connect sets the default
destination, send() uses it) gets ECONNREFUSED on its next recv or send
after one of its datagrams found no listener, as Linux reports it (counted
"icmp_unreachable"; not while the way back is cut).

Streams: reliable and in order, as TCP is.  Loss delays a segment by
STREAM_RTO_MS per loss drawn (the later ones wait behind it); a silent
partition holds the stream until heal() or STREAM_GIVE_UP_MS, then both ends
get ETIMEDOUT; a reset partition (partition(..., reset=True)) resets the open
connections across it (ECONNRESET) and refuses new ones (ECONNREFUSED), as a
rebooted peer or an ICMP-reporting router does.  connect() returns at once;
the connection reaches the listener's accept queue after the link latency; a
refused one shows on the client's next recv/send (ECONNREFUSED).

Bounds (all named, each with a defined overflow):
  MAX_IN_FLIGHT datagrams and stream segments in flight on the whole network:
      beyond, the datagram is dropped ("in_flight_overflow"; a stream send
      raises EAGAIN);
  SOCKET_QUEUE datagrams waiting in one socket: beyond, the new one is dropped
      ("rx_overflow", like a full socket buffer);
  STREAM_WINDOW bytes unread plus in flight per stream direction: send()
      accepts what fits (EAGAIN when nothing does) and the writer waits;
  MAX_BACKLOG (or listen(n), whichever is smaller) connections waiting to be
      accepted: beyond, the connection is refused;
  the trace ring: `trace` entries.

Replay: a failing test prints the seed of every network it built
(tests/sim/conftest.py, from take_seeds()); the same seed gives the same
run, datagram for datagram (tests/sim/test_sim_replay.py checks it).

Per-link statistics: sent, delivered, bytes, lost, duplicated, reordered,
partitioned, no_listener, rx_overflow, in_flight_overflow, segments,
retransmits, resets, icmp_unreachable.
"""
import heapq

from firmware.compat import Random, const
from firmware.sched import Event, TimeoutError
from firmware.sipstack.transport import peer

MAX_IN_FLIGHT = const(4096)
SOCKET_QUEUE = const(256)
STREAM_WINDOW = const(65536)
MAX_BACKLOG = const(16)
STREAM_RTO_MS = const(200)
STREAM_GIVE_UP_MS = const(30000)
EPHEMERAL_FIRST = const(49152)
DEFAULT_REORDER_MS = const(20)

AF_INET = const(2)
AF_INET6 = const(10)
SOCK_STREAM = const(1)
SOCK_DGRAM = const(2)
MSG_PEEK = const(2)
_IPPROTO_IP = const(0)
_IP_TOS = const(1)

EAGAIN = const(11)
EBADF = const(9)
EPIPE = const(32)
EADDRINUSE = const(98)
ECONNRESET = const(104)
ENOTCONN = const(107)
ETIMEDOUT = const(110)
ECONNREFUSED = const(111)
EINVAL = const(22)

_DGRAM, _SEG, _SYN = 0, 1, 2

MAX_SEEDS = const(16)          # seeds remembered for failure reports (see take_seeds)
SEEDS = []                    # the seeds of the networks built since take_seeds()


def take_seeds():
    """The seeds of the SimNetworks built since the last call (at most
    MAX_SEEDS, oldest first); tests/sim/conftest.py prints them when a test
    fails, so any failure names the seed that replays it."""
    out = SEEDS[:]
    del SEEDS[:]
    return out


LINK_STATS = ("sent", "delivered", "bytes", "lost", "duplicated", "reordered",
              "partitioned", "no_listener", "rx_overflow", "in_flight_overflow",
              "segments", "retransmits", "resets", "icmp_unreachable")


def _err(code):
    return OSError(code)


def norm_addr(a):
    """(host, port) from a tuple or a raw MicroPython socket address."""
    if isinstance(a, tuple):
        h = a[0]
        if h.startswith("["):
            h = h[1:-1]
        return (h, int(a[1]))
    return peer(a)


def first_line(data):
    i = data.find(b"\r\n")
    line = data if i < 0 else data[:i]
    try:
        return bytes(line[:80]).decode()
    except UnicodeError:
        return "<%d bytes>" % len(data)


class Link:
    """One direction between two hosts: its impairments and its counters."""

    def __init__(self, src, dst, loss=0.0, latency=0, jitter=0, reorder=0.0,
                 reorder_ms=DEFAULT_REORDER_MS, dup=0.0):
        self.src = src
        self.dst = dst
        self.loss = loss
        self.latency = latency
        self.jitter = jitter
        self.reorder = reorder
        self.reorder_ms = reorder_ms
        self.dup = dup
        self.last_at = 0        # FIFO: a datagram not reordered never arrives before this
        self.stats = {}
        for k in LINK_STATS:
            self.stats[k] = 0

    def set(self, **kw):
        for k in kw:
            if k not in ("loss", "latency", "jitter", "reorder", "reorder_ms", "dup"):
                raise ValueError("no link parameter %s" % k)
            setattr(self, k, kw[k])

    def count(self, name, n=1):
        self.stats[name] += n

    def __repr__(self):
        return "<Link %s->%s loss %s latency %s+%s>" % (self.src, self.dst, self.loss,
                                                       self.latency, self.jitter)


class SimHost:
    def __init__(self, net, name, addr):
        self.net = net
        self.name = name
        self.addr = addr

    def socket(self, kind=SOCK_DGRAM, family=AF_INET):
        return SimSocket(self.net, family, kind, self)

    def __repr__(self):
        return "<SimHost %s %s>" % (self.name, self.addr)


class SimNetwork:
    def __init__(self, seed=1, trace=0, rng=None, **link_defaults):
        self.seed = seed
        if len(SEEDS) < MAX_SEEDS:
            SEEDS.append(seed)
        # the network's own stream, not the appliance's Random(seed) again
        self.rng = rng or Random((seed * 0x9E3779B1 + 0x51D) & 0xFFFFFFFFFFFF)
        self.defaults = link_defaults
        Link(None, None).set(**link_defaults)      # reject unknown parameters now
        self.sched = None
        self.clock = None
        self.hosts = {}          # name -> SimHost
        self._by_addr = {}       # address -> SimHost
        self._bound = {}         # (kind, addr, port) -> SimSocket
        self._links = {}         # (src name, dst name) -> Link
        self._cut = {}           # (src name, dst name) -> True (reset) / False (silent)
        self._heap = []          # (at, seq, kind, a, b, c)
        self._seq = 0
        self._next_port = EPHEMERAL_FIRST
        self._task = None
        self._wake = None
        self._sleep_until = None
        self._sleeping = False
        self.trace_max = trace
        self.trace = []
        self._trace_pos = 0
        self.last_tos = None
        self.counters = {"no_route": 0, "in_flight_overflow": 0, "delivered": 0}

    # -- topology
    def add_host(self, name, addr):
        if name in self.hosts or addr in self._by_addr:
            raise ValueError("host %s or address %s exists" % (name, addr))
        h = SimHost(self, name, addr)
        self.hosts[name] = h
        self._by_addr[addr] = h
        return h

    def host(self, name_or_addr):
        h = self.hosts.get(name_or_addr) or self._by_addr.get(name_or_addr)
        if h is None:
            raise KeyError("no host %s" % name_or_addr)
        return h

    def host_of(self, addr):
        """The host with this address; one named by it is created if none has it."""
        h = self._by_addr.get(addr)
        if h is None:
            h = self.add_host(addr, addr)
        return h

    def _names(self, group):
        if isinstance(group, str):
            group = [group]
        return [self.host(g).name for g in group]

    def link(self, a, b, oneway=False, **params):
        """Set impairments on a->b (and b->a unless oneway); a and b are host
        names, addresses or lists of them.  Returns the a->b links."""
        out = []
        for x in self._names(a):
            for y in self._names(b):
                self.get_link(x, y).set(**params)
                out.append(self.get_link(x, y))
                if not oneway:
                    self.get_link(y, x).set(**params)
        return out

    def get_link(self, src, dst):
        k = (src, dst)
        ln = self._links.get(k)
        if ln is None:
            ln = self._links[k] = Link(src, dst)
            ln.set(**self.defaults)
        return ln

    def stats(self, a, b):
        """Counters of the link a->b (host names or addresses)."""
        return self.get_link(self.host(a).name, self.host(b).name).stats

    def links(self):
        return list(self._links.values())

    def partition(self, a, b, reset=False):
        """Cut every link between groups a and b, both ways."""
        for x in self._names(a):
            for y in self._names(b):
                self._cut[(x, y)] = reset
                self._cut[(y, x)] = reset
        if reset:
            for s in list(self._bound.values()) + self._streams():
                if s.kind == SOCK_STREAM and s.peer_end is not None and s.error is None:
                    if self._cut.get((s.host.name, s.peer_end.host.name)):
                        self.get_link(s.host.name, s.peer_end.host.name).count("resets")
                        s._fail(ECONNRESET)
                        s.peer_end._fail(ECONNRESET)

    def heal(self, a=None, b=None):
        """Restore the cut between a and b, or every cut."""
        if a is None:
            self._cut = {}
        else:
            for x in self._names(a):
                for y in self._names(b):
                    self._cut.pop((x, y), None)
                    self._cut.pop((y, x), None)
        self._kick(self.clock.now() if self.clock else 0)

    def is_cut(self, src, dst):
        return (src, dst) in self._cut

    def _streams(self):
        out = []
        for s in self._bound.values():
            out.extend(s.accepted)
        return out

    # -- scheduling
    def attach(self, sched):
        """Run deliveries as one task in sched (its clock is the network's)."""
        if self.sched is sched:
            return
        self.sched = sched
        self.clock = sched.clock
        self._task = None

    def use_clock(self, clock):
        """Manual stepping, for a sans-I/O driver with its own loop and no
        scheduler: it advances `clock` to next_deadline() and calls
        deliver_due(); sockets are then read with recvfrom until EAGAIN."""
        self.sched = None
        self.clock = clock
        self._task = None

    def next_deadline(self):
        """When the next datagram or segment arrives (ms), or None."""
        return self._heap[0][0] if self._heap else None

    def deliver_due(self):
        """Deliver everything due by the clock's now (the scheduler task's
        step, and the manual driver's)."""
        heap = self._heap
        now = self.clock.now()
        while heap and heap[0][0] <= now:
            e = heapq.heappop(heap)
            if e[2] == _DGRAM:
                self._arrive(e[3], e[4], e[5])
            elif e[2] == _SEG:
                e[3]._deliver_due(now)
            else:
                self._syn_arrives(e[3], e[4], now)

    def _now(self):
        if self.clock is None:
            raise RuntimeError("SimNetwork: attach(sched) before sending")
        return self.clock.now()

    def _push(self, at, kind, a, b, c):
        if len(self._heap) >= MAX_IN_FLIGHT:
            self.counters["in_flight_overflow"] += 1
            return False
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, a, b, c))
        self._kick(at)
        return True

    def _kick(self, at):
        if self._task is None or self._task.done():
            if self.sched is None:
                return
            self._task = self.sched.spawn(self._run(), "simnet")
            return
        if self._sleeping and (self._sleep_until is None or at < self._sleep_until):
            self._sleeping = False
            self._wake.set()

    async def _run(self):
        clock = self.clock
        heap = self._heap
        while True:
            now = clock.now()
            self.deliver_due()
            nxt = heap[0][0] if heap else None
            self._sleep_until = nxt
            self._sleeping = True
            # a fresh Event per wait (as PhoneNet does): a timed-out wait would
            # otherwise stay in a long-lived Event's waiter list
            self._wake = Event(self.sched)
            try:
                await self._wake.wait(None if nxt is None else nxt - now)
            except TimeoutError:
                pass
            self._sleeping = False

    # -- datagrams
    def send_datagram(self, sock, data, dst):
        now = self._now()
        h = self._by_addr.get(dst[0])
        if h is None:
            self.counters["no_route"] += 1
            return
        src = (sock.host.addr, sock.port)
        ln = self.get_link(sock.host.name, h.name)
        ln.count("sent")
        rng = self.rng
        if (sock.host.name, h.name) in self._cut:
            ln.count("partitioned")
            return
        if ln.loss and rng.random() < ln.loss:
            ln.count("lost")
            return
        self.last_tos = sock.tos
        copies = 1
        if ln.dup and rng.random() < ln.dup:
            ln.count("duplicated")
            copies = 2
        for _ in range(copies):
            at = now + ln.latency + (rng.randbelow(ln.jitter + 1) if ln.jitter else 0)
            if ln.reorder and rng.random() < ln.reorder:
                ln.count("reordered")
                at += ln.reorder_ms
            else:
                if at < ln.last_at:
                    at = ln.last_at
                ln.last_at = at
            if not self._push(at, _DGRAM, data, src, (dst, ln)):
                ln.count("in_flight_overflow")

    def _arrive(self, data, src, dst_ln):
        dst, ln = dst_ln
        if (ln.src, ln.dst) in self._cut:
            ln.count("partitioned")
            return
        s = self._bound.get((SOCK_DGRAM, dst[0], dst[1]))
        if s is None:
            ln.count("no_listener")
            back = self._bound.get((SOCK_DGRAM, src[0], src[1]))
            if back is not None and back.remote == dst and \
                    not self._cut.get((ln.dst, ln.src)):
                ln.count("icmp_unreachable")
                back.error = ECONNREFUSED
                back._signal()
            return
        if len(s.rxq) >= SOCKET_QUEUE:
            ln.count("rx_overflow")
            s.overflow += 1
            return
        ln.count("delivered")
        ln.count("bytes", len(data))
        self.counters["delivered"] += 1
        if self.trace_max:
            self._trace(src, dst, data)
        s.rxq.append((data, src))
        s._signal()

    def _trace(self, src, dst, data):
        e = (self.clock.now(), "%s:%d" % src, "%s:%d" % dst, first_line(data))
        if len(self.trace) < self.trace_max:
            self.trace.append(e)
        else:
            self.trace[self._trace_pos] = e
            self._trace_pos = (self._trace_pos + 1) % self.trace_max

    def traced(self):
        """The trace ring, oldest first."""
        return self.trace[self._trace_pos:] + self.trace[:self._trace_pos]

    # -- ports
    def _bind(self, sock, addr):
        host, port = addr
        if host in ("", "0.0.0.0", "::"):
            if sock.host is None:
                raise _err(EINVAL)
            host = sock.host.addr
        h = self.host_of(host)
        if sock.host is not None and sock.host is not h:
            raise _err(EINVAL)           # an address of another host
        sock.host = h
        if port == 0:
            for _ in range(65536 - EPHEMERAL_FIRST):
                p = self._next_port
                self._next_port = p + 1 if p < 65535 else EPHEMERAL_FIRST
                if (sock.kind, host, p) not in self._bound:
                    port = p
                    break
            else:
                raise _err(EADDRINUSE)
        elif (sock.kind, host, port) in self._bound:
            raise _err(EADDRINUSE)
        sock.port = port
        self._bound[(sock.kind, host, port)] = sock

    def _unbind(self, sock):
        k = (sock.kind, sock.host.addr if sock.host else None, sock.port)
        if sock.port is not None and self._bound.get(k) is sock:
            del self._bound[k]

    def _ephemeral(self, sock):
        if sock.host is None:
            raise _err(EINVAL)
        self._bind(sock, (sock.host.addr, 0))

    # -- streams
    def socket(self, family=AF_INET, kind=SOCK_DGRAM, *rest):
        return SimSocket(self, family, kind, None)

    def _connect(self, sock, addr):
        now = self._now()
        h = self._by_addr.get(addr[0])
        if h is None:
            self.counters["no_route"] += 1
            raise _err(ECONNREFUSED)
        if sock.port is None:
            self._ephemeral(sock)
        srv_end = SimSocket(self, sock.family, SOCK_STREAM, h)
        srv_end.port = addr[1]
        srv_end.peer_end = sock
        sock.peer_end = srv_end
        sock.remote = addr
        srv_end.remote = (sock.host.addr, sock.port)
        ln = self.get_link(sock.host.name, h.name)
        ln.count("sent")
        if self._cut.get((sock.host.name, h.name)):
            sock._fail(ECONNREFUSED)
            return
        sock.syn_at = now
        if not self._push(self._stream_at(ln, now, sock), _SYN, sock, addr, None):
            sock._fail(ECONNREFUSED)

    def _stream_at(self, ln, now, end):
        """Arrival time of the next segment from end: latency, jitter, one RTO
        per loss drawn; never before the previous one (in order)."""
        rng = self.rng
        at = now + ln.latency + (rng.randbelow(ln.jitter + 1) if ln.jitter else 0)
        tries = 0
        while ln.loss and tries < 8 and rng.random() < ln.loss:
            ln.count("retransmits")
            at += STREAM_RTO_MS << tries
            tries += 1
        if at < end.last_at:
            at = end.last_at
        end.last_at = at
        return at

    def _syn_arrives(self, client, addr, now):
        if client.error is not None or client.closed:
            return
        srv = client.peer_end
        ln = self.get_link(client.host.name, srv.host.name)
        cut = self._cut.get((ln.src, ln.dst))
        if cut is not None:
            if cut or now - client.syn_at >= STREAM_GIVE_UP_MS:
                client._fail(ECONNREFUSED if cut else ETIMEDOUT)
                return
            ln.count("retransmits")
            self._push(now + STREAM_RTO_MS, _SYN, client, addr, None)
            return
        ls = self._bound.get((SOCK_STREAM, addr[0], addr[1]))
        if ls is None or not ls.listening or len(ls.backlog) >= ls.listening:
            ln.count("no_listener")
            client._fail(ECONNREFUSED)
            return
        ln.count("delivered")
        srv.established = True
        ls.accepted = [x for x in ls.accepted if not x.closed]
        ls.backlog.append(srv)
        ls.accepted.append(srv)
        client.established = True
        ls._signal()
        client._signal_w()
        client._deliver_due(now)     # data sent before the SYN arrived


class SimSocket:
    """One endpoint: a datagram socket, a listener or one end of a stream."""

    def __init__(self, net, family, kind, host):
        self.net = net
        self.family = family
        self.kind = kind
        self.host = host
        self.port = None
        self.closed = False
        self.tos = 0
        self.overflow = 0
        self.rxq = []             # datagrams: (data, src); listener: unused
        self._ev = None           # readable
        self._wev = None          # writable
        # stream state
        self.listening = 0
        self.backlog = []
        self.accepted = []        # every stream end made by this listener (for reset)
        self.peer_end = None
        self.remote = None
        self.established = False
        self.error = None
        self.eof = False
        self.rx = b""
        self.segs = []            # [at, data or None (FIN)] from this end, in flight, in order
        self.inflight = 0
        self.last_at = 0
        self.first_hold = None
        self.syn_at = 0
        self.seg_queued = False

    def __repr__(self):
        return "<SimSocket %s %s:%s>" % ("udp" if self.kind == SOCK_DGRAM else "tcp",
                                        self.host.addr if self.host else "-", self.port)

    # -- the socket API
    def setblocking(self, flag):
        pass

    def settimeout(self, t):
        pass

    def setsockopt(self, level, opt, value):
        if level == _IPPROTO_IP and opt == _IP_TOS:
            self.tos = value

    def getsockopt(self, level, opt, *rest):
        if level == _IPPROTO_IP and opt == _IP_TOS:
            return self.tos
        return 0

    def fileno(self):
        raise OSError(EBADF)     # never polled: wait with wait_readable()

    def bind(self, addr):
        if self.closed:
            raise _err(EBADF)
        self.net._bind(self, norm_addr(addr))

    def getsockname(self):
        return (self.host.addr if self.host else "0.0.0.0", self.port or 0)

    def getpeername(self):
        if self.remote is None:
            raise _err(ENOTCONN)
        return self.remote

    def sendto(self, data, addr):
        if self.closed:
            raise _err(EBADF)
        if self.port is None:
            self.net._ephemeral(self)
        self.net.send_datagram(self, bytes(data), norm_addr(addr))
        return len(data)

    def recvfrom(self, n, flags=0):
        if self.kind == SOCK_STREAM:
            return (self.recv(n), self.remote)
        if self.error is not None:          # an ICMP error, reported once
            e, self.error = self.error, None
            raise _err(e)
        if not self.rxq:
            raise _err(EBADF if self.closed else EAGAIN)
        data, src = self.rxq[0] if flags & MSG_PEEK else self.rxq.pop(0)
        return (data[:n], src)

    def recv(self, n):
        if self.kind == SOCK_DGRAM:
            return self.recvfrom(n)[0]
        if self.rx:
            out, self.rx = self.rx[:n], self.rx[n:]
            p = self.peer_end
            if p is not None:
                p._signal_w()
            return out
        if self.error is not None:
            raise _err(self.error)
        if self.eof or self.closed:
            return b""
        raise _err(EAGAIN)

    def recv_into(self, buf, n=0):
        data = self.recv(n or len(buf))
        k = len(data)
        buf[:k] = data
        return k

    def close(self):
        if self.closed:
            return
        self.closed = True
        net = self.net
        if self.kind == SOCK_STREAM and self.peer_end is not None and self.error is None:
            self._queue_segment(None)        # FIN, after what is in flight
        if self.listening:
            for s in self.backlog:
                s._reset_peer()
            self.backlog = []
        net._unbind(self)
        self.rxq = []
        self._signal()
        self._signal_w()

    # -- streams
    def listen(self, n=MAX_BACKLOG):
        if self.port is None:
            self.net._ephemeral(self)
        self.listening = max(1, min(n, MAX_BACKLOG))

    def accept(self):
        if not self.backlog:
            raise _err(EBADF if self.closed else EAGAIN)
        s = self.backlog.pop(0)
        self.accepted = [x for x in self.accepted if not x.closed]
        return (s, s.remote)

    def connect(self, addr):
        if self.closed:
            raise _err(EBADF)
        if self.kind == SOCK_DGRAM:         # the default destination; ICMP errors come back
            if self.port is None:
                self.net._ephemeral(self)
            self.remote = norm_addr(addr)
            return
        self.net._connect(self, norm_addr(addr))

    def send(self, data):
        if self.kind == SOCK_DGRAM:
            if self.remote is None:
                raise _err(ENOTCONN)
            if self.error is not None:
                e, self.error = self.error, None
                raise _err(e)
            return self.sendto(data, self.remote)
        if self.error is not None:
            raise _err(self.error)
        p = self.peer_end
        if self.closed or p is None:
            raise _err(EPIPE if p is not None else ENOTCONN)
        room = STREAM_WINDOW - self.inflight - len(p.rx)
        if room <= 0:
            raise _err(EAGAIN)
        data = bytes(data[:room])
        if not self._queue_segment(data):
            raise _err(EAGAIN)
        return len(data)

    def sendall(self, data):
        """All of data, or OSError(EAGAIN) with nothing sent when the window
        cannot take it (a non-blocking socket's sendall also fails)."""
        p = self.peer_end
        if p is not None and self.error is None and \
                len(data) > STREAM_WINDOW - self.inflight - len(p.rx):
            raise _err(EAGAIN)
        self.send(data)

    def _queue_segment(self, data):
        net = self.net
        p = self.peer_end
        ln = net.get_link(self.host.name, p.host.name)
        now = net._now()
        at = net._stream_at(ln, now, self)
        if data is not None:
            self.inflight += len(data)
            ln.count("segments")
        self.segs.append([at, data])
        if self.established and not self.seg_queued:
            self.seg_queued = True
            if not net._push(at, _SEG, self, None, None):
                self.seg_queued = False
                self.segs.pop()
                if data is not None:
                    self.inflight -= len(data)
                return False
        return True

    def _deliver_due(self, now):
        """Move the due segments (in order) to the peer; re-arm for the rest."""
        net = self.net
        self.seg_queued = False
        p = self.peer_end
        if p is None or self.error is not None:
            self.segs = []
            return
        ln = net.get_link(self.host.name, p.host.name)
        cut = net._cut.get((ln.src, ln.dst))
        if cut is not None and self.segs:
            if cut:
                ln.count("resets")
                self._fail(ECONNRESET)
                p._fail(ECONNRESET)
                return
            if self.first_hold is None:
                self.first_hold = now
            if now - self.first_hold >= STREAM_GIVE_UP_MS:
                self._fail(ETIMEDOUT)
                p._fail(ETIMEDOUT)
                return
            ln.count("retransmits")
            self.seg_queued = True
            net._push(now + STREAM_RTO_MS, _SEG, self, None, None)
            return
        self.first_hold = None
        while self.segs and self.segs[0][0] <= now:
            at, data = self.segs.pop(0)
            if data is None:
                p.eof = True
            elif p.closed:
                # data for a closed end: RST back to the sender
                ln.count("resets")
                self.inflight = 0
                self.segs = []
                self._fail(ECONNRESET)
                return
            else:
                self.inflight -= len(data)
                p.rx += data
                ln.count("delivered")
                ln.count("bytes", len(data))
                if net.trace_max:
                    net._trace((self.host.addr, self.port), (p.host.addr, p.port), data)
            p._signal()
        if self.segs:
            self.seg_queued = True
            net._push(self.segs[0][0], _SEG, self, None, None)

    def _fail(self, code):
        if self.error is None:
            self.error = code
        self.segs = []
        self.inflight = 0
        self._signal()
        self._signal_w()

    def _reset_peer(self):
        c = self.peer_end
        if c is not None:
            c._fail(ECONNRESET)
        self.closed = True

    # -- readiness
    def readable(self):
        if self.kind == SOCK_DGRAM:
            return bool(self.rxq) or self.closed or self.error is not None
        if self.listening:
            return bool(self.backlog) or self.closed
        return bool(self.rx) or self.eof or self.error is not None or self.closed

    def writable(self):
        if self.error is not None or self.closed:
            return True
        p = self.peer_end
        if p is None:
            return self.kind == SOCK_DGRAM
        return STREAM_WINDOW - self.inflight - len(p.rx) > 0

    pending = readable

    def _signal(self):
        if self._ev is not None and self.readable():
            self._ev.set()

    def _signal_w(self):
        if self._wev is not None and self.writable():
            self._wev.set()

    def wait_readable(self, timeout_ms=None):
        """Scheduler awaitable: returns at once when readable; TimeoutError
        after timeout_ms."""
        ev = self._ev
        if ev is None:
            ev = self._ev = Event(self.net.sched)
        if self.readable():
            ev.flag = True
        else:
            ev.clear()
        return ev.wait(timeout_ms)

    def wait_writable(self, timeout_ms=None):
        ev = self._wev
        if ev is None:
            ev = self._wev = Event(self.net.sched)
        if self.writable():
            ev.flag = True
        else:
            ev.clear()
        return ev.wait(timeout_ms)
