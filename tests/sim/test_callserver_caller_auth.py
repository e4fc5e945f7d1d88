"""Issue 12 items 3 and 4: who may place a call through the call server.

Item 3: an INVITE forged from a registered phone's IP:port, without
credentials, is challenged (407), unless the station is explicitly
configured `caller-authentication registered-source` (a phone that cannot
answer a challenge).  Item 4: without credentials, a known and an unknown
extension get the same answer, for every method, as REGISTER already does.
"""
import re

from firmware.compat import Random
from sip.digest import DigestClient
from sip.message import parse
from tests.sim.cs_world import CsWorld, B, DOMAIN, password
from tests.sim.test_callserver_registrar import Raw

_N = [0]

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 40000 RTP/AVP 0\r\na=sendrecv\r\n")


def request(sock, method, from_user, to_user, call_id=None, auth=None, cseq=1, body=""):
    host, port = sock.getsockname()
    _N[0] += 1
    cid = call_id or "cid%d" % _N[0]
    lines = ["%s sip:%s@%s SIP/2.0" % (method, to_user, DOMAIN),
             "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKca%d;rport" % (host, port, _N[0]),
             "Max-Forwards: 70",
             "From: <sip:%s@%s>;tag=ft%d" % (from_user, DOMAIN, _N[0]),
             "To: <sip:%s@%s>" % (to_user, DOMAIN),
             "Call-ID: %s" % cid,
             "CSeq: %d %s" % (cseq, method),
             "Contact: <sip:%s@%s:%d>" % (from_user, host, port)]
    if method == "SUBSCRIBE":
        lines.append("Event: message-summary")
    if method == "REFER":
        lines.append("Refer-To: <sip:2003@%s>" % DOMAIN)
    if auth:
        lines.append("Proxy-Authorization: " + auth)
    if body:
        lines.append("Content-Type: " + ("application/sdp" if method == "INVITE" else "text/plain"))
    lines.append("Content-Length: %d" % len(body))
    return "\r\n".join(lines) + "\r\n\r\n" + body


def send(w, sock, text):
    """Send a request, run the clock; the responses to it (its Call-ID) only:
    the raw client never ACKs, so earlier 407s are retransmitted meanwhile."""
    cid = re.search(r"(?m)^Call-ID: (\S+)", text).group(1)
    return [r for r in w.exchange(sock, text) if parse(r).call_id == cid]


def _masked(data, *names):
    """A response with what differs by nature (nonce, tags, branch, Call-ID,
    the request's own user names) masked."""
    text = data.decode()
    text = re.sub(r'nonce="[0-9a-f]+"', 'nonce="N"', text)
    text = re.sub(r";tag=[^;\r\n>]+", ";tag=T", text)
    text = re.sub(r"branch=[^;\r\n]+", "branch=B", text)
    text = re.sub(r"(?im)^(call-id|i):.*$", "Call-ID: C", text)
    for n in names:
        text = text.replace("sip:%s@" % n, "sip:U@")
    return text


def test_an_invite_forged_from_a_registered_source_is_challenged(tmp_path):
    w = CsWorld(tmp_path, seed=41, sip_exts=("2001", "2002"))
    try:
        w.register_all(("2002",))
        phone = Raw(w, "2001", password("2001"), host="127.0.0.61")
        assert phone.register(expires=600).status == 200
        # the outsider forges 2001's registered IP:port (here: the very socket)
        got = [parse(r) for r in send(w, phone.sock, request(phone.sock, "INVITE", "2001",
                                                                "2002", body=SDP))]
        assert [r.status for r in got] == [407], [r.status for r in got]
        assert w.cs.b2b.counters["invites"] == 0 and not w.cs.b2b.calls
        # the phone itself answers the challenge (nonce bound to its source): the call goes on
        ch = got[-1].get_all("proxy-authenticate")
        auth = DigestClient().authorize("INVITE", "sip:2002@" + DOMAIN, ch, "2001",
                                        password("2001"), Random(3))
        got = [parse(r) for r in send(w, phone.sock, request(phone.sock, "INVITE", "2001",
                                                                "2002", auth=auth, body=SDP))]
        assert w.cs.b2b.counters["invites"] == 1, [r.status for r in got]
        assert 407 not in [r.status for r in got]
        w.cs.b2b.hangup_all()
    finally:
        w.close()


def test_a_forged_invite_cannot_seize_the_fxo_line(tmp_path):
    # the outside test's finding: an INVITE forged from a registered phone's
    # IP:port, without credentials, seized the FXO line
    w = CsWorld(tmp_path, seed=42, sip_exts=("2001",), fxs=True,
                extra=[B + "trunk pstn fxo-port 1", B + "trunk pstn prefix 9"])
    try:
        gw = w.app.gateway
        w.run_until(lambda: gw.port_ready("fxo", 1), 3000)
        phone = Raw(w, "2001", password("2001"), host="127.0.0.65")
        assert phone.register(expires=600).status == 200
        got = [parse(r) for r in send(w, phone.sock, request(phone.sock, "INVITE", "2001",
                                                             "95551234", body=SDP))]
        assert [r.status for r in got] == [407], [r.status for r in got]
        w.run(3000)
        assert not w.app.hardware.sim.lines[1].seized
        assert not w.cs.b2b.calls
        # with the station's credentials the same call goes out on the line
        ch = got[-1].get_all("proxy-authenticate")
        auth = DigestClient().authorize("INVITE", "sip:95551234@" + DOMAIN, ch, "2001",
                                        password("2001"), Random(3))
        send(w, phone.sock, request(phone.sock, "INVITE", "2001", "95551234", auth=auth, body=SDP))
        w.run_until(lambda: w.app.hardware.sim.lines[1].seized, 3000)
        w.cs.b2b.hangup_all()
    finally:
        w.close()


def test_registered_source_trust_is_an_explicit_station_option(tmp_path):
    w = CsWorld(tmp_path, seed=43, sip_exts=("2001", "2002"),
                extra=(B + "station s2001 caller-authentication registered-source",))
    try:
        w.register_all()
        # a phone that cannot answer a challenge, from its registered contact
        w.phones["2001"].max_auth_tries = 0
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 5000)
        assert w.cs.counters["calls_trusted_by_source"] == 1
        assert w.cs.counters["invite_challenges"] == 0
        w.phones["2001"].hangup(c)
        # the same station from any other address is challenged
        other = w.raw("127.0.0.62")
        got = [parse(r) for r in send(w, other, request(other, "INVITE", "2001", "2002",
                                                           body=SDP))]
        assert [r.status for r in got] == [407]
        # 2002 (default: digest) is challenged even from its registered contact
        c = w.phones["2002"].call("2001")
        w.run_until(lambda: c.state == "connected", 5000)
        assert w.phones["2002"].counters.get("calls_auth_retries") == 1
        w.phones["2002"].hangup(c)
        w.assert_refused([B + "station a1001 extension 1001", B + "station a1001 fxs-port 1",
                          B + "station a1001 password Secret-1001",
                          B + "station a1001 caller-authentication registered-source"],
                         "only for SIP stations")
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_known_and_unknown_extensions_are_indistinguishable_without_credentials(tmp_path):
    w = CsWorld(tmp_path, seed=45, sip_exts=("2001", "2002"))
    try:
        w.register_all()
        sock = w.raw("127.0.0.63")
        # INVITE: a station's From vs no station's From, to a station vs to no station
        answers = {}
        for frm, to in (("2001", "2002"), ("9001", "2002"), ("2001", "9002"), ("9001", "9002")):
            t0 = w.now()
            got = send(w, sock, request(sock, "INVITE", frm, to, body=SDP))
            assert len(got) == 1, got
            answers[(frm, to)] = (_masked(got[0], frm, to), w.now() - t0)
            # answering the challenge with a guessed password: the same 407 again
            ch = parse(got[0]).get_all("proxy-authenticate")
            auth = DigestClient().authorize("INVITE", "sip:%s@%s" % (to, DOMAIN), ch, frm,
                                            "guessed-password", Random(3))
            again = send(w, sock, request(sock, "INVITE", frm, to, auth=auth, body=SDP))
            assert len(again) == 1, again
            answers[(frm, to, "auth")] = (_masked(again[0], frm, to), None)
        first = answers[("2001", "2002")]
        assert first[0].startswith("SIP/2.0 407 "), first
        for k, v in answers.items():
            ref = answers[("2001", "2002", "auth")] if "auth" in k else first
            assert v == ref, (k, v, ref)
        # every other method: a known and an unknown extension get the same answer
        for method in ("OPTIONS", "MESSAGE", "SUBSCRIBE", "REFER", "INFO", "BYE", "NOTIFY",
                       "PUBLISH", "UPDATE", "PRACK"):
            got = {}
            for frm, to in (("2001", "2002"), ("9001", "9002")):
                r = send(w, sock, request(sock, method, frm, to,
                                             body="hi" if method == "MESSAGE" else ""))
                assert len(r) == 1, (method, r)
                got[to] = _masked(r[0], frm, to)
            assert got["2002"] == got["9002"], (method, got)
            assert not got["2002"].startswith("SIP/2.0 5"), (method, got)
        assert not w.cs.b2b.calls
    finally:
        w.close()


def test_unknown_source_trunk_takes_calls_to_local_destinations_whatever_the_from(tmp_path):
    w = CsWorld(tmp_path, seed=47, sip_exts=("2001", "2002"),
                extra=(B + "call-server unknown-source trunk", B + "station s2002 did 4085550102"))
    try:
        w.register_all(("2002",))
        sock = w.raw("127.0.0.64")
        statuses = {}
        for frm in ("2001", "9001"):
            got = [parse(r) for r in send(w, sock, request(sock, "INVITE", frm, "4085550102",
                                                              body=SDP))]
            statuses[frm] = [r.status for r in got]
            assert "%s (trunk)" % frm in w.cli("show calls")
            w.cs.b2b.hangup_all()
            w.run(2000)
        assert statuses["2001"] == statuses["9001"] and 407 not in statuses["2001"], statuses
        assert w.cs.counters["calls_from_unknown"] == 2
        # outside numbers and unknown numbers need credentials, whatever the From
        for frm in ("2001", "9001"):
            got = [parse(r) for r in send(w, sock, request(sock, "INVITE", frm, "95551234",
                                                              body=SDP))]
            assert [r.status for r in got] == [407], (frm, [r.status for r in got])
        w.cs.b2b.hangup_all()
    finally:
        w.close()
