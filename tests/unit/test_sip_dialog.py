# portable: micropython
"""Dialogs: creation on both sides, route sets, target refresh, CSeq, forking."""
from tests.portable import raises
from firmware.compat import Random
from sip.message import parse, Request, Response
from sip.dialog import (Dialog, DialogTable, DialogError, DialogTableFull,
                        create_cancel, uas_response_headers, MAX_DIALOGS,
                        EARLY, CONFIRMED, TERMINATED)

INVITE = (b"INVITE sip:bob@biloxi.example SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP pc33.atlanta.example;branch=z9hG4bKnashds8\r\n"
          b"Max-Forwards: 70\r\n"
          b"To: Bob <sip:bob@biloxi.example>\r\n"
          b"From: Alice <sip:alice@atlanta.example>;tag=1928301774\r\n"
          b"Call-ID: a84b4c76e66710\r\n"
          b"CSeq: 314159 INVITE\r\n"
          b"Contact: <sip:alice@pc33.atlanta.example>\r\n"
          b"Route: <sip:p0.example;lr>\r\n"
          b"Record-Route: <sip:p2.example;lr>, <sip:p1.example;lr>\r\n"
          b"Content-Length: 0\r\n\r\n")


def inv():
    return parse(INVITE)


def uac_invite():
    r = inv()
    r.remove("record-route")
    return r


def resp(status, tag="314159b", contact="<sip:bob@192.0.2.4>", rr=True):
    r = Response.for_request(inv(), status, None, tag)
    if rr:
        r.add("Record-Route", "<sip:p2.example;lr>")
        r.add("Record-Route", "<sip:p1.example;lr>")
    if contact:
        r.add("Contact", contact)
    return parse(r.serialize())


def test_uac_dialog_from_2xx():
    d = Dialog.uac(uac_invite(), resp(200))
    assert d.state == CONFIRMED and d.is_uac
    assert d.id == ("a84b4c76e66710", "1928301774", "314159b")
    assert str(d.remote_target) == "sip:bob@192.0.2.4"
    # UAC route set: Record-Route reversed
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example;lr", "sip:p2.example;lr"]
    assert d.local_cseq == 314159 and d.remote_cseq is None
    assert d.local_uri.tag is None and str(d.local_uri.uri) == "sip:alice@atlanta.example"
    assert str(d.remote_uri.uri) == "sip:bob@biloxi.example"
    assert not d.secure and d.invite_cseq == 314159


def test_uac_early_dialog_then_confirm_recomputes_route_set():
    d = Dialog.uac(uac_invite(), resp(180, rr=False, contact="<sip:early@h>"))
    assert d.state == EARLY and d.route_set == []
    assert str(d.remote_target) == "sip:early@h"
    d.confirm(resp(200))
    assert d.state == CONFIRMED and len(d.route_set) == 2
    assert str(d.remote_target) == "sip:bob@192.0.2.4"
    raises(DialogError, Dialog.uac, uac_invite(), resp(180, tag=None))
    raises(DialogError, Dialog.uac, uac_invite(), resp(486))


def test_uas_dialog():
    req = inv()
    r = Response.for_request(req, 200, None, "uas1")
    uas_response_headers(req, r)
    assert r.get_all("record-route") == ["<sip:p2.example;lr>, <sip:p1.example;lr>"]
    r.add("Contact", "<sip:bob@192.0.2.4>")
    d = Dialog.uas(req, r)
    assert d.state == CONFIRMED and not d.is_uac
    assert d.id == ("a84b4c76e66710", "uas1", "1928301774")
    assert [str(x.uri) for x in d.route_set] == ["sip:p2.example;lr", "sip:p1.example;lr"]
    assert str(d.remote_target) == "sip:alice@pc33.atlanta.example"
    assert d.remote_cseq == 314159 and d.local_cseq is None
    assert d.local_contact == "<sip:bob@192.0.2.4>"
    e = Dialog.uas(req, Response.for_request(req, 183, None, "uas2"))
    assert e.state == EARLY
    raises(DialogError, Dialog.uas, req, Response.for_request(req, 200))


def test_create_request_loose_routing():
    d = Dialog.uac(uac_invite(), resp(200))
    rng = Random(3)
    bye = d.create_request("BYE", rng, via=("UDP", "192.0.2.1:5060"))
    assert bye.method == "BYE" and str(bye.uri) == "sip:bob@192.0.2.4"
    assert [str(r.uri) for r in bye.route] == ["sip:p1.example;lr", "sip:p2.example;lr"]
    assert bye.cseq.num == 314160 and bye.cseq.method == "BYE"
    assert bye.from_.tag == "1928301774" and bye.to.tag == "314159b"
    assert bye.call_id == "a84b4c76e66710" and bye.max_forwards == 70
    assert bye.top_via.branch.startswith("z9hG4bK")
    p = parse(bye.serialize())
    assert p.cseq.num == 314160
    assert str(d.next_hop()) == "sip:p1.example;lr"
    r2 = d.create_request("INFO", body=b"x", content_type="text/plain",
                          headers=(("X-A", "1"),))
    assert r2.cseq.num == 314161 and r2.get("x-a") == "1" and r2.body == b"x"
    assert r2.top_via is None          # the transaction layer adds it
    raises(DialogError, d.create_request, "ACK")


def test_create_request_strict_routing():
    r = resp(200, rr=False)
    r.add("Record-Route", "<sip:strict.example;maddr=10.0.0.1>")
    r.add("Record-Route", "<sip:loose.example;lr>")
    d = Dialog.uac(uac_invite(), parse(r.serialize()))
    assert [str(x.uri) for x in d.route_set] == ["sip:loose.example;lr",
                                                 "sip:strict.example;maddr=10.0.0.1"]
    r = resp(200, rr=False)
    r.add("Record-Route", "<sip:loose.example;lr>")
    r.add("Record-Route", "<sip:strict.example;maddr=10.0.0.1>")
    d = Dialog.uac(uac_invite(), parse(r.serialize()))
    req = d.create_request("BYE")
    # first route is strict: it becomes the Request-URI (maddr stripped),
    # the remote target is appended as the last Route
    assert str(req.uri) == "sip:strict.example"
    assert [str(x.uri) for x in req.route] == ["sip:loose.example;lr", "sip:bob@192.0.2.4"]


def test_no_route_set():
    d = Dialog.uac(uac_invite(), resp(200, rr=False))
    req = d.create_request("OPTIONS")
    assert req.get("route") is None and str(req.uri) == "sip:bob@192.0.2.4"


def test_uas_first_request_cseq_from_rng_and_increment():
    req = inv()
    d = Dialog.uas(req, Response.for_request(req, 200, None, "u"))
    b1 = d.create_request("BYE", Random(9))
    assert 1 <= b1.cseq.num < 2 ** 31 and d.local_cseq == b1.cseq.num
    assert b1.from_.tag == "u" and b1.to.tag == "1928301774"
    assert str(b1.uri) == "sip:alice@pc33.atlanta.example"
    assert [str(x.uri) for x in b1.route] == ["sip:p2.example;lr", "sip:p1.example;lr"]
    b2 = d.create_request("INFO")
    assert b2.cseq.num == b1.cseq.num + 1


def test_remote_cseq_rules():
    req = inv()
    d = Dialog.uas(req, Response.for_request(req, 200, None, "u"))
    def mk(method, n):
        return Request(method, "sip:bob@x", [("CSeq", "%d %s" % (n, method))])
    assert d.receive_request(mk("INFO", 314160)) is None and d.remote_cseq == 314160
    assert d.receive_request(mk("INFO", 314159)) == (500, "Out Of Order")
    assert d.remote_cseq == 314160
    assert d.receive_request(mk("ACK", 1)) is None
    assert d.receive_request(mk("CANCEL", 1)) is None
    assert d.receive_request(mk("BYE", 400000)) is None and d.remote_cseq == 400000
    # UAC side: remote CSeq empty, any value accepted
    u = Dialog.uac(uac_invite(), resp(200))
    assert u.receive_request(mk("BYE", 5)) is None and u.remote_cseq == 5


def test_target_refresh():
    d = Dialog.uac(uac_invite(), resp(200))
    reinv = d.create_request("INVITE")
    assert reinv.cseq.num == 314160 and d.invite_cseq == 314160
    assert reinv.get("contact") == "<sip:alice@pc33.atlanta.example>"
    ok = Response.for_request(reinv, 200)
    ok.add("Contact", "<sip:bob@198.51.100.7:5070>")
    d.on_response(reinv, ok)
    assert str(d.remote_target) == "sip:bob@198.51.100.7:5070"
    # non-refresh method or failure leaves it alone
    info = d.create_request("INFO")
    ok2 = Response.for_request(info, 200)
    ok2.add("Contact", "<sip:zzz@h>")
    d.on_response(info, ok2)
    fail = Response.for_request(reinv, 488)
    fail.add("Contact", "<sip:zzz@h>")
    d.on_response(reinv, fail)
    assert str(d.remote_target) == "sip:bob@198.51.100.7:5070"
    # UAS side: refreshed from the request once answered 2xx
    req = inv()
    s = Dialog.uas(req, Response.for_request(req, 200, None, "u"))
    upd = Request("UPDATE", "sip:bob@x", [("CSeq", "314160 UPDATE"),
                                         ("Contact", "<sip:alice@203.0.113.9>")])
    s.on_sent_response(upd, Response(200))
    assert str(s.remote_target) == "sip:alice@203.0.113.9"


def test_create_ack_for_2xx():
    d = Dialog.uac(uac_invite(), resp(200))
    ack = d.create_ack(rng=Random(1), via=("UDP", "192.0.2.1"))
    assert ack.method == "ACK" and ack.cseq.num == 314159 and ack.cseq.method == "ACK"
    assert str(ack.uri) == "sip:bob@192.0.2.4" and len(ack.route) == 2
    assert ack.to.tag == "314159b" and d.local_cseq == 314159
    assert ack.top_via.branch != "z9hG4bKnashds8"
    ack2 = d.create_ack(7, body=b"v=0\r\n", content_type="application/sdp")
    assert ack2.cseq.num == 7 and ack2.content_type == "application/sdp"
    req = inv()
    s = Dialog.uas(req, Response.for_request(req, 200, None, "u"))
    raises(DialogError, s.create_ack)


def test_create_cancel():
    i = inv()
    c = create_cancel(i)
    assert c.method == "CANCEL" and str(c.uri) == str(i.uri)
    assert c.top_via.branch == "z9hG4bKnashds8" and len(c.via) == 1
    assert c.call_id == i.call_id and c.cseq.num == 314159 and c.cseq.method == "CANCEL"
    assert c.get("to") == i.get("to") and c.get("from") == i.get("from")
    assert c.get_all("route") == ["<sip:p0.example;lr>"]
    p = parse(c.serialize())
    assert p.method == "CANCEL"


def test_table_matching_and_bounds():
    t = DialogTable(max_dialogs=2)
    d = t.add(Dialog.uac(uac_invite(), resp(200)))
    bye = Request("BYE", "sip:alice@h", [("From", "<sip:bob@b>;tag=314159b"),
                                         ("To", "<sip:alice@a>;tag=1928301774"),
                                         ("Call-ID", "a84b4c76e66710"),
                                         ("CSeq", "1 BYE")])
    assert t.match_request(bye) is d
    assert t.match_response(resp(200)) is d
    bye.set("To", "<sip:alice@a>")
    assert t.match_request(bye) is None
    raises(DialogError, t.add, Dialog.uac(uac_invite(), resp(200)))
    t.add(Dialog.uac(uac_invite(), resp(200, tag="two")))
    e = raises(DialogTableFull, t.add, Dialog.uac(uac_invite(), resp(200, tag="three")))
    assert t.stats["overflow"] == 1 and len(t) == 2
    t.remove(d)
    assert len(t) == 1 and d.state == TERMINATED
    raises(DialogError, d.create_request, "BYE")
    assert MAX_DIALOGS >= 64


def test_forking_early_dialogs():
    t = DialogTable()
    req = uac_invite()
    d1, new1 = t.on_uac_response(req, resp(180, tag="fork1"))
    d2, new2 = t.on_uac_response(req, resp(183, tag="fork2"))
    d3, new3 = t.on_uac_response(req, resp(180, tag="fork3"))
    assert new1 and new2 and new3 and len(t) == 3
    assert t.on_uac_response(req, resp(180, tag="fork1")) == (d1, False)
    assert t.on_uac_response(req, resp(100, tag=None)) == (None, False)
    assert len(t.early_dialogs("a84b4c76e66710", "1928301774")) == 3
    # first 2xx confirms fork2; the others can be terminated
    d, new = t.on_uac_response(req, resp(200, tag="fork2"))
    assert d is d2 and not new and d2.state == CONFIRMED
    gone = t.terminate_early("a84b4c76e66710", "1928301774", keep=d2)
    assert len(gone) == 2 and d1.state == TERMINATED and len(t) == 1
    # a second 2xx from another fork creates another dialog (the TU BYEs it)
    d4, new4 = t.on_uac_response(req, resp(200, tag="fork4"))
    assert new4 and d4.state == CONFIRMED and len(t) == 2
    bye = d4.create_request("BYE")
    assert bye.to.tag == "fork4"


def test_forking_final_failure_terminates_early():
    t = DialogTable()
    req = uac_invite()
    t.on_uac_response(req, resp(180, tag="a"))
    t.on_uac_response(req, resp(180, tag="b"))
    assert t.on_uac_response(req, resp(486, tag="b")) == (None, False)
    assert len(t) == 0


def test_secure_flag():
    r = uac_invite()
    r.uri = r.uri.copy()
    r.uri.scheme = "sips"
    d = Dialog.uac(r, resp(200))
    assert d.secure
