"""SIP transports: UDP and TCP over IPv4 and IPv6 (RFC 3261 §18, RFC 3581).

The only SIP code that touches sockets.  It turns datagrams and TCP byte
streams into parsed messages for the SIP core, and sends what the core hands
back.  Everything is non-blocking; every wait goes through the scheduler.

    tp = Transports(sched, log, rng, host="0.0.0.0", port=5060)
    tp.on_message = fn(msg, src)     # msg: sip.message Request/Response, with
                                     # the top Via of a request already stamped
    tp.open()                        # binds; raises OSError; tp.port is the port
    tp.start()                       # spawns the reader/accept tasks
    tp.send(data, src_or_dest)       # bytes to a Source (see below)
    tp.set_dscp(46)                  # IP_TOS / IPV6_TCLASS = dscp << 2, live
    tp.close()
    tp.counters                      # dict for `show sip statistics`

Source / destination: `Source(transport, addr, conn=None)`; transport is
"UDP", "TCP" or "TLS", addr a (host, port) tuple with a numeric host, conn the
TcpConnection a request came on.  A response to a TCP request goes back over
that connection (§18.2.2); when it has gone, the response is dropped and
counted ("tcp_no_connection": opening a new connection towards the Via is not
implemented yet).  A request to a TCP destination with no open connection
opens one (`connect`: reused by later messages to that address, opened anew
after it closed; on_conn_error(kind, addr) reports an outgoing connection
refused or reset, for the survivability monitor).

Receive policy
  * RFC 3581 and symmetric responses: the top Via of every incoming request
    gets `received=<source ip>` when the sent-by host differs, and
    `rport=<source port>` plus received when the request asked for it, or
    always over UDP when FORCE_RPORT is true (the default: phones behind NAT and test peers
    listen on the port they sent from, so replies go back to that port).
  * Datagrams larger than MAX_MESSAGE_SIZE, and unparsable requests from
    which a response can still be formed (Via, From, To, Call-ID and CSeq
    lines present), are answered statelessly with the parse error's status
    and reason (400, 505, 513); the rest, and every malformed response, are
    dropped and counted.
  * Nothing is ever sent to a broadcast or multicast address (dropped,
    "dropped_broadcast").
  * A datagram that finds no heap for its receive buffer, even after a
    garbage collection, is read away and counted ("dropped_no_memory"); the
    receive task keeps serving.

TCP: at most MAX_TCP_CONNECTIONS connections, one scheduler task each;
framing by sip.message.StreamFramer with a per-connection bound of
MAX_MESSAGE_SIZE (oversize or unframable stream: 513/400 when a response can
be formed, then close); unsent output is bounded by MAX_TCP_OUTBUF (overflow
closes the connection).

TCP admission (issue 12 item 5: one source must not hold the slots phones
need), in this order at accept, before the connection takes a slot:
  1. `tp.admit(addr)`, when set (the appliance sets it to the security
     screen, firmware/sipstack/security.py Security.admit: allow list and
     blocked sources): a reason string refuses; the connection is closed at
     once and "tcp_refused_source" counted (the reason is counted and
     access-logged by the screen);
  2. at most max_per_source (MAX_TCP_PER_SOURCE; config `security tcp
     max-connections-per-source`) connections from one host: beyond, the new
     one is closed and "tcp_refused_per_source" counted;
  3. table full (max_connections): the oldest connection that has not yet
     delivered a whole message is closed to make room ("tcp_evicted"); only
     when every connection has delivered one is the new connection refused
     ("tcp_refused").
Timeouts, on the scheduler clock:
  * message timeout: a connection must deliver a whole SIP message within
    TCP_MESSAGE_TIMEOUT_MS of its accept, and each later message within
    TCP_MESSAGE_TIMEOUT_MS of its first byte; bytes that do not complete a
    message (a trickled header) do not extend it ("tcp_message_timeout").
    CRLF keep-alives between messages start no message;
  * idle timeout: a connection with no traffic either way for TCP_IDLE_MS is
    closed ("tcp_idle_closed"); this is what governs a phone's flow between
    messages, so registered phones keep their connections.

TLS (issue 17): `tp.enable_tls(port, server_context)` binds a TLS listener
on `port` (5061 by default in the configuration; firmware/sipstack/tlsconfig.py)
next to UDP/TCP, live; `tp.disable_tls()` closes it and its connections.  A
TLS connection is a TcpConnection whose bytes pass through a
firmware/sipstack/tls.py TlsStream: the same admission (allow list, blocks,
per-source cap, one table of max_connections with TCP), framing, bounds and
timeouts; the handshake must finish, and the first message arrive, within
the message timeout of the accept ("tls_handshake_failed" counts refused
handshakes, e.g. a client without a trusted certificate under mutual TLS).
Its messages come with Source transport "TLS", and responses and requests
to a phone registered over it reuse the connection (RFC 5923 style).
On TCP and TLS a double-CRLF keep-alive ping (RFC 5626 §3.5.1) is answered
with a CRLF pong and refreshes the connection's idle time.

IPv6: with a wildcard host (0.0.0.0) a second socket pair binds "::"
(IPV6_V6ONLY), with 127.0.0.1 it binds "::1"; when the host has no IPv6 the
failure is logged and the appliance runs on IPv4 only.

Port 0: UDP picks a free port and TCP binds the same number (CPython reads it
back with getsockname; MicroPython has none, so a random port from the
injected random source is tried, up to PORT_TRIES times).

Simulation: making a socket (_sock) and waiting for one (_readable,
_writable, _more) are the only calls that need a real socket;
firmware/sipstack/simnet.py overrides them to run this same code over an
in-memory network.
"""
import gc
import select
import socket

from firmware.compat import const, MICROPYTHON
from firmware.sched import TimeoutError, TaskTableFull, RESTART
from sip.message import parse, StreamFramer, frame
from sip.errors import SipParseError
from sip.transport import salvage_response, stamp_via as _stamp_via, is_broadcast, is_ip, \
    is_reliable  # noqa: F401

MAX_MESSAGE_SIZE = const(16384)      # per datagram and per framed TCP message
UDP_PEEK_BYTES = const(2048)         # first read of a datagram (see _udp_receive)
_MSG_PEEK = const(2)                 # Linux; MicroPython's socket module has no name for it
MAX_TCP_CONNECTIONS = const(16)      # each is one scheduler task (MAX_TASKS 64)
MAX_TCP_PER_SOURCE = const(4)        # connections from one host address (default)
TCP_MESSAGE_TIMEOUT_MS = const(5000) # a whole message within this of accept / its first byte
MAX_TCP_OUTBUF = const(65536)        # unsent bytes per connection
TCP_IDLE_MS = const(120000)          # idle connection lifetime
TCP_READ = const(4096)
PORT_TRIES = const(16)
FORCE_RPORT = True

_IPPROTO_IP = const(0)
_IPPROTO_TCP = const(6)
_TCP_NODELAY = const(1)
_IP_TOS = const(1)
_IPPROTO_IPV6 = const(41)
_IPV6_TCLASS = const(67)
_IPV6_V6ONLY = const(26)
_EAGAIN = (11, 35, 115)              # EAGAIN/EWOULDBLOCK, EINPROGRESS
_ECONNREFUSED = const(111)
_ECONNRESET = const(104)
_EPIPE = const(32)

COUNTERS = ("udp_received", "udp_sent", "tcp_received", "tcp_sent",
            "requests_received", "responses_received", "parse_errors",
            "parse_errors_answered", "dropped_malformed_responses",
            "dropped_unanswerable", "dropped_oversize", "dropped_broadcast",
            "send_errors", "recv_errors", "tcp_accepted", "tcp_refused", "tcp_closed",
            "tcp_refused_source", "tcp_refused_per_source", "tcp_evicted",
            "tcp_message_timeout", "tcp_idle_closed", "tcp_framing_errors", "tcp_outbuf_overflow",
            "tcp_no_connection", "handler_errors", "dscp_errors", "tcp_connected",
            "tcp_connect_failed", "tcp_conn_errors", "tls_accepted",
            "tls_handshake_failed", "keepalive_pings")


class Source:
    """Where a message came from, or where to send one."""
    __slots__ = ("transport", "addr", "conn")

    def __init__(self, transport, addr, conn=None):
        self.transport = transport
        self.addr = addr
        self.conn = conn

    def __repr__(self):
        return "%s:%s:%d" % (self.transport, self.addr[0], self.addr[1])


def sockaddr(host, port):
    """Socket address for a numeric host on either interpreter."""
    if host.startswith("["):
        host = host[1:-1]
    if MICROPYTHON:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        for ai in socket.getaddrinfo(host, port):
            if ai[0] == fam:
                return ai[-1]
        return socket.getaddrinfo(host, port)[0][-1]
    return (host, port)


def peer(raw):
    """(host, port) from what recvfrom/accept return on either interpreter."""
    if isinstance(raw, tuple):
        return (raw[0], raw[1])
    raw = bytes(raw)
    if hasattr(socket, "sockaddr"):
        t = socket.sockaddr(raw)
        return (socket.inet_ntop(t[0], t[1]), t[2])
    fam = raw[0] | (raw[1] << 8)
    port = (raw[2] << 8) | raw[3]
    if fam == socket.AF_INET:
        return ("%d.%d.%d.%d" % (raw[4], raw[5], raw[6], raw[7]), port)
    return (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port)


def _errno(e):
    return e.args[0] if e.args else None


def stamp_via(msg, src):
    """RFC 3261 §18.2.1 received and RFC 3581 rport on the top Via; over UDP
    rport is forced (FORCE_RPORT), so answers reach phones behind NAT."""
    _stamp_via(msg, src.addr, force_rport=FORCE_RPORT and src.transport == "UDP")


# --- TCP ----------------------------------------------------------------------

class TcpConnection:
    __slots__ = ("sock", "addr", "framer", "outbuf", "last", "task", "open", "family",
                 "flushing", "due", "messages", "outgoing", "error", "tls", "transport")

    def __init__(self, sock, addr, family, now, message_ms=TCP_MESSAGE_TIMEOUT_MS, tls=None):
        self.tls = tls                 # a TlsStream: bytes go through it
        self.transport = "TLS" if tls is not None else "TCP"
        self.sock = sock if tls is None else tls.pollable
        self.addr = addr
        self.family = family
        self.framer = StreamFramer()
        self.outbuf = b""
        self.last = now
        self.task = None
        self.open = True
        self.flushing = False
        self.due = now + message_ms    # a whole message by then; None: no message begun
        self.messages = 0              # whole messages framed on this connection
        self.outgoing = False          # we connected (a peer's responses and requests come on it)
        self.error = None              # errno that ended it, for on_conn_error

    def __repr__(self):
        return "<%sConnection %s:%d>" % ((self.transport,) + tuple(self.addr))

    def recv(self, n):
        return self.tls.recv(n) if self.tls is not None else self.sock.recv(n)

    def send(self, data):
        return self.tls.send(data) if self.tls is not None else self.sock.send(data)


class Transports:
    def __init__(self, sched, log, rng, host="0.0.0.0", port=5060, ipv6=True,
                 max_connections=MAX_TCP_CONNECTIONS, idle_ms=TCP_IDLE_MS,
                 max_message=MAX_MESSAGE_SIZE, max_per_source=MAX_TCP_PER_SOURCE,
                 message_ms=TCP_MESSAGE_TIMEOUT_MS):
        self.sched = sched
        self.log = log                 # log(level, text)
        self.rng = rng
        self.host = host
        self.port = port
        self.want_ipv6 = ipv6
        self.max_connections = max_connections
        self.idle_ms = idle_ms
        self.max_message = max_message
        self.max_per_source = max_per_source
        self.message_ms = message_ms
        self.on_message = None
        self.admit = None              # admit((host, port)): None, or why it is refused
        self.on_conn_error = None      # fn(kind, (host, port)): an outgoing connection was
                                       # refused or reset (the survivability monitor's signal)
        self.udp = []                  # [(sock, family)]
        self.listeners = []            # [(sock, family)]
        self.tls_listeners = []        # [(sock, family)] (enable_tls)
        self.tls_port = None
        self.tls_server = None         # server context of the TLS listener
        self.tls_tasks = []
        self.conns = []                # open TcpConnections
        self.dscp = None
        self.ipv6 = False
        self.tasks = []
        self.counters = {}
        for c in COUNTERS:
            self.counters[c] = 0

    def count(self, name, n=1):
        self.counters[name] = self.counters.get(name, 0) + n

    # -- binding
    def open(self):
        host = self.host
        v6host = None
        if ":" in host:
            v6host, host = host, None
        elif self.want_ipv6:
            if host == "0.0.0.0":
                v6host = "::"
            elif host.startswith("127."):
                v6host = "::1"
        if host is not None:
            self.port = self._bind_pair(socket.AF_INET, host, self.port)
        if v6host is not None:
            try:
                self.port = self._bind_pair(socket.AF_INET6, v6host, self.port)
                self.ipv6 = True
            except OSError as e:
                if host is None:
                    raise
                self.log("info", "SIP: no IPv6 on %s (%s); IPv4 only" % (v6host, e))
        if self.dscp is not None:
            self.set_dscp(self.dscp)
        return self.port

    def _bind_pair(self, family, host, port):
        """Bind a UDP and a TCP socket on one port number; returns it."""
        tries = PORT_TRIES if port == 0 else 1
        err = None
        for _ in range(tries):
            p = port
            if p == 0 and MICROPYTHON:
                p = 20000 + self.rng.randbelow(40000)
            u = t = None
            try:
                u = self._sock(family, socket.SOCK_DGRAM)
                u.bind(sockaddr(host, p))
                if p == 0:
                    p = u.getsockname()[1]
                t = self._sock(family, socket.SOCK_STREAM)
                t.bind(sockaddr(host, p))
                t.listen(8)
            except OSError as e:
                err = e
                for s in (u, t):
                    if s is not None:
                        s.close()
                continue
            u.setblocking(False)
            t.setblocking(False)
            self.udp.append((u, family))
            self.listeners.append((t, family))
            return p
        raise err

    def _sock(self, family, kind):
        s = socket.socket(family, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            try:
                s.setsockopt(_IPPROTO_IPV6, _IPV6_V6ONLY, 1)
            except OSError:
                pass
        return s

    # -- TLS
    def enable_tls(self, port, server_context):
        """Listen for SIP over TLS on port (IPv4 and, when bound, IPv6); a new
        context replaces the old for new connections.  Raises OSError."""
        self.tls_server = server_context
        if self.tls_listeners and port == self.tls_port:
            return port
        self.disable_tls(keep_context=True)
        fams = [(socket.AF_INET, self.host if ":" not in self.host else None)]
        if self.ipv6:
            fams.append((socket.AF_INET6, "::" if self.host in ("0.0.0.0", "::") else
                         ("::1" if self.host.startswith("127.") else self.host)))
        for fam, host in fams:
            if host is None:
                continue
            t = self._sock(fam, socket.SOCK_STREAM)
            try:
                t.bind(sockaddr(host, port))
                t.listen(8)
            except OSError:
                t.close()
                self.disable_tls()
                raise
            t.setblocking(False)
            self._mark(t, fam)
            self.tls_listeners.append((t, fam))
        self.tls_port = port
        if self.tasks:                 # started: serve it now
            self._start_tls()
        return port

    def _start_tls(self):
        for s, fam in self.tls_listeners:
            self.tls_tasks.append(self.sched.spawn(
                lambda s=s, fam=fam: self._accept_task(s, fam, True),
                "sip-tls%s" % ("6" if fam == socket.AF_INET6 else ""), RESTART))

    def disable_tls(self, keep_context=False):
        for t in self.tls_tasks:
            if not t.done():
                t.cancel()
        self.tls_tasks = []
        for s, _ in self.tls_listeners:
            try:
                s.close()
            except OSError:
                pass
        self.tls_listeners = []
        self.tls_port = None
        for c in list(self.conns):
            if c.tls is not None:
                self.close_connection(c)
        if not keep_context:
            self.tls_server = None

    def sockets(self):
        out = [s for s, _ in self.udp] + [s for s, _ in self.listeners] + \
            [s for s, _ in self.tls_listeners]
        out.extend(c.sock for c in self.conns)
        return out

    # -- DSCP
    def set_dscp(self, dscp):
        """Mark every SIP socket (and later connections) with DSCP `dscp`."""
        dscp = int(dscp)
        if not 0 <= dscp <= 63:
            raise ValueError("DSCP must be 0..63, not %d" % dscp)
        self.dscp = dscp
        for s, fam in self.udp + self.listeners + self.tls_listeners:
            self._mark(s, fam)
        for c in self.conns:
            self._mark(c.sock, c.family)

    def _mark(self, s, family):
        if self.dscp is None:
            return
        try:
            if family == socket.AF_INET6:
                s.setsockopt(_IPPROTO_IPV6, _IPV6_TCLASS, self.dscp << 2)
            else:
                s.setsockopt(_IPPROTO_IP, _IP_TOS, self.dscp << 2)
        except OSError:
            self.count("dscp_errors")

    # -- tasks
    def start(self):
        for s, fam in self.udp:
            self.tasks.append(self.sched.spawn(self._udp_factory(s), "sip-udp%s" % (
                "6" if fam == socket.AF_INET6 else ""), RESTART))
        for s, fam in self.listeners:
            self.tasks.append(self.sched.spawn(self._accept_factory(s, fam), "sip-tcp%s" % (
                "6" if fam == socket.AF_INET6 else ""), RESTART))
        self._start_tls()

    def _udp_factory(self, s):
        return lambda: self._udp_task(s)

    def _accept_factory(self, s, fam):
        return lambda: self._accept_task(s, fam)

    # -- waiting: the only socket readiness calls; an in-memory network's
    # transport (firmware/sipstack/simnet.py) overrides these three and _sock
    def _readable(self, s, timeout_ms=None):
        return self.sched.readable(s, timeout_ms)

    def _writable(self, s, timeout_ms=None):
        return self.sched.writable(s, timeout_ms)

    def _more(self, s):
        """A callable: is another datagram waiting on s right now?"""
        ready = select.poll()
        ready.register(s.fileno(), select.POLLIN)   # by fd: works on both interpreters
        return lambda: ready.poll(0)

    async def _udp_task(self, s):
        # recvfrom(n) allocates n bytes before it knows whether a datagram is
        # there (MicroPython), so the burst loop asks poll() first instead of
        # paying 16 KB of garbage for the EAGAIN that ends every burst.
        more = self._more(s)
        while True:
            await self._readable(s)
            while True:
                got = self._udp_receive(s)
                if got is None:
                    break
                if got is not False:
                    self.count("udp_received")
                    self.datagram(got[0], Source("UDP", peer(got[1])))
                if not more():
                    break

    def _udp_receive(self, s):
        """(data, raw address); None when nothing is waiting; False for a
        datagram dropped for want of a contiguous receive buffer (the heap is
        collected and the read tried once more first: a fragmented heap must
        cost one datagram, never the receive task)."""
        limit = self.max_message
        for attempt in (0, 1, 2):
            try:
                if attempt == 2:
                    s.recvfrom(1)       # discard it (the rest of a datagram is dropped)
                    self.count("dropped_no_memory")
                    return False
                # Peek with a buffer that fits nearly every SIP datagram, then
                # read it away with a 1-byte one: MicroPython allocates the
                # whole buffer size for each read, and 16 KB per datagram
                # would run a collection every few dozen datagrams.
                got = s.recvfrom(UDP_PEEK_BYTES, _MSG_PEEK)
                if len(got[0]) < UDP_PEEK_BYTES:
                    s.recvfrom(1)
                    return got
                got = None
                return s.recvfrom(limit + 1)       # a big one: read it whole
            except MemoryError:
                gc.collect()
            except OSError as e:
                if _errno(e) not in _EAGAIN:
                    self.count("recv_errors")  # ICMP errors (ECONNREFUSED ...); keep serving
                return None
        return None

    def datagram(self, data, src):
        """Handle one datagram's bytes (also the entry point for tests)."""
        if len(data) > self.max_message:
            self.count("dropped_oversize")
            self._answer_error(data, src, 513, "Message Too Large")
            return
        if not data.strip(b"\r\n"):
            return  # keep-alive
        try:
            msg = parse(data)
        except SipParseError as e:
            self.count("parse_errors")
            self._answer_error(data, src, e.status, e.reason_phrase)
            return
        self._deliver(msg, src, data)

    def _answer_error(self, data, src, status, reason):
        if data[:4].upper() == b"SIP/":
            self.count("dropped_malformed_responses")
            return
        resp = salvage_response(data, 400 if status == 100 else status, reason)
        if resp is None:
            self.count("dropped_unanswerable")
            return
        self.count("parse_errors_answered")
        self.send(resp.serialize(), src)

    def _deliver(self, msg, src, data=None):
        if msg.is_request:
            self.count("requests_received")
            try:
                stamp_via(msg, src)
            except SipParseError:
                self.count("parse_errors")
                return
        else:
            self.count("responses_received")
        if self.on_message is None:
            return
        try:
            self.on_message(msg, src)
        except SipParseError as e:
            # a lazily parsed header failed inside the core: answer as for parse errors
            self.count("parse_errors")
            if msg.is_request and msg.method != "ACK" and data is not None:
                self._answer_error(data, src, e.status, e.reason_phrase)
        except Exception as e:  # never let one message end the reader task
            self.count("handler_errors")
            self.log("error", "SIP: handling %r from %r failed: %s: %s" % (
                msg, src, type(e).__name__, e))

    # -- TCP
    async def _accept_task(self, ls, fam, tls=False):
        while True:
            await self._readable(ls)
            while True:
                try:
                    s, raw = ls.accept()
                except OSError as e:
                    if _errno(e) in _EAGAIN:
                        break
                    self.count("tcp_refused")
                    break
                addr = peer(raw)
                if not self._admit(addr):
                    try:
                        s.close()
                    except OSError:
                        pass
                    continue
                s.setblocking(False)
                try:
                    # SIP messages are written whole: Nagle would hold one back
                    # behind a delayed ACK of the previous (tens of ms per request)
                    s.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
                except OSError:
                    pass
                self._mark(s, fam)
                stream = None
                if tls:
                    from firmware.sipstack.tls import TlsStream, TlsError
                    try:
                        stream = TlsStream(self.tls_server, s, True)
                    except TlsError as e:
                        self.count("tls_handshake_failed")
                        self.log("warning", "SIP: TLS from %s:%d: %s" % (addr[0], addr[1], e))
                        s.close()
                        continue
                c = TcpConnection(s, addr, fam, self.sched.clock.now(), self.message_ms, stream)
                try:
                    c.task = self.sched.spawn(self._conn_task(c), "sip-tcp-%s:%d" % addr)
                except TaskTableFull:
                    self.count("tcp_refused")
                    s.close()
                    continue
                self.conns.append(c)
                self.count("tls_accepted" if tls else "tcp_accepted")

    def _admit(self, addr):
        """May a connection from addr take a slot?  False: refused (counted).
        May close the oldest connection that has delivered no message yet."""
        if self.admit is not None:
            try:
                why = self.admit(addr)
            except Exception as e:  # a broken screen must not end the accept task
                self.count("handler_errors")
                self.log("error", "SIP: TCP admission check failed: %s: %s" % (
                    type(e).__name__, e))
                why = None
            if why:
                self.count("tcp_refused_source")
                return False
        host = addr[0]
        n = 0
        for c in self.conns:
            if c.addr[0] == host:
                n += 1
        if n >= self.max_per_source:
            self.count("tcp_refused_per_source")
            return False
        if len(self.conns) >= self.max_connections:
            victim = None
            for c in self.conns:           # in accept order: the oldest first
                if c.messages == 0:
                    victim = c
                    break
            if victim is None:
                self.count("tcp_refused")
                return False
            self.count("tcp_evicted")
            self.close_connection(victim)
        return True

    async def _conn_task(self, c):
        try:
            while c.open:
                now = self.sched.clock.now()
                if c.due is not None and c.due <= now:
                    self.count("tcp_message_timeout")
                    break
                left = c.last + self.idle_ms - now
                if left <= 0:
                    self.count("tcp_idle_closed")
                    break
                if c.due is not None and c.due - now < left:
                    left = c.due - now
                tls = c.tls
                try:
                    if tls is not None and tls.want_write:     # the handshake must send first
                        await self._writable(c.sock, left)
                    elif tls is None or not tls.pending():      # decrypted bytes wait: no wait
                        await self._readable(c.sock, left)
                except TimeoutError:
                    continue  # re-check: output may have refreshed c.last
                try:
                    data = c.recv(TCP_READ)
                except OSError as e:
                    if _errno(e) in _EAGAIN:
                        continue
                    c.error = _errno(e)
                    break
                except Exception as e:     # TlsError: handshake or record refused
                    self.count("tls_handshake_failed")
                    self.log("warning", "SIP: TLS from %s:%d closed: %s" % (
                        c.addr[0], c.addr[1], e))
                    break
                if not data:
                    break
                c.last = self.sched.clock.now()
                self.count("tcp_received")
                if not self._stream(c, data):
                    break
        finally:
            self.close_connection(c)

    def _stream(self, c, data):
        """Feed stream bytes; False when the connection must close."""
        src = Source(c.transport, c.addr, c)
        buf = c.framer.buf + bytes(data) if c.framer.buf else bytes(data)
        while buf:
            if buf[:4] == b"\r\n\r\n":
                # RFC 5626 §3.5.1 keep-alive: a double-CRLF ping gets a CRLF pong
                buf = buf[4:]
                self.count("keepalive_pings")
                self._tcp_send(c, b"\r\n")
                continue
            try:
                m, used = frame(buf)
                if m is None and len(buf) - used > self.max_message:
                    raise SipParseError("message too large", "stream", 513)
                if m is not None and len(m) > self.max_message:
                    raise SipParseError("message too large", "stream", 513)
            except SipParseError as e:
                self.count("tcp_framing_errors")
                self._answer_error(buf[_skip(buf):], src, e.status, e.reason_phrase)
                c.framer.buf = b""
                return False
            if used:
                buf = buf[used:]
            if m is None:
                break
            c.messages += 1
            c.due = None               # the next message's clock starts with its first byte
            try:
                msg = parse(m, True)
            except SipParseError as e:
                self.count("parse_errors")
                self._answer_error(m, src, e.status, e.reason_phrase)
                continue
            self._deliver(msg, src, m)
            if not c.open:
                return False
        c.framer.buf = buf
        if buf and c.due is None:
            c.due = self.sched.clock.now() + self.message_ms
        return True

    def close_connection(self, c):
        if not c.open:
            return
        c.open = False
        if c.outgoing and c.error is not None:
            self._conn_error(c.error, c.addr)
        try:
            if c.tls is not None:
                c.tls.close()
            else:
                c.sock.close()
        except OSError:
            pass
        if c in self.conns:
            self.conns.remove(c)
        self.count("tcp_closed")
        t = c.task
        if t is not None and t is not self.sched.current and not t.done():
            t.cancel()

    def _tcp_send(self, c, data):
        if not c.open:
            self.count("tcp_no_connection")
            return False
        if c.outbuf:
            if len(c.outbuf) + len(data) > MAX_TCP_OUTBUF:
                self.count("tcp_outbuf_overflow")
                self.close_connection(c)
                return False
            c.outbuf += data
            return True
        try:
            n = c.send(data)
        except OSError as e:
            if _errno(e) not in _EAGAIN:
                self.count("send_errors")
                c.error = _errno(e)
                self.close_connection(c)
                return False
            n = 0
        except Exception:          # TlsError
            self.count("send_errors")
            self.close_connection(c)
            return False
        if n is None:
            n = 0
        c.last = self.sched.clock.now()
        if n < len(data):
            if len(data) - n > MAX_TCP_OUTBUF:
                self.count("tcp_outbuf_overflow")
                self.close_connection(c)
                return False
            c.outbuf = data[n:]
            if not c.flushing:
                c.flushing = True
                try:
                    self.sched.spawn(self._flush_task(c), "sip-tcp-flush")
                except TaskTableFull:
                    self.count("tcp_outbuf_overflow")
                    self.close_connection(c)
                    return False
        self.count("tcp_sent")
        return True

    async def _flush_task(self, c):
        try:
            while c.open and c.outbuf:
                await self._writable(c.sock, self.idle_ms)
                try:
                    n = c.send(c.outbuf)
                except OSError as e:
                    if _errno(e) in _EAGAIN:
                        continue
                    c.error = _errno(e)
                    self.close_connection(c)
                    return
                except Exception:      # TlsError
                    self.close_connection(c)
                    return
                c.outbuf = c.outbuf[n or 0:]
        except TimeoutError:
            self.close_connection(c)
        finally:
            c.flushing = False

    # -- sending
    def send(self, data, dest):
        """Send bytes to a Source; False when dropped (counted)."""
        host, port = dest.addr
        if is_broadcast(host):
            self.count("dropped_broadcast")
            return False
        if is_reliable(dest.transport):     # TCP, TLS: over a connection
            c = dest.conn
            if c is None or not c.open:
                c = self.find_connection(dest.addr, dest.transport)
            if c is None:
                if dest.transport != "TCP":
                    # no outgoing TLS yet: a TLS peer is reached over its own connection
                    self.count("tcp_no_connection")
                    return False
                return self.connect(dest.addr, data)
            return self._tcp_send(c, data)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        for s, f in self.udp:
            if f == fam:
                try:
                    s.sendto(data, sockaddr(host, port))
                except OSError:
                    self.count("send_errors")
                    return False
                self.count("udp_sent")
                return True
        self.count("send_errors")
        return False

    def connect(self, addr, data):
        """Open an outgoing TCP connection to addr and send data on it once
        it is up (RFC 3261 §18.1.1); later messages to addr reuse it, and a
        send after it closed opens a new one.  False when it cannot be
        opened (table full: counted "tcp_no_connection"; the OS refused at
        once: "tcp_connect_failed" and on_conn_error)."""
        if len(self.conns) >= self.max_connections:
            self.count("tcp_no_connection")
            return False
        fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        s = None
        try:
            s = self._sock(fam, socket.SOCK_STREAM)
            if self.host not in ("0.0.0.0", "::") and (":" in self.host) == (fam != socket.AF_INET):
                # from our own address (the SIP host), as the listeners are
                s.bind(sockaddr(self.host, 0))
            s.setblocking(False)
            try:
                s.connect(sockaddr(addr[0], addr[1]))
            except OSError as e:
                if _errno(e) not in _EAGAIN:       # EINPROGRESS is the usual answer
                    raise
        except OSError as e:
            self.count("tcp_connect_failed")
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
            self._conn_error(_errno(e), addr)
            return False
        try:
            s.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except OSError:
            pass
        c = TcpConnection(s, addr, fam, self.sched.clock.now(), self.message_ms)
        c.outgoing = True
        c.due = None               # the peer owes us no message: it answers when asked
        self._mark(s, fam)
        try:
            c.task = self.sched.spawn(self._conn_task(c), "sip-tcp-%s:%d" % addr)
        except TaskTableFull:
            self.count("tcp_no_connection")
            s.close()
            return False
        self.conns.append(c)
        self.count("tcp_connected")
        # the first bytes wait for the connection to be writable (established)
        c.outbuf = data
        c.flushing = True
        try:
            self.sched.spawn(self._flush_task(c), "sip-tcp-flush")
        except TaskTableFull:
            self.count("tcp_outbuf_overflow")
            self.close_connection(c)
            return False
        self.count("tcp_sent")
        return True

    def _conn_error(self, err, addr):
        self.count("tcp_conn_errors")
        kind = ("tcp connection refused" if err == _ECONNREFUSED else
                "tcp connection reset" if err in (_ECONNRESET, _EPIPE) else
                "tcp connection failed (errno %s)" % err)
        fn = self.on_conn_error
        if fn is not None:
            try:
                fn(kind, addr)
            except Exception as e:  # a broken watcher must not end a connection task
                self.count("handler_errors")
                self.log("error", "SIP: connection error handler failed: %s: %s" % (
                    type(e).__name__, e))

    def find_connection(self, addr, transport=None):
        for c in self.conns:
            if c.addr == addr and c.open and (transport is None or c.transport == transport):
                return c
        return None

    def close(self):
        self.disable_tls()
        for c in list(self.conns):
            self.close_connection(c)
        for t in self.tasks:
            if not t.done():
                t.cancel()
        self.tasks = []
        for s, _ in self.udp + self.listeners:
            try:
                s.close()
            except OSError:
                pass
        self.udp = []
        self.listeners = []


def _skip(buf):
    k = 0
    while k < len(buf) and buf[k] in (13, 10):
        k += 1
    return k
