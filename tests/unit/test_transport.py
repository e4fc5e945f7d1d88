"""firmware.sipstack.transport on loopback: UDP and TCP over IPv4 (IPv6 when the host
has it), RFC 3581 stamping, stateless answers to unparsable requests, TCP
framing limits, the connection bound, the idle timeout on the virtual clock,
broadcast refusal and DSCP marking read back with getsockopt.

The scheduler runs on a VirtualClock; a 1 ms ticker task keeps it polling the
sockets, so `pump(ms)` advances virtual time by ms and handles whatever the
test's client sockets already wrote (loopback delivers synchronously).  The
test's own socket reads use receive deadlines, never sleeps.
"""
import socket

import pytest

from firmware import sched as S
from firmware.sipstack import transport as T
from firmware.compat import Random
from sip.message import parse, Response
from tests.harness import have_ipv6

RECV_S = 2.0


class Rig:
    def __init__(self, host="127.0.0.1", **kw):
        self.logs = []
        self.sched = S.Scheduler(S.VirtualClock(), log=lambda lvl, m: self.logs.append((lvl, m)))
        self.tp = T.Transports(self.sched, lambda lvl, m: self.logs.append((lvl, m)),
                               Random(7), host=host, port=0, **kw)
        self.got = []
        self.tp.on_message = lambda msg, src: self.got.append((msg, src))
        self.port = self.tp.open()
        self.tp.start()

        async def ticker():
            while True:
                await self.sched.sleep(1)

        self.sched.spawn(ticker(), "ticker")

    def pump(self, ms=20):
        self.sched.run(until=self.sched.clock.now() + ms)

    def close(self):
        self.tp.close()
        for t in list(self.sched.tasks):
            t.cancel()
        self.sched.run()      # lets every task see its CancelledError and end


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


def options(port, via_host="127.0.0.1", via_port=5060, cid="c1", transport="UDP",
            rport=False, body=b""):
    return ("OPTIONS sip:example.com SIP/2.0\r\n"
            "Via: SIP/2.0/%s %s:%d;branch=z9hG4bK%s%s\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\n"
            "To: <sip:example.com>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\n"
            "Content-Length: %d\r\n\r\n" % (transport, via_host, via_port, cid,
                                            ";rport" if rport else "", cid, len(body))
            ).encode() + body


def udp_client(family=socket.AF_INET, host="127.0.0.1"):
    c = socket.socket(family, socket.SOCK_DGRAM)
    c.bind((host, 0))
    c.settimeout(RECV_S)
    return c


def tcp_client(port, host="127.0.0.1"):
    c = socket.create_connection((host, port), timeout=RECV_S)
    return c


# --- pure helpers ---------------------------------------------------------------

def test_stamp_via_received_and_forced_rport_over_udp():
    m = parse(options(0, via_host="192.0.2.1"))
    T.stamp_via(m, T.Source("UDP", ("127.0.0.1", 40000)))
    v = m.top_via
    assert v.received == "127.0.0.1" and v.rport == 40000
    assert m.serialize().count(b"Via:") == 1


def test_stamp_via_tcp_adds_rport_only_when_asked():
    m = parse(options(0, via_host="192.0.2.1", transport="TCP"))
    T.stamp_via(m, T.Source("TCP", ("127.0.0.1", 40000)))
    assert m.top_via.received == "127.0.0.1" and not m.top_via.has_rport
    m = parse(options(0, via_host="127.0.0.1", transport="TCP"))
    T.stamp_via(m, T.Source("TCP", ("127.0.0.1", 40000)))
    assert m.top_via.received is None
    m = parse(options(0, via_host="127.0.0.1", transport="TCP", rport=True))
    T.stamp_via(m, T.Source("TCP", ("127.0.0.1", 40001)))
    assert m.top_via.rport == 40001 and m.top_via.received == "127.0.0.1"


def test_salvage_response_copies_the_headers_and_tags_to():
    raw = (b"INVITE sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;;,;\r\n"
           b"From: <sip:b@example.com>;tag=9\r\nTo: <sip:a@example.com>\r\n"
           b"Call-ID: x1\r\nCSeq: 1 INVITE\r\nContent-Length: 99\r\n\r\n")
    r = T.salvage_response(raw, 400, "Bad Request").serialize().decode()
    assert r.startswith("SIP/2.0 400 Bad Request\r\n")
    assert "To: <sip:a@example.com>;tag=" in r and "Call-ID: x1" in r
    assert T.salvage_response(raw.replace(b"Call-ID: x1\r\n", b""), 400, None) is None
    assert T.salvage_response(b"SIP/2.0 200 OK\r\n\r\n", 400, None) is None


def test_broadcast_and_multicast_destinations():
    for h in ("255.255.255.255", "224.0.0.1", "192.0.2.255", "ff02::1"):
        assert T.is_broadcast(h), h
    for h in ("192.0.2.1", "127.0.0.1", "::1", "example.com"):
        assert not T.is_broadcast(h), h


# --- UDP -------------------------------------------------------------------------

def test_udp_port_zero_binds_udp_and_tcp_on_the_same_port(rig):
    assert rig.port > 0
    assert rig.tp.udp[0][0].getsockname()[1] == rig.port
    assert rig.tp.listeners[0][0].getsockname()[1] == rig.port


def test_udp_request_is_delivered_stamped_and_answered(rig):
    c = udp_client()
    c.sendto(options(rig.port, via_host="192.0.2.9"), ("127.0.0.1", rig.port))
    rig.pump()
    assert len(rig.got) == 1
    msg, src = rig.got[0]
    cport = c.getsockname()[1]
    assert src.transport == "UDP" and src.addr == ("127.0.0.1", cport)
    assert msg.top_via.received == "127.0.0.1" and msg.top_via.rport == cport
    r = Response.for_request(msg, 200)
    assert rig.tp.send(r.serialize(), src)
    data, _ = c.recvfrom(65536)
    assert data.startswith(b"SIP/2.0 200 OK") and b"rport=%d" % cport in data
    assert rig.tp.counters["udp_received"] == 1 and rig.tp.counters["udp_sent"] == 1
    c.close()


def test_udp_unparsable_request_gets_stateless_400_and_responses_are_dropped(rig):
    c = udp_client()
    bad = options(rig.port).replace(b"Content-Length: 0", b"Content-Length: 50")
    c.sendto(bad, ("127.0.0.1", rig.port))
    c.sendto(b"SIP/2.0 999999 broken\r\nVia: SIP/2.0/UDP h\r\n\r\n", ("127.0.0.1", rig.port))
    c.sendto(b"\x00\xff garbage", ("127.0.0.1", rig.port))
    rig.pump()
    data, _ = c.recvfrom(65536)
    assert data.startswith(b"SIP/2.0 400 ")
    assert rig.got == []
    cn = rig.tp.counters
    assert cn["parse_errors"] == 3 and cn["parse_errors_answered"] == 1
    assert cn["dropped_malformed_responses"] == 1 and cn["dropped_unanswerable"] == 1
    c.close()


def test_udp_oversize_datagram_gets_513():
    r = Rig(max_message=1024)
    try:
        c = udp_client()
        c.sendto(options(r.port, body=b"x" * 2000), ("127.0.0.1", r.port))
        r.pump()
        data, _ = c.recvfrom(65536)
        assert data.startswith(b"SIP/2.0 513 ")
        assert r.tp.counters["dropped_oversize"] == 1 and r.got == []
        c.close()
    finally:
        r.close()


def test_nothing_is_sent_to_broadcast_addresses(rig):
    assert not rig.tp.send(b"x", T.Source("UDP", ("255.255.255.255", 5060)))
    assert rig.tp.counters["dropped_broadcast"] == 1


def test_handler_exception_is_counted_and_the_reader_keeps_serving(rig):
    def boom(msg, src):
        raise RuntimeError("bug")
    rig.tp.on_message = boom
    c = udp_client()
    c.sendto(options(rig.port, cid="a"), ("127.0.0.1", rig.port))
    rig.pump()
    assert rig.tp.counters["handler_errors"] == 1
    rig.tp.on_message = lambda m, s: rig.got.append((m, s))
    c.sendto(options(rig.port, cid="b"), ("127.0.0.1", rig.port))
    rig.pump()
    assert [m.call_id for m, _ in rig.got] == ["b"]
    c.close()


class _StarvedSocket:
    """A UDP socket whose next `fails` big reads find no heap (MemoryError)."""

    def __init__(self, fails, datagrams):
        self.fails = fails
        self.datagrams = list(datagrams)
        self.reads = []

    def recvfrom(self, n, flags=0):
        self.reads.append((n, flags))
        if n > 1 and self.fails:
            self.fails -= 1
            raise MemoryError("memory allocation failed, allocating %d bytes" % n)
        if not self.datagrams:
            raise OSError(11, "EAGAIN")
        data = self.datagrams[0] if flags & T._MSG_PEEK else self.datagrams.pop(0)
        return data[:n], ("127.0.0.1", 5062)


def test_udp_read_without_heap_collects_retries_then_drops_one_datagram(rig):
    once = _StarvedSocket(1, [b"first"])
    assert rig.tp._udp_receive(once) == (b"first", ("127.0.0.1", 5062))
    assert rig.tp.counters.get("dropped_no_memory", 0) == 0
    twice = _StarvedSocket(2, [b"lost", b"next"])
    assert rig.tp._udp_receive(twice) is False
    assert twice.reads[-1] == (1, 0) and rig.tp.counters["dropped_no_memory"] == 1
    assert rig.tp._udp_receive(twice) == (b"next", ("127.0.0.1", 5062))
    assert rig.tp._udp_receive(twice) is None


def test_udp_datagrams_are_peeked_small_and_read_whole_when_big(rig):
    big = b"B" * (T.UDP_PEEK_BYTES + 10)
    sock = _StarvedSocket(0, [b"small", big])
    assert rig.tp._udp_receive(sock)[0] == b"small"
    assert sock.reads == [(T.UDP_PEEK_BYTES, T._MSG_PEEK), (1, 0)]
    del sock.reads[:]
    assert rig.tp._udp_receive(sock)[0] == big
    assert sock.reads == [(T.UDP_PEEK_BYTES, T._MSG_PEEK), (rig.tp.max_message + 1, 0)]


def test_udp_big_datagram_over_loopback_arrives_whole(rig):
    c = udp_client()
    body = b"v=0\r\n" + b"a=x-filler:" + b"y" * (T.UDP_PEEK_BYTES * 2) + b"\r\n"
    c.sendto(options(rig.port, cid="big", body=body), ("127.0.0.1", rig.port))
    c.sendto(options(rig.port, cid="small"), ("127.0.0.1", rig.port))
    rig.pump(1)
    assert [(m.call_id, len(m.body)) for m, _ in rig.got] == [("big", len(body)), ("small", 0)]
    c.close()


def test_udp_burst_is_read_in_one_wake(rig):
    c = udp_client()
    for i in range(5):
        c.sendto(options(rig.port, cid="burst%d" % i), ("127.0.0.1", rig.port))
    rig.pump(1)
    assert [m.call_id for m, _ in rig.got] == ["burst%d" % i for i in range(5)]
    c.close()


# --- TCP -------------------------------------------------------------------------

def test_tcp_framing_across_segments_and_response_on_the_same_connection(rig):
    c = tcp_client(rig.port)
    a = options(rig.port, cid="t1", transport="TCP")
    b = options(rig.port, cid="t2", transport="TCP", body=b"hello")
    stream = b"\r\n\r\n" + a + b     # a double-CRLF keep-alive ping first (RFC 5626)
    c.sendall(stream[:37])
    rig.pump()
    assert rig.got == []
    c.sendall(stream[37:])
    rig.pump()
    assert [m.call_id for m, _ in rig.got] == ["t1", "t2"]
    assert rig.got[1][0].body == b"hello"
    msg, src = rig.got[0]
    assert src.transport == "TCP" and src.conn is not None
    r = Response.for_request(msg, 200)
    # §18.2.2: over the connection the request came on, whatever the Via says
    assert rig.tp.send(r.serialize(stream=True), src)
    data = c.recv(65536)
    while len(data) < 2:
        data += c.recv(65536)
    assert data[:2] == b"\r\n"              # the ping's pong
    data = data[2:] or c.recv(65536)
    assert data.startswith(b"SIP/2.0 200 OK")
    assert rig.tp.counters["tcp_accepted"] == 1 and rig.tp.counters["keepalive_pings"] == 1
    c.close()


def test_tcp_connections_send_without_nagle_delay(rig):
    c = socket.create_connection(("127.0.0.1", rig.port))
    rig.pump()
    assert len(rig.tp.conns) == 1
    s = rig.tp.conns[0].sock
    assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    c.close()


def test_tcp_oversize_message_gets_513_and_close():
    r = Rig(max_message=1024)
    try:
        c = tcp_client(r.port)
        c.sendall(options(r.port, transport="TCP", body=b"x" * 1500))
        r.pump()
        data = c.recv(65536)
        assert data.startswith(b"SIP/2.0 513 ")
        r.pump()
        assert c.recv(65536) == b""           # closed
        assert r.tp.counters["tcp_framing_errors"] == 1 and r.tp.conns == []
        c.close()
    finally:
        r.close()


def test_tcp_unframable_stream_negative_content_length_is_answered_and_closed(rig):
    c = tcp_client(rig.port)
    c.sendall(options(rig.port, transport="TCP").replace(b"Content-Length: 0",
                                                         b"Content-Length: -999"))
    rig.pump()
    data = c.recv(65536)
    assert data.startswith(b"SIP/2.0 400 ")
    rig.pump()
    assert c.recv(65536) == b""
    c.close()


def test_tcp_connection_bound_refuses_and_counts():
    r = Rig(max_connections=2)
    try:
        cs = [tcp_client(r.port) for _ in range(2)]
        for i, c in enumerate(cs):   # both deliver a message: neither may be evicted
            c.sendall(options(r.port, cid="b%d" % i, transport="TCP"))
        r.pump()
        cs.append(tcp_client(r.port))
        r.pump()
        assert len(r.tp.conns) == 2 and r.tp.counters["tcp_refused"] == 1
        assert r.tp.counters["tcp_evicted"] == 0
        assert cs[2].recv(100) == b""          # the third was closed at once
        cs[0].sendall(options(r.port, transport="TCP"))
        r.pump()
        assert len(r.got) == 3
        for c in cs:
            c.close()
        r.pump()
        assert r.tp.conns == []
    finally:
        r.close()


def read_to_eof(c):
    data = b""
    while True:
        d = c.recv(100)
        if not d:
            return data
        data += d


def test_tcp_idle_connection_is_closed_on_the_virtual_clock():
    r = Rig(idle_ms=5000)
    try:
        c = tcp_client(r.port)
        c.sendall(options(r.port, transport="TCP"))   # a phone's flow: it delivered a message
        r.pump(10)
        assert len(r.tp.conns) == 1 and len(r.got) == 1
        r.pump(3000)
        c.sendall(b"\r\n\r\n")                 # keep-alive refreshes the timer
        r.pump(3000)
        assert len(r.tp.conns) == 1
        r.pump(5100)
        assert r.tp.conns == [] and r.tp.counters["tcp_idle_closed"] == 1
        assert read_to_eof(c) == b"\r\n"          # the pong, then the close
        c.close()
    finally:
        r.close()


# --- TCP admission and the message timeout (issue 12 item 5) ----------------------

def tcp_client_from(port, src):
    """A TCP client bound to the loopback address src (127.0.0.0/8 on Linux)."""
    return socket.create_connection(("127.0.0.1", port), timeout=RECV_S,
                                    source_address=(src, 0))


def conn_hosts(r):
    return [c.addr[0] for c in r.tp.conns]


def test_tcp_trickled_header_is_closed_after_the_message_timeout():
    r = Rig()                       # the default idle timeout: 120 s
    try:
        c = tcp_client(r.port)
        data = options(r.port, transport="TCP")
        for i in range(9):        # 10 bytes every 500 ms for 4.5 s: never a whole header
            c.sendall(data[i * 10:i * 10 + 10])
            r.pump(500)
            assert len(r.tp.conns) == 1
        assert r.sched.clock.now() < T.TCP_MESSAGE_TIMEOUT_MS
        r.pump(1000)
        assert r.tp.conns == [] and r.tp.counters["tcp_message_timeout"] == 1
        assert r.tp.counters["tcp_idle_closed"] == 0 and r.got == []
        assert r.sched.clock.now() <= T.TCP_MESSAGE_TIMEOUT_MS + 1100
        assert c.recv(100) == b""
        c.close()
    finally:
        r.close()


def test_tcp_connection_without_a_message_is_closed_keepalives_do_not_help():
    r = Rig()
    try:
        c = tcp_client(r.port)
        for _ in range(4):                        # CRLF keep-alives are no message
            r.pump(1000)
            c.sendall(b"\r\n\r\n")
        r.pump(T.TCP_MESSAGE_TIMEOUT_MS - 4000 + 100)
        assert r.tp.conns == [] and r.tp.counters["tcp_message_timeout"] == 1
        assert read_to_eof(c) == b"\r\n" * 4       # each ping got its pong, then the close
        c.close()
    finally:
        r.close()


def test_tcp_flow_that_delivered_stays_idle_but_a_later_trickle_times_out():
    r = Rig()
    try:
        c = tcp_client(r.port)
        c.sendall(options(r.port, cid="m1", transport="TCP"))
        r.pump(4 * T.TCP_MESSAGE_TIMEOUT_MS)      # a registered phone's quiet flow
        assert len(r.tp.conns) == 1 and len(r.got) == 1
        c.sendall(b"\r\n\r\n")                      # keep-alive: still no message begun
        r.pump(4 * T.TCP_MESSAGE_TIMEOUT_MS)
        assert len(r.tp.conns) == 1
        data = options(r.port, cid="m2", transport="TCP")
        c.sendall(data[:40])                      # a message begins: its clock starts
        r.pump(T.TCP_MESSAGE_TIMEOUT_MS - 1000)
        c.sendall(data[40:80])                    # more bytes do not restart it
        r.pump(500)
        assert len(r.tp.conns) == 1
        r.pump(600)
        assert r.tp.conns == [] and r.tp.counters["tcp_message_timeout"] == 1
        assert len(r.got) == 1
        c.close()
    finally:
        r.close()


def test_tcp_per_source_cap_refuses_beyond_it_and_counts():
    r = Rig(max_per_source=2)
    try:
        cs = [tcp_client(r.port) for _ in range(3)]
        r.pump()
        assert len(r.tp.conns) == 2 and r.tp.counters["tcp_refused_per_source"] == 1
        assert cs[2].recv(100) == b""             # closed at once
        other = tcp_client_from(r.port, "127.0.0.2")   # another source still gets in
        other.sendall(options(r.port, transport="TCP"))
        r.pump()
        assert conn_hosts(r) == ["127.0.0.1", "127.0.0.1", "127.0.0.2"]
        assert len(r.got) == 1 and r.tp.counters["tcp_refused_per_source"] == 1
        for c in cs + [other]:
            c.close()
    finally:
        r.close()


def test_tcp_disallowed_and_blocked_sources_are_closed_at_accept_before_taking_a_slot():
    from firmware.sipstack.security import Security, SecuritySettings
    r = Rig(max_connections=1)
    try:
        st = SecuritySettings()
        st.allow_list = ("127.0.0.0/30",)
        st.threshold = 1
        sec = Security()
        sec.configure(st)
        clock = r.sched.clock
        assert sec.auth_failed("127.0.0.3", 5060, "u", "bad password", clock.now())
        r.tp.admit = lambda addr: sec.admit(addr[0], addr[1], clock.now())
        outside = [tcp_client_from(r.port, "127.0.0.9") for _ in range(3)]
        blocked = tcp_client_from(r.port, "127.0.0.3")
        r.pump()
        assert r.tp.conns == [] and r.tp.counters["tcp_accepted"] == 0
        assert r.tp.counters["tcp_refused_source"] == 4
        assert sec.counters["tcp_not_allowed"] == 3 and sec.counters["tcp_blocked"] == 1
        for c in outside + [blocked]:
            assert c.recv(100) == b""
        log = [(src.split(":")[0], why) for _, src, _, why in sec.access_log()]
        assert log.count(("127.0.0.9", "TCP connection refused: not in allow list")) == 1
        assert log.count(("127.0.0.3", "TCP connection refused: blocked")) == 1
        phone = tcp_client(r.port)                # the one slot is still free
        phone.sendall(options(r.port, transport="TCP"))
        r.pump()
        assert conn_hosts(r) == ["127.0.0.1"] and len(r.got) == 1
        assert r.tp.counters["tcp_evicted"] == 0 and r.tp.counters["tcp_refused"] == 0
        for c in outside + [blocked, phone]:
            c.close()
    finally:
        r.close()


def test_tcp_full_table_evicts_the_oldest_connection_that_delivered_nothing():
    r = Rig(max_connections=3)
    try:
        idle = [tcp_client_from(r.port, "127.0.0.%d" % i) for i in (2, 3, 4)]
        r.pump()
        assert conn_hosts(r) == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        phone = tcp_client(r.port)
        phone.sendall(options(r.port, cid="p1", transport="TCP"))
        r.pump()
        assert conn_hosts(r) == ["127.0.0.3", "127.0.0.4", "127.0.0.1"]
        assert r.tp.counters["tcp_evicted"] == 1 and r.tp.counters["tcp_refused"] == 0
        assert idle[0].recv(100) == b""
        assert r.got[0][0].call_id == "p1"
        more = [tcp_client_from(r.port, "127.0.0.%d" % i) for i in (5, 6, 7)]
        r.pump()
        # the phone delivered a message: the newcomers evict only the silent
        # ones, oldest first (.3, .4, then .5 itself for .7)
        assert conn_hosts(r) == ["127.0.0.1", "127.0.0.6", "127.0.0.7"]
        assert r.tp.counters["tcp_evicted"] == 4
        phone.sendall(options(r.port, cid="p2", transport="TCP"))
        r.pump()
        assert [m.call_id for m, _ in r.got] == ["p1", "p2"]
        for c in idle + more + [phone]:
            c.close()
    finally:
        r.close()


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_tcp_send_without_connection_connects_and_a_refusal_is_reported(rig):
    errors = []
    rig.tp.on_conn_error = lambda kind, addr: errors.append((kind, addr))
    port = _free_port()               # nothing listens there: the kernel refuses
    assert rig.tp.send(b"x", T.Source("TCP", ("127.0.0.1", port)))
    assert rig.tp.counters["tcp_connected"] == 1
    for _ in range(50):
        if errors:
            break
        rig.pump()
    assert errors == [("tcp connection refused", ("127.0.0.1", port))], errors
    assert rig.tp.conns == []


def test_tcp_send_reuses_one_outgoing_connection_and_reconnects_after_close(rig):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    ls.settimeout(2)
    dest = T.Source("TCP", ls.getsockname())
    try:
        assert rig.tp.send(b"one ", dest)
        rig.pump()
        srv, _ = ls.accept()
        srv.settimeout(2)
        assert rig.tp.send(b"two", dest)
        rig.pump()
        got = b""
        while len(got) < 7:
            got += srv.recv(64)
        assert got == b"one two"
        assert rig.tp.counters["tcp_connected"] == 1     # reused
        srv.close()                   # the far end closes: our side notices
        for _ in range(50):
            if not rig.tp.conns:
                break
            rig.pump()
        assert rig.tp.conns == []
        assert rig.tp.send(b"three", dest)
        rig.pump()
        srv2, _ = ls.accept()
        srv2.settimeout(2)
        assert srv2.recv(64) == b"three"
        assert rig.tp.counters["tcp_connected"] == 2     # opened anew
        srv2.close()
    finally:
        ls.close()


def test_tcp_send_with_the_connection_table_full_is_counted():
    r = Rig(max_connections=1)
    try:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("127.0.0.1", 0))
        ls.listen(4)
        try:
            assert r.tp.send(b"x", T.Source("TCP", ls.getsockname()))
            assert not r.tp.send(b"x", T.Source("TCP", ("127.0.0.1", _free_port())))
            assert r.tp.counters["tcp_no_connection"] == 1
        finally:
            ls.close()
    finally:
        r.close()


# --- DSCP ------------------------------------------------------------------------

def test_dscp_is_applied_live_to_every_socket_and_new_connections(rig):
    rig.tp.set_dscp(46)
    for s, fam in rig.tp.udp + rig.tp.listeners:
        if fam == socket.AF_INET:
            assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 46 << 2
        else:
            assert s.getsockopt(socket.IPPROTO_IPV6, 67) == 46 << 2
    c = tcp_client(rig.port)
    rig.pump()
    conn = rig.tp.conns[0]
    assert conn.sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 46 << 2
    rig.tp.set_dscp(24)
    assert conn.sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS) == 24 << 2
    with pytest.raises(ValueError):
        rig.tp.set_dscp(64)
    c.close()


# --- IPv6 ------------------------------------------------------------------------

@pytest.mark.skipif(not have_ipv6(), reason="host has no IPv6 loopback")
def test_ipv6_udp_and_tcp_on_loopback(rig):
    assert rig.tp.ipv6
    c = udp_client(socket.AF_INET6, "::1")
    c.sendto(options(rig.port, via_host="[::1]", cid="v6"), ("::1", rig.port))
    rig.pump()
    msg, src = rig.got[0]
    assert src.addr[0] == "::1" and msg.top_via.rport == c.getsockname()[1]
    assert rig.tp.send(Response.for_request(msg, 200).serialize(), src)
    assert c.recvfrom(65536)[0].startswith(b"SIP/2.0 200")
    t = tcp_client(rig.port, "::1")
    t.sendall(options(rig.port, via_host="[::1]", cid="v6t", transport="TCP"))
    rig.pump()
    assert rig.got[1][0].call_id == "v6t" and rig.got[1][1].transport == "TCP"
    rig.tp.set_dscp(46)
    v6 = [s for s, f in rig.tp.udp if f == socket.AF_INET6][0]
    assert v6.getsockopt(socket.IPPROTO_IPV6, 67) == 46 << 2
    c.close()
    t.close()


def test_ipv6_is_optional_when_the_host_cannot_bind_it(monkeypatch):
    real = T.Transports._bind_pair

    def no_v6(self, family, host, port):
        if family == socket.AF_INET6:
            raise OSError(97, "Address family not supported")
        return real(self, family, host, port)

    monkeypatch.setattr(T.Transports, "_bind_pair", no_v6)
    r = Rig()
    try:
        assert not r.tp.ipv6 and r.port > 0
        assert any("IPv4 only" in m for _, m in r.logs)
    finally:
        r.close()
