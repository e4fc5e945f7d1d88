# portable: micropython
"""The simulated network itself (tests/sim/simnet.py): seeded loss within
tolerance, latency and FIFO order, reordering, duplication, partitions and
their repair, bounded queues, the stream model (order under loss, refusal,
reset, hold and give-up on a silent partition, the window), replay from the
seed, and SimTransports (the appliance's SIP transport on it) keeping the
socket transport's receive policy.  Everything runs on a VirtualClock."""
from firmware.compat import Random
from firmware.sched import Scheduler, VirtualClock
from firmware.sipstack.simnet import SimTransports
from sip.message import parse
from tests.portable import raises
from tests.sim import simnet as N

SEED = 11


def make(seed=SEED, trace=0, **kw):
    sched = Scheduler(VirtualClock(), log=lambda lvl, m: print(lvl, m))   # crashes show
    net = N.SimNetwork(seed, trace=trace, **kw)
    net.attach(sched)
    net.add_host("a", "10.0.0.1")
    net.add_host("b", "10.0.0.2")
    net.add_host("c", "10.0.0.3")
    return sched, net


def udp(net, addr, port=0):
    s = net.socket(N.AF_INET, N.SOCK_DGRAM)
    s.bind((addr, port))
    return s


def run(sched, ms):
    sched.run(until=sched.clock.now() + ms)


def drain(s):
    out = []
    while True:
        try:
            out.append(s.recvfrom(2048))
        except OSError as e:
            assert e.args[0] == N.EAGAIN, e
            return out


def blast(sched, net, n, gap_ms=1, src=None, dst=None):
    """n numbered datagrams a -> b, one every gap_ms; returns what b got,
    as (arrival ms, number)."""
    src = src or udp(net, "10.0.0.1")
    dst = dst or udp(net, "10.0.0.2", 5000)
    # small ints in preallocated lists: thousands of live tuples made one by
    # one among the garbage would fragment a MicroPython heap
    ats = [0] * (2 * n)
    nums = [0] * (2 * n)
    k = [0]

    async def reader():
        while True:
            await dst.wait_readable()
            for data, _ in drain(dst):
                ats[k[0]] = sched.clock.now()
                nums[k[0]] = int(data)
                k[0] += 1

    t = sched.spawn(reader(), "reader")
    for i in range(n):
        src.sendto(b"%d" % i, ("10.0.0.2", 5000))
        run(sched, gap_ms)
    run(sched, 5000)
    t.cancel()
    run(sched, 1)
    assert sched.crashes == 0
    return [(ats[i], nums[i]) for i in range(k[0])]


def test_loss_rate_is_within_tolerance_and_every_datagram_is_accounted_for():
    sched, net = make()
    net.link("a", "b", loss=0.2)
    got = blast(sched, net, 2000)
    st = net.stats("a", "b")
    assert st["sent"] == 2000, st
    assert st["delivered"] + st["lost"] == 2000, st
    assert len(got) == st["delivered"], (len(got), st)
    # 2000 x 0.2: 400 expected, 3 sigma is 54
    assert 346 <= st["lost"] <= 454, (st, SEED)
    assert net.stats("b", "a")["sent"] == 0


def test_latency_and_jitter_keep_the_link_fifo():
    sched, net = make()
    net.link("a", "b", latency=30, jitter=20)
    start = sched.clock.now()
    got = blast(sched, net, 200, gap_ms=1)
    assert [n for _, n in got] == list(range(200)), got[:10]
    for at, n in got:
        sent = start + n            # one send per ms
        assert sent + 30 <= at, (n, at, sent)
    assert got[-1][0] - (start + 199) <= 50, got[-1]
    # jitter makes arrival gaps uneven (a fixed delay would keep them 1 ms)
    gaps = set(got[i + 1][0] - got[i][0] for i in range(len(got) - 1))
    assert len(gaps) > 2, gaps


def test_no_impairment_delivers_in_the_same_millisecond_in_order():
    sched, net = make()
    got = blast(sched, net, 50, gap_ms=2)
    start = got[0][0]
    assert [(at - start, n) for at, n in got] == [(2 * i, i) for i in range(50)], got[:5]


def test_reordering_lets_later_datagrams_overtake_and_is_counted():
    sched, net = make()
    net.link("a", "b", latency=5, reorder=0.1, reorder_ms=15)
    got = blast(sched, net, 1000)
    st = net.stats("a", "b")
    assert len(got) == 1000 and st["delivered"] == 1000, st
    order = [n for _, n in got]
    overtaken = len([i for i in range(1, len(order)) if order[i] < order[i - 1]])
    assert 60 <= st["reordered"] <= 140, (st, SEED)
    assert overtaken >= st["reordered"] // 2, (overtaken, st)
    assert sorted(order) == list(range(1000))


def test_duplication_delivers_extra_copies_and_counts_them():
    sched, net = make()
    net.link("a", "b", dup=0.1)
    got = blast(sched, net, 1000)
    st = net.stats("a", "b")
    assert 60 <= st["duplicated"] <= 140, (st, SEED)
    assert len(got) == 1000 + st["duplicated"] == st["delivered"], (len(got), st)
    assert sorted(set(n for _, n in got)) == list(range(1000))


def test_partition_drops_both_ways_and_in_flight_then_heal_restores():
    sched, net = make()
    net.link(["a", "c"], "b", latency=100)
    a, c = udp(net, "10.0.0.1", 1), udp(net, "10.0.0.3", 3)
    b = udp(net, "10.0.0.2", 2)
    a.sendto(b"in flight", ("10.0.0.2", 2))
    run(sched, 10)
    net.partition(["a", "c"], "b")
    assert net.is_cut("b", "a") and net.is_cut("a", "b") and not net.is_cut("a", "c")
    a.sendto(b"during", ("10.0.0.2", 2))
    c.sendto(b"during", ("10.0.0.2", 2))
    b.sendto(b"back", ("10.0.0.1", 1))
    run(sched, 500)
    assert drain(a) == [] and drain(b) == [] and drain(c) == []
    assert net.stats("a", "b")["partitioned"] == 2, net.stats("a", "b")   # in flight + new
    assert net.stats("b", "a")["partitioned"] == 1
    assert net.stats("c", "b")["partitioned"] == 1
    # a and c still reach each other
    a.sendto(b"side", ("10.0.0.3", 3))
    run(sched, 10)
    assert [d for d, _ in drain(c)] == [b"side"]
    net.heal("a", "b")
    a.sendto(b"after", ("10.0.0.2", 2))
    c.sendto(b"still cut", ("10.0.0.2", 2))
    run(sched, 200)
    assert drain(b) == [(b"after", ("10.0.0.1", 1))]
    net.heal()
    c.sendto(b"healed", ("10.0.0.2", 2))
    run(sched, 200)
    assert [d for d, _ in drain(b)] == [b"healed"]


def test_a_full_socket_queue_drops_the_newest_and_counts():
    sched, net = make()
    a, b = udp(net, "10.0.0.1"), udp(net, "10.0.0.2", 9)
    for i in range(N.SOCKET_QUEUE + 10):
        a.sendto(b"%d" % i, ("10.0.0.2", 9))
    run(sched, 5)
    st = net.stats("a", "b")
    assert st["rx_overflow"] == 10 and b.overflow == 10, st
    got = drain(b)
    assert len(got) == N.SOCKET_QUEUE and got[-1][0] == b"%d" % (N.SOCKET_QUEUE - 1)


def test_the_in_flight_bound_drops_and_counts():
    sched, net = make()
    net.link("a", "b", latency=60000)
    a = udp(net, "10.0.0.1")
    udp(net, "10.0.0.2", 9)
    for i in range(N.MAX_IN_FLIGHT + 5):
        a.sendto(b"x", ("10.0.0.2", 9))
    assert net.stats("a", "b")["in_flight_overflow"] == 5
    assert net.counters["in_flight_overflow"] == 5


def test_no_listener_and_no_route_are_counted_and_peek_keeps_the_datagram():
    sched, net = make()
    a, b = udp(net, "10.0.0.1"), udp(net, "10.0.0.2", 7)
    a.sendto(b"nobody", ("10.0.0.2", 8))
    a.sendto(b"nowhere", ("10.9.9.9", 8))
    a.sendto(b"hello world", ("10.0.0.2", 7))
    run(sched, 5)
    assert net.stats("a", "b")["no_listener"] == 1 and net.counters["no_route"] == 1
    assert b.recvfrom(5, N.MSG_PEEK) == (b"hello", a.getsockname())
    assert b.recvfrom(1) == (b"h", a.getsockname())     # a short read drops the rest
    assert raises(OSError, b.recvfrom, 10).args[0] == N.EAGAIN
    assert raises(OSError, udp, net, "10.0.0.2", 7).args[0] == N.EADDRINUSE


def test_tos_travels_with_the_datagram():
    sched, net = make()
    a = udp(net, "10.0.0.1")
    udp(net, "10.0.0.2", 9)
    a.setsockopt(0, 1, 46 << 2)
    a.sendto(b"x", ("10.0.0.2", 9))
    assert net.last_tos == 46 << 2 and a.getsockopt(0, 1) == 46 << 2


# -- streams

def stream_pair(sched, net, port=5060):
    ls = net.socket(N.AF_INET, N.SOCK_STREAM)
    ls.bind(("10.0.0.2", port))
    ls.listen(4)
    c = net.socket(N.AF_INET, N.SOCK_STREAM)
    c.bind(("10.0.0.1", 0))
    c.connect(("10.0.0.2", port))
    run(sched, 1000)
    s, addr = ls.accept()
    assert addr == c.getsockname() and c.getpeername() == ("10.0.0.2", port)
    return ls, c, s


def read_all(s):
    out = b""
    while True:
        try:
            d = s.recv(4096)
        except OSError as e:
            assert e.args[0] == N.EAGAIN, e
            return out, False
        if not d:
            return out, True
        out += d


def test_a_stream_is_reliable_and_in_order_under_loss():
    sched, net = make()
    net.link("a", "b", loss=0.3, latency=10, jitter=10)
    ls, c, s = stream_pair(sched, net)
    want = b"".join(b"<%d>" % i for i in range(300))
    for i in range(300):
        assert c.send(b"<%d>" % i) == len(b"<%d>" % i)
        run(sched, 1)
    c.close()
    run(sched, 60000)
    got, eof = read_all(s)
    assert got == want and eof, (len(got), len(want))
    assert net.stats("a", "b")["retransmits"] > 0, net.stats("a", "b")


def test_a_stream_to_no_listener_is_refused_and_a_reset_partition_resets():
    sched, net = make()
    c = net.socket(N.AF_INET, N.SOCK_STREAM)
    c.bind(("10.0.0.1", 0))
    c.connect(("10.0.0.2", 5060))
    run(sched, 10)
    assert raises(OSError, c.recv, 10).args[0] == N.ECONNREFUSED
    ls, c, s = stream_pair(sched, net)
    net.partition("a", "b", reset=True)
    assert raises(OSError, c.send, b"x").args[0] == N.ECONNRESET
    assert raises(OSError, s.recv, 10).args[0] == N.ECONNRESET
    c2 = net.socket(N.AF_INET, N.SOCK_STREAM)
    c2.bind(("10.0.0.1", 0))
    c2.connect(("10.0.0.2", 5060))
    assert raises(OSError, c2.recv, 10).args[0] == N.ECONNREFUSED
    assert net.stats("a", "b")["resets"] + net.stats("b", "a")["resets"] >= 1


def test_a_silent_partition_holds_a_stream_until_heal_or_gives_up():
    sched, net = make()
    ls, c, s = stream_pair(sched, net)
    net.partition("a", "b")
    c.send(b"held")
    run(sched, 5000)
    assert read_all(s) == (b"", False)
    net.heal()
    run(sched, N.STREAM_RTO_MS + 1)
    assert read_all(s) == (b"held", False)
    net.partition("a", "b")
    s.send(b"lost")
    run(sched, N.STREAM_GIVE_UP_MS + 2 * N.STREAM_RTO_MS)
    assert raises(OSError, s.send, b"x").args[0] == N.ETIMEDOUT
    assert raises(OSError, c.recv, 10).args[0] == N.ETIMEDOUT


def test_the_stream_window_bounds_unread_bytes():
    sched, net = make()
    ls, c, s = stream_pair(sched, net)
    sent = 0
    while True:
        try:
            sent += c.send(b"z" * 5000)
        except OSError as e:
            assert e.args[0] == N.EAGAIN
            break
    assert sent == N.STREAM_WINDOW, sent
    run(sched, 10)
    assert not c.writable()
    assert len(s.recv(1000)) == 1000
    assert c.writable() and c.send(b"y" * 5000) == 1000


def test_data_to_a_closed_end_resets_the_sender():
    sched, net = make()
    ls, c, s = stream_pair(sched, net)
    s.close()
    run(sched, 10)
    assert read_all(c) == (b"", True)       # the FIN
    c.send(b"late")
    run(sched, 10)
    assert raises(OSError, c.send, b"x").args[0] == N.ECONNRESET


# -- replay

def lossy_run(seed):
    sched, net = make(seed, trace=4000)
    net.link("a", "b", loss=0.2, latency=10, jitter=30, reorder=0.05, dup=0.02)
    blast(sched, net, 500)
    return net.traced(), net.stats("a", "b")


def test_the_same_seed_replays_the_same_trace_and_another_seed_does_not():
    t1, s1 = lossy_run(5)
    t2, s2 = lossy_run(5)
    assert len(t1) > 300 and t1 == t2 and s1 == s2, (len(t1), s1, s2)
    t3, s3 = lossy_run(6)
    assert t3 != t1, "seed 6 gave seed 5's trace"


def test_the_trace_is_a_bounded_ring_oldest_first():
    sched, net = make(trace=10)
    blast(sched, net, 25)
    t = net.traced()
    assert [e[3] for e in t] == [str(i) for i in range(15, 25)], t
    assert t[0][1].startswith("10.0.0.1:") and t[0][2] == "10.0.0.2:5000"


# -- the appliance's transport on it

def test_sim_transports_keep_the_socket_transports_receive_policy():
    sched, net = make()
    got = []
    tp = SimTransports(net, sched, lambda lvl, m: None, Random(3), "10.0.0.2", 5060)
    tp.on_message = lambda msg, src: got.append((msg, src))
    assert tp.open() == 5060
    tp.start()
    tp.set_dscp(26)
    phone = udp(net, "10.0.0.1", 5062)
    phone.sendto(b"OPTIONS sip:x@10.0.0.2 SIP/2.0\r\n"
                 b"Via: SIP/2.0/UDP 192.0.2.1:5062;branch=z9hG4bK1\r\n"
                 b"From: <sip:p@x>;tag=1\r\nTo: <sip:x@x>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
                 b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n", ("10.0.0.2", 5060))
    phone.sendto(b"OPTIONS sip:x@10.0.0.2 SIP/3.0\r\n"
                 b"Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK2\r\n"
                 b"From: <sip:p@x>;tag=1\r\nTo: <sip:x@x>\r\nCall-ID: c2\r\nCSeq: 2 OPTIONS\r\n"
                 b"Content-Length: 0\r\n\r\n", ("10.0.0.2", 5060))
    run(sched, 10)
    assert len(got) == 1, got
    msg, src = got[0]
    assert src.transport == "UDP" and src.addr == ("10.0.0.1", 5062)
    v = msg.top_via
    assert v.received == "10.0.0.1" and v.rport == 5062, str(v)
    # the unparsable one is answered statelessly (505), through the network
    replies = drain(phone)
    assert len(replies) == 1 and parse(replies[0][0]).status == 505, replies
    assert tp.counters["parse_errors_answered"] == 1
    assert net.last_tos == 26 << 2
    # TCP: a connection is accepted, framed and answered on that connection
    c = net.socket(N.AF_INET, N.SOCK_STREAM)
    c.bind(("10.0.0.1", 0))
    c.connect(("10.0.0.2", 5060))
    c.send(b"OPTIONS sip:x@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.1:5070;branch=z9hG4bK3\r\n"
           b"From: <sip:p@x>;tag=1\r\nTo: <sip:x@x>\r\nCall-ID: c3\r\nCSeq: 1 OPTIONS\r\n"
           b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    run(sched, 10)
    assert len(got) == 2 and got[1][1].transport == "TCP", got
    assert tp.counters["tcp_accepted"] == 1
    assert tp.send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", got[1][1])
    run(sched, 10)
    assert read_all(c)[0].startswith(b"SIP/2.0 200 OK")
    net.partition("a", "b", reset=True)
    run(sched, 10)
    assert tp.conns == [] and tp.counters["tcp_closed"] == 1, tp.counters
    tp.close()


def test_a_connected_udp_socket_hears_icmp_port_unreachable():
    sched, net = make()
    s = net.socket(N.AF_INET, N.SOCK_DGRAM)
    s.bind(("10.0.0.1", 0))
    s.connect(("10.0.0.2", 5060))          # nothing listens there
    s.send(b"\r\n\r\n")
    run(sched, 5)
    assert s.readable()
    e = raises(OSError, s.recv, 64)
    assert e.args[0] == N.ECONNREFUSED, e
    assert raises(OSError, s.recv, 64).args[0] == N.EAGAIN   # reported once
    assert net.stats("a", "b")["icmp_unreachable"] == 1
    # the error also shows on the next send; a listener: no error at all
    s.send(b"x")
    run(sched, 5)
    assert raises(OSError, s.send, b"y").args[0] == N.ECONNREFUSED
    u = udp(net, "10.0.0.2", 5060)
    s.send(b"z")
    run(sched, 5)
    assert raises(OSError, s.recv, 64).args[0] == N.EAGAIN
    assert drain(u)[-1][0] == b"z"
    # an unconnected socket hears nothing; across a cut link: silence, no ICMP
    t = udp(net, "10.0.0.1")
    t.sendto(b"x", ("10.0.0.2", 5999))
    run(sched, 5)
    assert raises(OSError, t.recv, 64).args[0] == N.EAGAIN
    u.close()
    net.partition("a", "b")
    s.send(b"w")
    run(sched, 5)
    assert raises(OSError, s.recv, 64).args[0] == N.EAGAIN
