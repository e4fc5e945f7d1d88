# portable: micropython
"""Two sans-I/O SIP endpoints over a seeded lossy link on a virtual clock.

UAC (10.0.0.1) places INVITE -> 180 -> 200 -> ACK -> BYE -> 200 calls and
OPTIONS requests toward the UAS (10.0.0.2) over the simulated network
(tests/sim/simnet.py, stepped by hand: no scheduler); the link drops LOSS of
the datagrams in each direction and delays the rest by 5-60 ms, and some are
held back so that later ones overtake them.  Every call and OPTIONS must end
in success or a clean timeout event, the success rate must be >= 99 %, and
both transaction tables and dialog tables must drain.  A failure prints the
seed.
"""
import gc
from firmware.compat import Random
from firmware.sched import VirtualClock
from sip.message import parse, Request, Response
from sip.transaction import TransactionLayer
from sip.transport import stamp_via
from sip.dialog import Dialog, DialogTable, uas_response_headers
from tests.sim.simnet import SimNetwork

A = ("10.0.0.1", 5060)
B = ("10.0.0.2", 5060)
LOSS = 0.3
LATENCY_MS = 5
JITTER_MS = 55          # 5-60 ms
REORDER = 0.1           # held back REORDER_MS more: overtaken by later datagrams
REORDER_MS = 30
_MPY = hasattr(gc, "mem_free")


class Link:
    """The network between A and B, stepped by the driver loop in run()."""

    def __init__(self, seed, loss):
        self.clock = VirtualClock()
        self.net = net = SimNetwork(seed, loss=loss, latency=LATENCY_MS, jitter=JITTER_MS,
                                    reorder=REORDER, reorder_ms=REORDER_MS)
        net.use_clock(self.clock)
        net.add_host("uac", A[0])
        net.add_host("uas", B[0])
        self.socks = {}
        for addr in (A, B):
            s = net.socket()
            s.bind(addr)
            self.socks[addr] = s

    def send(self, now, data, src, dst):
        self.socks[src].sendto(data, dst)

    def next_deadline(self):
        return self.net.next_deadline()

    def due(self, now):
        """(data, src, dst) delivered by now, in arrival order per socket."""
        self.clock.advance_to(now)
        self.net.deliver_due()
        out = []
        for dst, s in self.socks.items():
            while s.pending():
                data, src = s.recvfrom(65535)
                out.append((data, src, dst))
        return out

    def stat(self, name):
        return self.net.stats("uac", "uas")[name] + self.net.stats("uas", "uac")[name]


class Endpoint:
    def __init__(self, addr, rng, maxt):
        self.addr = addr
        self.rng = rng
        self.layer = TransactionLayer(rng, via_host=addr[0], via_port=addr[1],
                                      max_transactions=maxt)
        self.dialogs = DialogTable()

    def deliver(self, data, src, now):
        msg = parse(data)
        if msg.is_request:
            stamp_via(msg, src)
        for ev in self.layer.receive(msg, src, "UDP", now):
            self.event(ev, now)

    def timers(self, now):
        for ev in self.layer.on_timer(now):
            self.event(ev, now)


class UAC(Endpoint):
    def __init__(self, rng, maxt, calls, options):
        Endpoint.__init__(self, A, rng, maxt)
        # per call / per OPTIONS: None (running) | "ok" | "timeout" | "failed:<status>"
        # preallocated: no big reallocation in a fragmented MicroPython heap
        self.calls = [None] * calls
        self.opts = [None] * options

    def call(self, i, now):
        req = Request("INVITE", "sip:bob@10.0.0.2", [
            ("Max-Forwards", "70"), ("From", "<sip:alice@10.0.0.1>;tag=" + self.rng.token(4)),
            ("To", "<sip:bob@10.0.0.2>"), ("Call-ID", "call-%d-%s" % (i, self.rng.token(4))),
            ("CSeq", "1 INVITE"), ("Contact", "<sip:alice@10.0.0.1:5060>")])
        txn = self.layer.send_request(req, B, "UDP", now)
        txn.user = ["call", i, None]        # kind, id, dialog

    def options(self, i, now):
        req = Request("OPTIONS", "sip:bob@10.0.0.2", [
            ("Max-Forwards", "70"), ("From", "<sip:alice@10.0.0.1>;tag=" + self.rng.token(4)),
            ("To", "<sip:bob@10.0.0.2>"), ("Call-ID", "opt-%d" % i),
            ("CSeq", "%d OPTIONS" % (i + 1))])
        txn = self.layer.send_request(req, B, "UDP", now)
        txn.user = ["options", i, None]

    def event(self, ev, now):
        kind, txn, msg = ev
        if kind == "terminated":
            return
        if txn is None:
            return                      # stray response: nothing to do here
        what, i, d = txn.user
        res = self.opts if what == "options" else self.calls
        if kind == "timeout":
            assert res[i] is None, (what, i)
            res[i] = "timeout"
            if d is not None:
                self.dialogs.remove(d)
            return
        assert kind == "response", kind
        st = msg.status
        if what == "options":
            if st >= 200:
                res[i] = "ok" if st == 200 else "failed:%d" % st
        elif what == "call":
            if st >= 300:
                res[i] = "failed:%d" % st
                self.dialogs.on_uac_response(txn.request, msg)
                return
            d, new = self.dialogs.on_uac_response(txn.request, msg)
            if st < 200:
                return
            assert new or d.state == "confirmed"
            if txn.user[2] is not None:
                # 2xx retransmission not yet covered by a remembered ACK
                self.layer.send_ack(txn, txn.user[2].create_ack(), B, "UDP", now)
                return
            txn.user[2] = d
            self.layer.send_ack(txn, d.create_ack(), B, "UDP", now)
            bye = d.create_request("BYE")
            bt = self.layer.send_request(bye, B, "UDP", now)
            bt.user = ["bye", i, d]
        elif what == "bye":
            if st >= 200:
                res[i] = "ok" if st == 200 else "failed:%d" % st
                self.dialogs.remove(d)


class UAS(Endpoint):
    def __init__(self, rng, maxt):
        Endpoint.__init__(self, B, rng, maxt)
        self.pending = []       # (at, txn, response)
        self.no_ack = 0

    def next_deadline(self):
        best = self.layer.next_deadline()
        for p in self.pending:
            if best is None or p[0] < best:
                best = p[0]
        return best

    def timers(self, now):
        due = [p for p in self.pending if p[0] <= now]
        if due:
            self.pending = [p for p in self.pending if p[0] > now]
            for at, txn, resp in due:
                if txn.state != "terminated":
                    # the dialog first: respond() releases txn.request
                    self.dialogs.add(Dialog.uas(txn.request, resp))
                    self.layer.respond(txn, resp, now)
        Endpoint.timers(self, now)

    def event(self, ev, now):
        kind, txn, msg = ev
        if kind == "terminated":
            return
        if kind == "timeout":
            self.no_ack += 1        # 2xx never ACKed (the call is judged at the UAC)
            return
        assert kind == "request", kind
        m = msg.method
        if m == "ACK":
            return
        if m == "INVITE":
            tag = self.rng.token(4)
            r = Response.for_request(msg, 180, None, tag)
            self.layer.respond(txn, r, now)
            ok = Response.for_request(msg, 200, None, tag)
            ok.add("Contact", "<sip:bob@10.0.0.2:5060>")
            uas_response_headers(msg, ok)
            self.pending.append((now + 40, txn, ok))
        elif m == "BYE":
            d = self.dialogs.match_request(msg)
            if d is None:
                self.layer.respond(txn, Response.for_request(msg, 481, None, "x"), now)
                return
            err = d.receive_request(msg)
            assert err is None, err
            self.layer.respond(txn, Response.for_request(msg, 200), now)
            self.dialogs.remove(d)
        else:
            self.layer.respond(txn, Response.for_request(msg, 200, None, "o"), now)


def run(seed, calls=200, options=200, loss=LOSS, spacing=500):
    link = Link(seed, loss)
    uac = UAC(Random(seed + 1000), 1024, calls, options)
    uas = UAS(Random(seed + 2000), 1024)
    starts = []
    for i in range(max(calls, options)):
        if i < calls:
            starts.append((i * spacing, "call", i))
        if i < options:
            starts.append((i * spacing + spacing // 2, "options", i))
    si = 0
    now = 0
    steps = 0
    while True:
        cands = [link.next_deadline(), uac.layer.next_deadline(), uas.next_deadline()]
        if si < len(starts):
            cands.append(starts[si][0])
        cands = [c for c in cands if c is not None]
        if not cands:
            break
        now = min(cands)
        steps += 1
        assert steps < 500000, "seed %d: no progress" % seed
        if steps % 1000 == 0 and _MPY:
            gc.collect()
        for data, src, dst in link.due(now):
            (uac if dst == A else uas).deliver(data, src, now)
        while si < len(starts) and starts[si][0] <= now:
            at, what, i = starts[si]
            si += 1
            if what == "call":
                uac.call(i, now)
            else:
                uac.options(i, now)
        uac.timers(now)
        uas.timers(now)
        for ep in (uac, uas):
            for data, addr, tp in ep.layer.take_outgoing():
                link.send(now, data, ep.addr, addr)
    return link, uac, uas, now


def check(seed, calls=200, options=200):
    link, uac, uas, end = run(seed, calls, options)
    ok = 0
    bad = []
    for what, res in (("call", uac.calls), ("options", uac.opts)):
        for i in range(len(res)):
            if res[i] == "ok":
                ok += 1
            else:
                bad.append((what, i, res[i]))
    total = len(uac.calls) + len(uac.opts)
    lost, sent = link.stat("lost"), link.stat("sent")
    info = "seed=%d ok=%d/%d bad=%r lost=%d/%d" % (seed, ok, total, bad[:5], lost, sent)
    try:
        assert total == calls + options, info
        for what, i, r in bad:
            assert r == "timeout", info         # clean timeouts only, no hangs
        assert ok * 100 >= 99 * total, info
        assert len(uac.layer) == 0 and len(uas.layer) == 0, info
        assert len(uac.dialogs) == 0, info
        assert len(uas.dialogs) <= len(bad), info
        assert uac.layer.stats["overflow"] == 0 and uas.layer.stats["overflow"] == 0
        assert uas.layer.stats["bad_destination"] == 0
        assert 0.25 < lost / sent < 0.35, info
        assert link.stat("reordered") > 0 and link.stat("rx_overflow") == 0, info
    except AssertionError:
        print("test_sip_lossy FAILED with seed %d: %s" % (seed, info))
        raise
    return ok, total, link, uac, uas


def test_lossy_link_200_calls_and_200_options():
    ok, total, link, uac, uas = check(20240601)
    assert uac.layer.stats["retransmissions"] > 0


def test_lossless_link_all_succeed():
    link, uac, uas, end = run(5, calls=20, options=20, loss=0.0)
    assert uac.calls == ["ok"] * 20 and uac.opts == ["ok"] * 20
    assert len(uac.layer) == 0 and len(uas.layer) == 0 and len(uas.dialogs) == 0
    assert uas.no_ack == 0 and link.stat("lost") == 0 and link.stat("sent") > 0
