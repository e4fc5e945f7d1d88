# portable: micropython
"""Transaction layer: the four RFC 3261 §17 state machines, timers, matching."""
from tests.portable import raises
from firmware.compat import Random
from sip.message import parse, Request, Response
from sip.transport import (stateless_response, salvage_response, stamp_via,
                           response_address, bad_destination, make_ack)
from sip.transaction import (TransactionLayer, Timers, TransactionError, TableFull,
                             MAX_TRANSACTIONS, ICT, NICT, IST, NIST, CALLING,
                             TRYING, PROCEEDING, COMPLETED, CONFIRMED, ACCEPTED,
                             TERMINATED)

PEER = ("192.0.2.20", 5060)


def layer(**kw):
    return TransactionLayer(Random(7), via_host="192.0.2.10", via_port=5060, **kw)


def out_req(method="INVITE", cseq=1, route=None):
    hs = [("Max-Forwards", "70"), ("From", "<sip:alice@a.example>;tag=ft1"),
          ("To", "<sip:bob@b.example>"), ("Call-ID", "call-1@a"),
          ("CSeq", "%d %s" % (cseq, method))]
    if route:
        hs.append(("Route", route))
    return Request(method, "sip:bob@192.0.2.20", hs)


def in_req(method="INVITE", branch="z9hG4bKbr1", sent_by="192.0.2.20:5060",
           cseq=1, to_tag=None, call_id="cid-9", via_extra="", uri="sip:me@192.0.2.10"):
    cm = "INVITE" if method in ("ACK", "CANCEL") and cseq == 1 else method
    if method == "CANCEL":
        cm = "CANCEL"
    if method == "ACK":
        cm = "ACK"
    to = "<sip:me@192.0.2.10>" + (";tag=" + to_tag if to_tag else "")
    b = ("%s %s SIP/2.0\r\n"
         "Via: SIP/2.0/UDP %s%s%s\r\n"
         "Max-Forwards: 70\r\n"
         "From: <sip:peer@192.0.2.20>;tag=pt1\r\n"
         "To: %s\r\n"
         "Call-ID: %s\r\n"
         "CSeq: %d %s\r\n"
         "Content-Length: 0\r\n\r\n") % (
        method, uri, sent_by, ";branch=" + branch if branch else "", via_extra,
        to, call_id, cseq, cm)
    return parse(b.encode())


def resp_for(req_bytes_or_msg, status, to_tag="tt1"):
    req = req_bytes_or_msg
    if isinstance(req, bytes):
        req = parse(req)
    r = Response.for_request(req, status, None, to_tag if status > 100 else None)
    return parse(r.serialize())


def sent(L):
    return [parse(d) for d, a, t in L.take_outgoing()]


def run_timers(L, until, times=None):
    """Fire every deadline up to `until`; record (time, message) sent."""
    events = []
    while True:
        d = L.next_deadline()
        if d is None or d > until:
            break
        events.extend(L.on_timer(d))
        for data, addr, tp in L.take_outgoing():
            if times is not None:
                times.append(d)
    return events


def kinds(events):
    return [e[0] for e in events]


# ---------------- INVITE client ----------------

def test_timers_defaults_and_config():
    t = Timers()
    assert (t.t1, t.t2, t.t4, t.d) == (500, 4000, 5000, 32000)
    assert t.long() == 32000
    t = Timers(t1=100, t2=800)
    assert t.long() == 6400


def test_ict_udp_exact_schedule():
    L = layer()
    txn = L.send_request(out_req(), PEER, "UDP", 0)
    assert txn.kind == ICT and txn.state == CALLING
    assert txn.branch.startswith("z9hG4bK")
    times = [0] if len(L.take_outgoing()) == 1 else []
    ev = run_timers(L, 10 ** 9, times)
    assert times == [0, 500, 1500, 3500, 7500, 15500, 31500], times
    assert ev[0][0] == "timeout" and ev[0][1] is txn
    assert kinds(ev) == ["timeout", "terminated"]
    assert txn.state == TERMINATED and len(L) == 0
    assert L.next_deadline() is None


def test_ict_timer_b_at_32000():
    L = layer()
    L.send_request(out_req(), PEER, "UDP", 0)
    assert run_timers(L, 31999) == []
    ev = L.on_timer(32000)
    assert kinds(ev) == ["timeout", "terminated"]


def test_ict_tcp_no_retransmissions():
    L = layer()
    txn = L.send_request(out_req(), PEER, "TCP", 0)
    assert len(L.take_outgoing()) == 1
    times = []
    assert txn.request.top_via.transport == "TCP"
    ev = run_timers(L, 10 ** 9, times)
    assert times == []
    assert kinds(ev) == ["timeout", "terminated"] and len(L) == 0


def test_ict_keeps_existing_branch_and_adds_missing():
    L = layer()
    r = out_req()
    r.add("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKmine", True)
    txn = L.send_request(r, PEER, "UDP", 0)
    assert txn.branch == "z9hG4bKmine"
    r2 = out_req(cseq=2)
    r2.add("Via", "SIP/2.0/UDP 192.0.2.10:5060", True)
    txn2 = L.send_request(r2, PEER, "UDP", 0)
    assert txn2.branch.startswith("z9hG4bK") and len(txn2.branch) > 10
    raises(TransactionError, L.send_request, out_req("ACK"), PEER, "UDP", 0)


def test_ict_provisional_stops_retransmission_timer_c():
    L = layer(timers=Timers(c=180000))
    txn = L.send_request(out_req(), PEER, "UDP", 0)
    wire = L.take_outgoing()[0][0]
    run_timers(L, 600)
    L.take_outgoing()
    ev = L.receive(resp_for(wire, 180), PEER, "UDP", 600)
    assert kinds(ev) == ["response"] and ev[0][2].status == 180
    assert txn.state == PROCEEDING
    times = []
    ev = run_timers(L, 100000, times)
    assert times == [] and ev == []          # no A, no B in Proceeding
    ev = L.receive(resp_for(wire, 183), PEER, "UDP", 100000)  # restarts C
    assert kinds(ev) == ["response"]
    assert run_timers(L, 279999) == []
    ev = L.on_timer(280000)
    assert kinds(ev) == ["timeout", "terminated"] and len(L) == 0


def test_ict_cancel_guard():
    L = layer(timers=Timers(c=None))
    txn = L.send_request(out_req(), PEER, "UDP", 0)
    wire = L.take_outgoing()[0][0]
    L.receive(resp_for(wire, 180), PEER, "UDP", 100)
    assert L.next_deadline() is None
    L.cancel_sent(txn, 5000)
    assert L.next_deadline() == 37000
    ev = L.on_timer(37000)
    assert kinds(ev) == ["timeout", "terminated"]


def test_ict_non2xx_ack_and_timer_d():
    L = layer()
    r = out_req(route="<sip:proxy.example;lr>")
    txn = L.send_request(r, PEER, "UDP", 0)
    wire = L.take_outgoing()[0][0]
    resp = resp_for(wire, 486, "busy7")
    ev = L.receive(resp, PEER, "UDP", 300)
    assert kinds(ev) == ["response"] and ev[0][2].status == 486
    assert txn.state == COMPLETED
    out = L.take_outgoing()
    assert len(out) == 1 and out[0][1] == PEER
    ack = parse(out[0][0])
    assert ack.method == "ACK" and str(ack.uri) == "sip:bob@192.0.2.20"
    assert ack.cseq.num == 1 and ack.cseq.method == "ACK"
    assert ack.to.tag == "busy7" and ack.from_.tag == "ft1"
    assert ack.top_via.branch == txn.branch and len(ack.via) == 1
    assert ack.call_id == "call-1@a" and str(ack.route[0].uri) == "sip:proxy.example;lr"
    # a retransmitted 486 is absorbed and the ACK resent
    ev = L.receive(resp_for(wire, 486, "busy7"), PEER, "UDP", 1000)
    assert ev == [] and len(L.take_outgoing()) == 1
    # no retransmission of the INVITE in Completed; Timer D ends it
    times = []
    ev = run_timers(L, 10 ** 9, times)
    assert times == [] and kinds(ev) == ["terminated"]
    assert txn.state == TERMINATED and len(L) == 0


def test_ict_timer_d_value_and_tcp_zero():
    L = layer()
    L.send_request(out_req(), PEER, "UDP", 0)
    wire = L.take_outgoing()[0][0]
    L.receive(resp_for(wire, 404), PEER, "UDP", 1000)
    assert L.next_deadline() == 33000
    L2 = layer()
    txn = L2.send_request(out_req(), PEER, "TCP", 0)
    wire = L2.take_outgoing()[0][0]
    ev = L2.receive(resp_for(wire, 404), PEER, "TCP", 1000)
    assert kinds(ev) == ["response", "terminated"] and len(L2) == 0
    assert len(L2.take_outgoing()) == 1     # the ACK


def test_ict_2xx_accepted_and_ack_resend():
    L = layer()
    txn = L.send_request(out_req(), PEER, "UDP", 0)
    wire = L.take_outgoing()[0][0]
    ok = resp_for(wire, 200, "f1")
    ev = L.receive(ok, PEER, "UDP", 100)
    assert kinds(ev) == ["response"] and txn.state == ACCEPTED
    assert L.take_outgoing() == []          # the TU sends the ACK for a 2xx
    # retransmitted 2xx before the TU ACKed: passed up again
    ev = L.receive(resp_for(wire, 200, "f1"), PEER, "UDP", 200)
    assert kinds(ev) == ["response"]
    ack = Request("ACK", "sip:bob@192.0.2.20",
                  [("From", "<sip:alice@a.example>;tag=ft1"),
                   ("To", "<sip:bob@b.example>;tag=f1"), ("Call-ID", "call-1@a"),
                   ("CSeq", "1 ACK"), ("Max-Forwards", "70")])
    L.send_ack(txn, ack, PEER, "UDP", 250)
    a1 = L.take_outgoing()
    assert len(a1) == 1 and parse(a1[0][0]).top_via.branch != txn.branch
    # now a 2xx retransmission is absorbed and the same ACK resent
    ev = L.receive(resp_for(wire, 200, "f1"), PEER, "UDP", 700)
    assert ev == [] and L.take_outgoing()[0][0] == a1[0][0]
    # a 2xx from another fork goes to the TU
    ev = L.receive(resp_for(wire, 200, "f2"), PEER, "UDP", 800)
    assert kinds(ev) == ["response"] and ev[0][2].to.tag == "f2"
    # a late provisional is dropped and counted
    d0 = L.stats["dropped"]
    assert L.receive(resp_for(wire, 180, "f3"), PEER, "UDP", 900) == []
    assert L.stats["dropped"] == d0 + 1
    assert L.next_deadline() == 100 + 32000     # Timer M
    ev = run_timers(L, 10 ** 9)
    assert kinds(ev) == ["terminated"] and len(L) == 0


# ---------------- non-INVITE client ----------------

def test_nict_udp_exact_schedule():
    L = layer()
    txn = L.send_request(out_req("OPTIONS"), PEER, "UDP", 0)
    assert txn.kind == NICT and txn.state == TRYING
    L.take_outgoing()
    times = [0]
    ev = run_timers(L, 10 ** 9, times)
    assert times == [0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500,
                     27500, 31500], times
    assert kinds(ev) == ["timeout", "terminated"] and len(L) == 0


def test_nict_timer_f_at_32000():
    L = layer()
    L.send_request(out_req("REGISTER"), PEER, "UDP", 0)
    run_timers(L, 31999)
    ev = L.on_timer(32000)
    assert kinds(ev) == ["timeout", "terminated"]


def test_nict_tcp_no_retransmissions():
    L = layer()
    L.send_request(out_req("OPTIONS"), PEER, "TCP", 0)
    L.take_outgoing()
    times = []
    ev = run_timers(L, 10 ** 9, times)
    assert times == [] and kinds(ev) == ["timeout", "terminated"]


def test_nict_proceeding_retransmits_at_t2():
    L = layer()
    txn = L.send_request(out_req("BYE"), PEER, "UDP", 0)
    wire = L.take_outgoing()[0][0]
    times = []
    run_timers(L, 600, times)
    assert times == [500]
    ev = L.receive(resp_for(wire, 100), PEER, "UDP", 600)
    assert kinds(ev) == ["response"] and txn.state == PROCEEDING
    times = []
    run_timers(L, 12000, times)
    assert times == [1500, 5500, 9500], times


def test_nict_final_completed_timer_k():
    L = layer()
    txn = L.send_request(out_req("OPTIONS"), PEER, "UDP", 0)
    wire = L.take_outgoing()[0][0]
    ev = L.receive(resp_for(wire, 200), PEER, "UDP", 50)
    assert kinds(ev) == ["response"] and txn.state == COMPLETED
    assert L.next_deadline() == 50 + 5000        # Timer K = T4
    ev = L.receive(resp_for(wire, 200), PEER, "UDP", 60)
    assert ev == []                              # absorbed
    times = []
    ev = run_timers(L, 10 ** 9, times)
    assert times == [] and kinds(ev) == ["terminated"] and len(L) == 0


def test_nict_tcp_final_terminates_at_once():
    L = layer()
    L.send_request(out_req("OPTIONS"), PEER, "TCP", 0)
    wire = L.take_outgoing()[0][0]
    ev = L.receive(resp_for(wire, 404), PEER, "TCP", 50)
    assert kinds(ev) == ["response", "terminated"] and len(L) == 0


def test_client_response_matching_branch_and_method():
    L = layer()
    inv = L.send_request(out_req(), PEER, "UDP", 0)
    from sip.dialog import create_cancel
    can = L.send_request(create_cancel(inv.request), PEER, "UDP", 10)
    assert can.branch == inv.branch and can.kind == NICT
    cw = L.take_outgoing()[1][0]
    ev = L.receive(resp_for(cw, 200), PEER, "UDP", 20)
    assert ev[0][1] is can and inv.state == CALLING and can.state == COMPLETED
    # other branch: stray
    other = parse(resp_for(cw, 200).serialize().replace(inv.branch.encode(),
                                                         b"z9hG4bKnope"))
    ev = L.receive(other, PEER, "UDP", 30)
    assert ev == [("response", None, other)] and L.stats["stray_responses"] == 1


def test_transport_error_and_table_full_client():
    L = layer(max_transactions=2)
    t1 = L.send_request(out_req("OPTIONS", 1), PEER, "TCP", 0)
    L.send_request(out_req("OPTIONS", 2), PEER, "TCP", 0)
    raises(TableFull, L.send_request, out_req("OPTIONS", 3), PEER, "TCP", 0)
    ev = L.transport_error(t1, 5)
    assert kinds(ev) == ["transport_error", "terminated"] and len(L) == 1
    assert L.transport_error(t1, 6) == []


# ---------------- INVITE server ----------------

def test_ist_100_trying_and_provisional_resend():
    L = layer()
    inv = in_req()
    ev = L.receive(inv, PEER, "UDP", 0)
    assert kinds(ev) == ["request"]
    txn = ev[0][1]
    assert txn.kind == IST and txn.state == PROCEEDING and txn.request is inv
    assert L.next_deadline() == 200
    L.on_timer(200)
    out = sent(L)
    assert len(out) == 1 and out[0].status == 100 and out[0].to.tag is None
    # retransmitted INVITE: absorbed, 100 resent
    assert L.receive(in_req(), PEER, "UDP", 300) == []
    assert sent(L)[0].status == 100
    L.respond(txn, Response.for_request(inv, 180, None, "ut1"), 400)
    assert sent(L)[0].status == 180
    assert L.receive(in_req(), PEER, "UDP", 500) == []
    assert sent(L)[0].status == 180
    assert L.next_deadline() is None           # Proceeding has no timers


def test_ist_no_auto_trying_when_tu_answers():
    L = layer()
    ev = L.receive(in_req(), PEER, "UDP", 0)
    L.respond(ev[0][1], Response.for_request(in_req(), 180, None, "x"), 50)
    L.take_outgoing()
    run_timers(L, 1000)
    assert L.take_outgoing() == []


def test_ist_non2xx_timer_g_schedule_and_timer_h():
    L = layer()
    inv = in_req()
    txn = L.receive(inv, PEER, "UDP", 0)[0][1]
    L.respond(txn, Response.for_request(inv, 486, None, "ut1"), 0)
    assert txn.state == COMPLETED and sent(L)[0].status == 486
    times = []
    ev = run_timers(L, 10 ** 9, times)
    assert times == [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500,
                     31500], times
    assert kinds(ev) == ["timeout", "terminated"] and len(L) == 0


def test_ist_ack_confirmed_timer_i():
    L = layer()
    inv = in_req()
    txn = L.receive(inv, PEER, "UDP", 0)[0][1]
    L.respond(txn, Response.for_request(inv, 603, None, "ut1"), 0)
    L.take_outgoing()
    # retransmitted INVITE in Completed: final resent
    assert L.receive(in_req(), PEER, "UDP", 100) == []
    assert sent(L)[0].status == 603
    ev = L.receive(in_req("ACK", to_tag="ut1"), PEER, "UDP", 700)
    assert ev == [] and txn.state == CONFIRMED      # ACK absorbed
    assert L.next_deadline() == 700 + 5000          # Timer I = T4
    assert L.receive(in_req("ACK", to_tag="ut1"), PEER, "UDP", 800) == []
    assert L.receive(in_req(), PEER, "UDP", 900) == []
    assert L.take_outgoing() == []                  # nothing resent in Confirmed
    ev = run_timers(L, 10 ** 9)
    assert kinds(ev) == ["terminated"] and len(L) == 0


def test_ist_tcp_no_g_and_i_zero():
    L = layer()
    inv = in_req()
    txn = L.receive(inv, PEER, "TCP", 0)[0][1]
    assert txn.dest == PEER
    L.respond(txn, Response.for_request(inv, 486, None, "ut1"), 0)
    L.take_outgoing()
    assert L.next_deadline() == 32000               # only Timer H
    ev = L.receive(in_req("ACK", to_tag="ut1"), PEER, "TCP", 10)
    assert kinds(ev) == ["terminated"] and len(L) == 0


def test_ist_2xx_accepted_retransmits_until_ack():
    L = layer()
    inv = in_req()
    txn = L.receive(inv, PEER, "UDP", 0)[0][1]
    L.respond(txn, Response.for_request(inv, 200, None, "ut1"), 0)
    assert txn.state == ACCEPTED and sent(L)[0].status == 200
    times = []
    run_timers(L, 4000, times)
    assert times == [500, 1500, 3500], times
    # INVITE retransmission absorbed, 2xx resent, TU not bothered
    assert L.receive(in_req(), PEER, "UDP", 4100) == []
    assert sent(L)[0].status == 200
    ack = in_req("ACK", branch="z9hG4bKack2", to_tag="ut1")
    ev = L.receive(ack, PEER, "UDP", 4200)
    assert ev == [("request", txn, ack)] and txn.ack_seen
    times = []
    ev = run_timers(L, 10 ** 9, times)
    assert times == [] and kinds(ev) == ["terminated"] and len(L) == 0
    # an ACK after Timer L still reaches the TU, with no transaction
    ev = L.receive(ack, PEER, "UDP", 40000)
    assert ev == [("request", None, ack)]


def test_ist_2xx_no_ack_times_out():
    L = layer()
    inv = in_req()
    txn = L.receive(inv, PEER, "UDP", 0)[0][1]
    L.respond(txn, Response.for_request(inv, 200, None, "ut1"), 0)
    L.take_outgoing()
    times = []
    ev = run_timers(L, 10 ** 9, times)
    assert times == [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500,
                     31500], times
    assert kinds(ev) == ["timeout", "terminated"]


def test_ist_2xx_proxy_no_retransmit():
    L = layer()
    inv = in_req()
    txn = L.receive(inv, PEER, "UDP", 0)[0][1]
    L.respond(txn, Response.for_request(inv, 200, None, "ut1"), 0,
              retransmit_2xx=False)
    L.take_outgoing()
    times = []
    ev = run_timers(L, 10 ** 9, times)
    assert times == [] and kinds(ev) == ["terminated"]


def test_ist_invalid_tu_transitions_raise():
    L = layer()
    inv = in_req()
    txn = L.receive(inv, PEER, "UDP", 0)[0][1]
    L.respond(txn, Response.for_request(inv, 486, None, "t"), 0)
    e = raises(TransactionError, L.respond, txn,
               Response.for_request(inv, 180, None, "t"), 1)
    assert "completed" in str(e)
    raises(TransactionError, L.respond, txn, Response.for_request(inv, 200, None, "t"), 1)
    c = L.send_request(out_req("OPTIONS"), PEER, "UDP", 0)
    raises(TransactionError, L.respond, c, Response(200), 1)
    L.transport_error(txn, 2)
    raises(TransactionError, L.respond, txn, Response.for_request(inv, 500), 3)


def test_ist_ack_in_proceeding_dropped_and_counted():
    L = layer()
    L.receive(in_req(), PEER, "UDP", 0)
    assert L.receive(in_req("ACK"), PEER, "UDP", 10) == []
    assert L.stats["dropped"] == 1


# ---------------- non-INVITE server ----------------

def test_nist_full_cycle_udp():
    L = layer()
    req = in_req("OPTIONS")
    ev = L.receive(req, PEER, "UDP", 0)
    txn = ev[0][1]
    assert txn.kind == NIST and txn.state == TRYING
    assert L.next_deadline() is None
    assert L.receive(in_req("OPTIONS"), PEER, "UDP", 100) == []
    assert L.take_outgoing() == []          # Trying: retransmission absorbed
    L.respond(txn, Response.for_request(req, 100), 150)
    assert txn.state == PROCEEDING and sent(L)[0].status == 100
    assert L.receive(in_req("OPTIONS"), PEER, "UDP", 200) == []
    assert sent(L)[0].status == 100
    L.respond(txn, Response.for_request(req, 200, None, "x"), 300)
    assert txn.state == COMPLETED and sent(L)[0].status == 200
    assert L.next_deadline() == 300 + 32000  # Timer J
    assert L.receive(in_req("OPTIONS"), PEER, "UDP", 400) == []
    assert sent(L)[0].status == 200
    raises(TransactionError, L.respond, txn, Response.for_request(req, 500), 500)
    ev = run_timers(L, 10 ** 9)
    assert kinds(ev) == ["terminated"] and len(L) == 0


def test_nist_tcp_final_terminates():
    L = layer()
    req = in_req("REGISTER")
    txn = L.receive(req, PEER, "TCP", 0)[0][1]
    ev = L.respond(txn, Response.for_request(req, 200, None, "x"), 1)
    assert kinds(ev) == ["terminated"] and len(L) == 0


# ---------------- matching ----------------

def test_request_matching_sent_by_and_method():
    L = layer()
    a = L.receive(in_req("OPTIONS"), PEER, "UDP", 0)[0][1]
    # same branch, other sent-by: a different transaction
    b = L.receive(in_req("OPTIONS", sent_by="192.0.2.21"), PEER, "UDP", 0)[0][1]
    # same branch and sent-by, other method: different too
    c = L.receive(in_req("INFO"), PEER, "UDP", 0)[0][1]
    assert a is not b and a is not c and len(L) == 3
    # ACK with a different sent-by does not match the INVITE transaction
    inv = in_req("INVITE", branch="z9hG4bKi")
    t = L.receive(inv, PEER, "UDP", 0)[0][1]
    L.respond(t, Response.for_request(inv, 486, None, "r"), 0)
    ack = in_req("ACK", branch="z9hG4bKi", sent_by="192.0.2.99", to_tag="r")
    assert L.receive(ack, PEER, "UDP", 5) == [("request", None, ack)]
    assert t.state == COMPLETED


def test_cancel_matches_separately():
    L = layer()
    inv = in_req()
    it = L.receive(inv, PEER, "UDP", 0)[0][1]
    ev = L.receive(in_req("CANCEL"), PEER, "UDP", 10)
    ct = ev[0][1]
    assert ct is not it and ct.kind == NIST and ct.invite_txn is it
    assert it.state == PROCEEDING and len(L) == 2
    # a CANCEL for an unknown INVITE
    ev = L.receive(in_req("CANCEL", branch="z9hG4bKzz"), PEER, "UDP", 10)
    assert ev[0][1].invite_txn is None
    L.respond(ct, Response.for_request(ct.request, 200, None, "u"), 20)
    L.respond(it, Response.for_request(inv, 487, None, "u"), 20)
    out = sent(L)
    assert [m.status for m in out] == [200, 487]
    assert out[0].cseq.method == "CANCEL" and out[1].cseq.method == "INVITE"


def test_rfc2543_fallback_matching():
    L = layer()
    inv = in_req(branch=None)
    ev = L.receive(inv, PEER, "UDP", 0)
    txn = ev[0][1]
    assert txn.key.startswith("2|")
    assert L.receive(in_req(branch=None), PEER, "UDP", 100) == []   # retransmission
    L.respond(txn, Response.for_request(inv, 404, None, "nf"), 200)
    L.take_outgoing()
    assert L.receive(in_req(branch=None), PEER, "UDP", 300) == []
    assert sent(L)[0].status == 404
    # old-style branch without the magic cookie also falls back
    assert L.receive(in_req(branch="1234"), PEER, "UDP", 0)[0][1].key[0] == "2"
    # ACK with the wrong To tag does not match
    bad = in_req("ACK", branch=None, to_tag="other")
    assert L.receive(bad, PEER, "UDP", 400) == [("request", None, bad)]
    assert L.receive(in_req("ACK", branch=None, to_tag="nf"), PEER, "UDP", 400) == []
    assert txn.state == CONFIRMED
    # different CSeq: a new transaction
    ev = L.receive(in_req(branch=None, cseq=2), PEER, "UDP", 500)
    assert ev[0][1] is not txn


def test_table_full_503_retry_after():
    L = layer(max_transactions=3, retry_after=17)
    for i in range(3):
        L.receive(in_req("OPTIONS", branch="z9hG4bKf%d" % i), PEER, "UDP", 0)
    assert len(L) == 3
    assert L.receive(in_req("OPTIONS", branch="z9hG4bKf9"), PEER, "UDP", 0) == []
    out = L.take_outgoing()
    assert len(out) == 1 and out[0][1] == PEER
    r = parse(out[0][0])
    assert r.status == 503 and r.get("retry-after") == "17" and r.to.tag
    assert L.stats["overflow"] == 1 and len(L) == 3
    # a retransmission of a known request is still absorbed
    assert L.receive(in_req("OPTIONS", branch="z9hG4bKf0"), PEER, "UDP", 1) == []
    assert L.stats["overflow"] == 1
    # ACKs never create transactions: passed to the TU even when full
    ack = in_req("ACK", branch="z9hG4bKa")
    assert L.receive(ack, PEER, "UDP", 2) == [("request", None, ack)]
    assert MAX_TRANSACTIONS == 256


def test_full_table_ends_the_oldest_lingering_transaction_first():
    L = layer(max_transactions=3)
    txns = []
    for i in range(3):
        req = in_req("OPTIONS", branch="z9hG4bKl%d" % i)
        t = L.receive(req, PEER, "UDP", i)[0][1]
        txns.append((t, req))
    # two answered (Completed: only absorbing retransmissions until Timer J), one live
    for t, req in txns[:2]:
        L.respond(t, Response.for_request(req, 200, None, "x"), 5)
    L.take_outgoing()
    new = in_req("OPTIONS", branch="z9hG4bKl9")
    ev = L.receive(new, PEER, "UDP", 10)
    assert ev and ev[0][0] == "request", ev
    assert L.stats["evicted"] == 1 and L.stats["overflow"] == 0 and len(L) == 3
    assert txns[0][0].state == TERMINATED and txns[1][0].state == COMPLETED
    assert txns[2][0].state == TRYING
    L.respond(ev[0][1], Response.for_request(new, 200, None, "x"), 11)
    # one more evicts the next oldest lingering one; live transactions never go
    ev = L.receive(in_req("OPTIONS", branch="z9hG4bKl10"), PEER, "UDP", 12)
    assert txns[1][0].state == TERMINATED and L.stats["evicted"] == 2
    L.receive(in_req("OPTIONS", branch="z9hG4bKl11"), PEER, "UDP", 13)
    assert L.stats["evicted"] == 3
    L.take_outgoing()
    # now every entry is live: a new request gets the stateless 503
    assert L.receive(in_req("OPTIONS", branch="z9hG4bKl12"), PEER, "UDP", 14) == []
    assert L.stats["overflow"] == 1 and parse(L.take_outgoing()[0][0]).status == 503
    # a steady stream of answered requests keeps the table full of the newest
    L2 = layer(max_transactions=8)
    for i in range(500):
        req = in_req("OPTIONS", branch="z9hG4bKm%d" % i)
        ev = L2.receive(req, PEER, "UDP", i * 10)
        L2.respond(ev[0][1], Response.for_request(req, 200, None, "x"), i * 10)
        L2.on_timer(i * 10)
        L2.take_outgoing()
    assert len(L2) == 8 and L2.stats["evicted"] == 492 and L2.stats["overflow"] == 0


def test_table_empty_after_all_timers():
    L = layer()
    for i in range(5):
        L.send_request(out_req("OPTIONS", i + 1), PEER, "UDP", i)
        L.send_request(out_req("INVITE", i + 10), PEER, "UDP", i)
        inv = in_req(branch="z9hG4bKs%d" % i)
        t = L.receive(inv, PEER, "UDP", i)[0][1]
        L.respond(t, Response.for_request(inv, 200 if i % 2 else 480, None, "q"), i)
        r = in_req("OPTIONS", branch="z9hG4bKo%d" % i)
        t = L.receive(r, PEER, "UDP", i)[0][1]
        L.respond(t, Response.for_request(r, 200, None, "q"), i)
    assert len(L) == 20
    ev = run_timers(L, 10 ** 9)
    assert len(L) == 0 and L.next_deadline() is None
    assert kinds(ev).count("terminated") == 20


def test_request_missing_headers_dropped_and_counted():
    L = layer()
    r = in_req("OPTIONS")
    r.remove("call-id")            # no response can be formed without Call-ID
    assert L.receive(r, PEER, "UDP", 0) == []
    assert L.take_outgoing() == []
    assert L.stats["bad_requests"] == 1 and len(L) == 0


def test_response_missing_headers_dropped():
    L = layer()
    r = Response(200, None, [("Via", "SIP/2.0/UDP x;branch=z9hG4bKq")])
    assert L.receive(r, PEER, "UDP", 0) == [] and L.stats["dropped"] == 1


# ---------------- helpers ----------------

def test_stamp_via_and_response_address():
    m = in_req(via_extra=";rport")
    stamp_via(m, ("203.0.113.5", 40000))
    v = m.top_via
    assert v.received == "203.0.113.5" and v.rport == 40000
    assert response_address(m) == ("203.0.113.5", 40000)
    m = in_req()
    stamp_via(m, ("192.0.2.20", 5999))
    assert m.top_via.received is None           # same host, no rport asked
    assert response_address(m) == ("192.0.2.20", 5060)
    m = in_req()
    stamp_via(m, ("198.51.100.1", 5060))
    assert m.top_via.received == "198.51.100.1"
    assert response_address(m) == ("198.51.100.1", 5060)
    m = in_req(sent_by="host.example")
    assert response_address(m) == ("host.example", 5060)
    m = in_req(via_extra=";maddr=239.1.1.1")
    assert response_address(m) == ("239.1.1.1", 5060)
    assert len(m.via) == 1 and m.get("via").count("branch=") == 1


def test_bad_destinations_dropped_and_counted():
    assert bad_destination(("255.255.255.255", 5060))
    assert bad_destination(("224.0.0.1", 5060)) and bad_destination(("[ff02::1]", 5060))
    assert not bad_destination(("192.0.2.255", 5060))
    assert not bad_destination(("example.com", 5060))
    L = layer()
    inv = in_req(via_extra=";maddr=239.1.1.1")
    txn = L.receive(inv, PEER, "UDP", 0)[0][1]
    L.respond(txn, Response.for_request(inv, 404, None, "x"), 0)
    assert L.take_outgoing() == [] and L.stats["bad_destination"] == 1
    L.send_request(out_req("OPTIONS"), ("255.255.255.255", 5060), "UDP", 0)
    assert L.take_outgoing() == [] and L.stats["bad_destination"] == 2


def test_stateless_response_stable_tag():
    req = in_req("OPTIONS")
    a = stateless_response(req, 503, None, (("Retry-After", "5"),))
    b = stateless_response(in_req("OPTIONS"), 503)
    assert a.to.tag and a.to.tag == b.to.tag and a.get("retry-after") == "5"
    assert a.cseq.num == 1 and a.call_id == "cid-9"
    assert stateless_response(req, 100).to.tag is None


def test_salvage_response():
    raw = (b"INVITE sip:x@y SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP 192.0.2.20;branch=z9hG4bKs\r\n"
           b"v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKt\r\n"
           b"From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\ni: cid\r\n"
           b"CSeq: 9 INVITE\r\nContent-Length: 99999\r\nBad>Header: \xff\r\n\r\n")
    r = salvage_response(raw, 400, "Bad Content-Length")
    assert r is not None
    p = parse(r.serialize())
    assert p.status == 400 and p.reason == "Bad Content-Length"
    assert len(p.via) == 2 and p.call_id == "cid" and p.cseq.num == 9
    assert p.to.tag and p.from_.tag == "1"
    assert salvage_response(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n") is None
    assert salvage_response(raw.replace(b"i: cid\r\n", b"")) is None
    assert salvage_response(raw.replace(b"9 INVITE", b"9 ACK").replace(
        b"INVITE sip", b"ACK sip")) is None
    dup = salvage_response(raw.replace(b"i: cid\r\n", b"i: cid\r\nCall-ID: other\r\n"))
    assert dup is not None and dup.status == 400 and dup.get("call-id") == "cid"
    assert salvage_response(b"\xff\xfe") is None
    assert salvage_response(b"") is None


def test_make_ack_fields():
    req = out_req()
    req.add("Via", "SIP/2.0/UDP h;branch=z9hG4bKm", True)
    resp = Response.for_request(req, 480, None, "tt")
    ack = make_ack(req, resp)
    assert ack.method == "ACK" and ack.top_via.branch == "z9hG4bKm"
    assert ack.to.tag == "tt" and ack.cseq.method == "ACK"


def test_small_t1_scales_everything():
    L = layer(timers=Timers(t1=100, t2=400, t4=1000))
    L.send_request(out_req("OPTIONS"), PEER, "UDP", 0)
    L.take_outgoing()
    times = []
    ev = run_timers(L, 10 ** 9, times)
    assert times == [100, 300, 700, 1100, 1500, 1900, 2300, 2700, 3100, 3500,
                     3900, 4300, 4700, 5100, 5500, 5900, 6300], times
    assert kinds(ev) == ["timeout", "terminated"]
