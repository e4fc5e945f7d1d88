# portable: micropython
"""The outbound proxy's tracker (firmware/cdr/proxy.py): a relayed INVITE
starts a record, its final response answers or ends it, the BYE that passes
ends it with the side that sent it; retransmissions and re-INVITEs are not
new calls; a refusal is a record; the table is bounded."""
from sip.message import parse
from firmware.cdr import proxy as P
from tests.unit.test_cdr_stream import _App, _Listener
from firmware.voice.control import PEER


def _req(method, cid, to_tag=None, frm="2001", to="2002"):
    return parse(("%s sip:%s@hq.example SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK%s\r\n"
                  "From: <sip:%s@hq.example>;tag=ft\r\n"
                  "To: <sip:%s@hq.example>%s\r\n"
                  "Call-ID: %s\r\nCSeq: 1 %s\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                  % (method, to, cid, frm, to, ";tag=" + to_tag if to_tag else "", cid,
                     method)).encode())


def _resp(status, cid):
    return parse(("SIP/2.0 %d X\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1\r\n"
                  "From: <sip:2001@hq.example>;tag=ft\r\nTo: <sip:2002@hq.example>;tag=tt\r\n"
                  "Call-ID: %s\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
                  % (status, cid)).encode())


def test_a_relayed_call_from_invite_to_bye():
    app = _App()
    app.control.state = PEER
    app.control.call_server = lambda: None
    l = _Listener()
    app.calls.subscribe(l)
    t = P.ProxyCalls(app)
    inv = _req("INVITE", "c1")
    t.request(inv, True)
    t.request(inv, True)                    # retransmitted: the same call
    app.clock.advance_to(1000)
    t.response(inv, _resp(180, "c1"))
    t.response(inv, _resp(200, "c1"))
    t.request(_req("INVITE", "c1", "tt"), True)    # re-INVITE: not a new call
    app.clock.advance_to(6000)
    t.request(_req("BYE", "c1", "tt", frm="2002", to="2001"), False)   # the callee hangs up
    assert [k for k, _ in l.seen] == ["started", "answered", "ended"]
    rec = app.calls.counters
    assert rec["started"] == 1 and rec["ended"] == 1
    assert t.calls == {} and t.order == []


def test_failures_cancel_refusal_and_the_bound():
    app = _App()
    app.control.call_server = lambda: None
    ended = []

    class L:
        def call_ended(self, rec):
            ended.append(rec)
    app.calls.subscribe(L())
    t = P.ProxyCalls(app)
    inv = _req("INVITE", "c2")
    t.request(inv, True)
    t.response(inv, _resp(486, "c2"))
    inv = _req("INVITE", "c3")
    t.request(inv, True)
    t.request(_req("CANCEL", "c3"), True)
    t.response(inv, _resp(487, "c3"))
    t.refused(_req("INVITE", "c4"), 480, "Temporarily Unavailable (Not Registered)")
    assert [(r.disposition, r.sip_status, r.released_by) for r in ended] == [
        ("busy", 486, "callee"), ("cancelled", 487, "caller"), ("rejected", 480, "system")]
    assert ended[0].src_kind == "station" and ended[0].src == "2001" and ended[0].source == "proxy"
    for i in range(P.MAX_PROXY_CALLS + 3):
        t.request(_req("INVITE", "n%d" % i), False)
    assert len(t.calls) == P.MAX_PROXY_CALLS and t.counters["table_full"] == 3
    assert ended[-1].cause == "call table full" and ended[-1].disposition == "failed"
    assert ended[-1].dst_kind == "station" and ended[-1].src_kind == "peer"
