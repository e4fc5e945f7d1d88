# portable: micropython
"""RADIUS accounting without I/O, on both interpreters: the packet codec
(authenticators, attribute layout), the backlog journal on flash (order,
dedupe, the bound's drop policy, a torn tail, a reboot) and the client's
retransmission with back-off, new Identifier on a changed delay, failover,
all-down backlog and probe.  Time is a number passed in (no clock)."""
import struct

from firmware.compat import md5
from firmware.radius import packet as P
from firmware.radius.client import Client, Server, MAX_BACKOFF_MS
from firmware.radius.journal import Journal
from tests.portable import tmpdir, rmtree

SECRET = b"testing123"


def _answer(req, secret=SECRET, ident=None, code=P.ACCOUNTING_RESPONSE):
    """An Accounting-Response built from the RFC's words (not from packet.py)."""
    i = req[1] if ident is None else ident
    head = struct.pack(">BBH", code, i, 20)
    return head + md5(head + req[4:20] + secret).digest()


def _attrs(sid, status=P.START):
    return [(P.ACCT_STATUS_TYPE, status), (P.ACCT_SESSION_ID, sid)]


def test_request_authenticator_and_attribute_layout():
    pkt = P.accounting_request(7, SECRET, [(P.ACCT_STATUS_TYPE, P.STOP), (P.USER_NAME, "alice"),
                                           (P.NAS_IP_ADDRESS, "192.0.2.1"),
                                           (P.VENDOR_SPECIFIC, (9, 1, "call-id=x"))])
    assert pkt[0] == 4 and pkt[1] == 7 and struct.unpack(">H", pkt[2:4])[0] == len(pkt)
    body = pkt[20:]
    assert md5(pkt[:4] + bytes(16) + body + SECRET).digest() == pkt[4:20]
    attrs = P.decode_attributes(body)
    assert attrs[0] == (40, b"\x00\x00\x00\x02")
    assert attrs[1] == (1, b"alice")
    assert attrs[2] == (4, bytes([192, 0, 2, 1]))
    assert attrs[3] == (26, b"\x00\x00\x00\x09\x01\x0bcall-id=x")


def test_long_text_is_cut_to_one_attribute_at_a_character_boundary():
    pkt = P.accounting_request(1, SECRET, [(P.USER_NAME, "\u00e9" * 300)])
    (t, v), = P.decode_attributes(pkt[20:])
    assert len(v) <= P.MAX_VALUE
    v.decode()


def test_response_checks_name_what_is_wrong():
    req = P.accounting_request(9, SECRET, _attrs("a"))
    assert P.check_response(_answer(req), req, SECRET) is None
    assert "authenticator" in P.check_response(_answer(req, b"wrong"), req, SECRET)
    assert "identifier" in P.check_response(_answer(req, ident=10), req, SECRET)
    assert "code" in P.check_response(_answer(req, code=2), req, SECRET)
    assert "shorter" in P.check_response(b"\x05\x09", req, SECRET)


def _journal(name, limit=64):
    d = tmpdir(name)
    return d, Journal(d, limit)


def test_journal_keeps_order_across_a_reboot_and_skips_a_torn_tail():
    d, j = _journal("radius-j1")
    try:
        for i in range(5):
            j.add(("s%d" % i, P.START, 0), _attrs("s%d" % i), None, 0,
                  j.opened("s%d" % i, {"id": "s%d" % i}))
        j.done(j.pending[0])
        j.add(("s1", P.STOP, 0), _attrs("s1", P.STOP), None, 0, j.closed("s1"))
        with open(j.path, "a") as f:
            f.write('0badc0de {"q": 99, "k": ["s9", 1')        # a cut in the middle of a line
        j2 = Journal(d, 64)
        assert j2.load(1000) == 5
        assert [r.key for r in j2.pending] == [("s1", 1, 0), ("s2", 1, 0), ("s3", 1, 0),
                                               ("s4", 1, 0), ("s1", 2, 0)]
        assert j2.torn == 1
        assert sorted(j2.open) == ["s0", "s2", "s3", "s4"]
        # the acknowledged record is recognised and not queued again
        assert j2.add(("s0", P.START, 0), _attrs("s0"), None, 0) is None
        assert j2.duplicates == 1
        j2.add(("s4", P.START, 0), _attrs("s4"), None, 0)
        assert j2.duplicates == 2 and len(j2.pending) == 5
    finally:
        rmtree(d)


def test_journal_compacts_to_what_is_live():
    d, j = _journal("radius-j2")
    try:
        import os
        for i in range(300):
            r = j.add(("c%d" % i, P.STOP, 0), _attrs("c%d" % i, P.STOP) + [(P.USER_NAME, "x" * 40)], None, 0)
            j.done(r)
        assert os.stat(j.path)[6] < 16384 + 200
        j.add(("last", P.START, 0), _attrs("last"), None, 0)
        j2 = Journal(d, 64)
        assert j2.load(0) == 1 and j2.pending[0].key == ("last", 1, 0)
    finally:
        rmtree(d)


def test_a_full_backlog_drops_interim_updates_first_then_refuses_starts_never_a_stop_for_a_start():
    d, j = _journal("radius-j3", limit=16)
    try:
        for i in range(4):
            j.add(("i%d" % i, P.INTERIM_UPDATE, 1), _attrs("i%d" % i, 3), None, 0)
        for i in range(12):
            j.add(("a%d" % i, P.START, 0), _attrs("a%d" % i), None, 0)
        assert len(j.pending) == 16
        j.add(("b", P.START, 0), _attrs("b"), None, 0)          # an interim makes room
        assert j.dropped == 1 and j.pending[0].key == ("i1", 3, 1)
        for i in range(3):
            j.add(("c%d" % i, P.START, 0), _attrs("c%d" % i), None, 0)
        assert j.dropped == 4 and all(r.status == P.START for r in j.pending)
        assert j.add(("d", P.START, 0), _attrs("d"), None, 0) is None   # refused, counted
        assert j.dropped == 5
        r = j.add(("a5", P.STOP, 0), _attrs("a5", P.STOP), None, 0)    # a Stop replaces the oldest Start
        assert r is not None and j.dropped == 6 and j.pending[-1] is r
        assert j.pending[0].key == ("a1", 1, 0)
        assert len(j.pending) == 16
        j2 = Journal(d, 16)
        assert j2.load(0) == 16 and [x.key for x in j2.pending] == [x.key for x in j.pending]
    finally:
        rmtree(d)


class _Wall:
    def __init__(self):
        self.ms = None

    def __call__(self):
        return self.ms


def _client(j, n=2, **kw):
    servers = [Server("192.0.2.%d" % (10 + i), 1813, SECRET if i == 0 else b"other%d" % i)
               for i in range(n)]
    return Client(j, servers, timeout_ms=kw.get("timeout", 1000), retries=kw.get("retries", 2),
                  dead_ms=kw.get("dead", 30000), wall=kw.get("wall"))


def test_retransmission_backs_off_and_a_changed_delay_gets_a_new_identifier():
    d, j = _journal("radius-c1")
    try:
        c = _client(j, n=1, retries=3)
        j.add(("x", P.STOP, 0), _attrs("x", P.STOP), None, 0)
        (addr, p1), = c.poll(0)
        assert addr == ("192.0.2.10", 1813)
        assert c.next_deadline(0) == 1000
        assert c.poll(999) == []
        (_, p2), = c.poll(1000)            # 1 s later: delay 1 -> a new packet
        assert p2[1] != p1[1] and p2[4:20] != p1[4:20]
        assert dict(P.decode_attributes(p2[20:]))[P.ACCT_DELAY_TIME] == b"\x00\x00\x00\x01"
        assert c.next_deadline(1000) == 3000       # doubled
        (_, p3), = c.poll(3000)
        assert c.next_deadline(3000) == 7000
        assert dict(P.decode_attributes(p3[20:]))[P.ACCT_DELAY_TIME] == b"\x00\x00\x00\x03"
        # the answer to an earlier transmission still acknowledges the record
        assert c.receive(_answer(p2), addr, 3500) is not None
        s = c.servers[0]
        assert (s.sent, s.retransmitted, s.acked) == (1, 2, 1) and not j.pending
    finally:
        rmtree(d)


def test_same_delay_resends_the_same_bytes():
    d, j = _journal("radius-c2")
    try:
        c = _client(j, n=1, timeout=200)
        j.add(("x", P.START, 0), _attrs("x"), None, 0)
        (_, p1), = c.poll(0)
        (_, p2), = c.poll(200)
        assert p1 == p2 and c.servers[0].retransmitted == 1
    finally:
        rmtree(d)


def test_a_wrong_secret_or_a_stranger_does_not_acknowledge():
    d, j = _journal("radius-c3")
    try:
        c = _client(j, n=1)
        j.add(("x", P.START, 0), _attrs("x"), None, 0)
        (addr, p), = c.poll(0)
        assert c.receive(_answer(p, b"nope"), addr, 10) is None
        assert c.receive(_answer(p), ("192.0.2.99", 1813), 10) is None
        assert c.servers[0].bad == 1 and "secret" in c.servers[0].last_bad
        assert len(j.pending) == 1
    finally:
        rmtree(d)


def test_failover_to_the_next_server_then_backlog_then_probe_in_order():
    d, j = _journal("radius-c4")
    try:
        c = _client(j, n=2, timeout=1000, retries=1, dead=30000)
        for i in range(3):
            j.add(("r%d" % i, P.START, 0), _attrs("r%d" % i), None, 0)
        (a, _), = c.poll(0)
        assert a[0] == "192.0.2.10"
        c.poll(1000)                       # retransmission
        (a, p), = c.poll(3000)             # retries used up: the second server, same record
        assert a[0] == "192.0.2.11" and c.failovers == 1
        assert dict(P.decode_attributes(p[20:]))[P.ACCT_SESSION_ID] == b"r0"
        assert md5(p[:4] + bytes(16) + p[20:] + b"other1").digest() == p[4:20]
        c.poll(4000)
        assert c.poll(6000) == []          # both down: the records wait
        assert "all servers down" in c.state(6000)
        assert c.next_deadline(6000) == 33000
        (a, p), = c.poll(33000)            # the first dead time is over: probe server 1
        assert a[0] == "192.0.2.10"
        assert dict(P.decode_attributes(p[20:]))[P.ACCT_DELAY_TIME] == b"\x00\x00\x00\x21"
        got = []
        now = 33100
        while j.pending:
            c.receive(_answer(p), a, now)
            got.append(dict(P.decode_attributes(p[20:]))[P.ACCT_SESSION_ID])
            out = c.poll(now)
            if out:
                (a, p), = out
            now += 10
        assert got == [b"r0", b"r1", b"r2"]
        assert c.servers[0].state == "up" and c.servers[1].state == "down"
    finally:
        rmtree(d)


def test_delay_of_a_record_from_before_a_reboot_counts_on_the_wall_clock():
    d, j = _journal("radius-c5")
    try:
        w = _Wall()
        w.ms = 1000000
        c = _client(j, n=1, wall=w)
        j.add(("x", P.STOP, 0), _attrs("x", P.STOP), 1000000 - 42000, 0)
        j.pending[0].reloaded = True        # as load() marks a record from before the boot
        (_, p), = c.poll(0)
        assert dict(P.decode_attributes(p[20:]))[P.ACCT_DELAY_TIME] == b"\x00\x00\x00\x2a"
        assert MAX_BACKOFF_MS >= 1000
    finally:
        rmtree(d)


def test_a_power_cut_at_every_byte_of_an_append_keeps_every_earlier_record():
    d, j = _journal("radius-j4")
    try:
        for i in range(3):
            j.add(("p%d" % i, P.START, 0), _attrs("p%d" % i), None, 0)
        with open(j.path) as f:
            whole = f.read()
        j.add(("cut", P.STOP, 0), _attrs("cut", P.STOP), None, 0, j.opened("cut", {"id": "cut"}))
        with open(j.path) as f:
            tail = f.read()[len(whole):]          # the batch of the last append: two lines
        first_line = tail.index("\n") + 1
        for n in range(len(tail) + 1):
            with open(j.path, "w") as f:
                f.write(whole + tail[:n])
            j2 = Journal(d, 64)
            found = j2.load(0)
            if n == len(tail):
                assert found == 4 and j2.pending[-1].key == ("cut", 2, 0), n
            else:
                assert [r.key[0] for r in j2.pending] == ["p0", "p1", "p2"], n
                assert ("cut" in j2.open) == (n >= first_line), n
                assert j2.torn == (0 if n in (0, first_line) else 1), n
    finally:
        rmtree(d)
