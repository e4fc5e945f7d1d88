"""Station-to-station calls through the call server (B2BUA) on the virtual
clock: forking with the first 2xx winning, busy / unknown / unregistered
answers, forward-unreachable, hold and resume relayed, CANCEL, the caller
check (registered source, 407 elsewhere, unknown sources), call limits, NAT
SDP rewriting, and analog (FXS) stations calling SIP stations through the
local call server.  No call leaves anything behind."""
from tests.sim.cs_world import CsWorld, B, DOMAIN, password


def _connect(w, a, b_ext):
    c = w.phones[a].call(b_ext)
    w.run_until(lambda: c.state == "connected", 5000)
    return c


def _incoming(w, ext):
    return [c for c in w.phones[ext].calls if c.role == "uas"]


def _record(phone):
    """Every (call, event) of a phone, ended calls included."""
    seen = []
    phone.on_event = lambda p, call, event: seen.append((call, event))
    return seen


def test_call_rings_answers_holds_resumes_and_hangs_up(tmp_path):
    w = CsWorld(tmp_path, seed=21)
    try:
        w.register_all()
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "ringing", 3000)
        out = w.cli("show calls")
        assert "2001" in out and "2002" in out and "ringing" in out, out
        w.run_until(lambda: c.state == "connected", 5000)
        inc = _incoming(w, "2002")[0]
        assert inc.remote == "2001"
        out = w.cli("show calls")
        assert "Calls: 1 (limit 64)" in out and "connected" in out, out
        w.phones["2001"].hold(c)
        w.run_until(lambda: inc.remote_held, 3000)
        assert c.held
        w.phones["2001"].resume(c)
        w.run_until(lambda: not inc.remote_held, 3000)
        assert w.cs.b2b.counters["reinvites_relayed"] == 2
        w.run(10000)
        w.phones["2002"].hangup(inc)           # the callee hangs up this time
        w.run_until(lambda: c.state == "terminated", 3000)
        assert c.end_reason == "bye_received" and inc.bye_status == 200, (c.end_reason, inc.bye_status)
        assert w.cli("show calls") == "Calls: 0 (limit 64)"
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_forking_first_answer_wins_and_the_other_contact_is_cancelled(tmp_path):
    w = CsWorld(tmp_path, seed=23, sip_exts=("2001", "2002"))
    try:
        second = w.net.add("2002", password("2002"), DOMAIN, w.server)
        w.net.start()
        w.register_all()
        second.register()
        w.run_until(lambda: second.registered, 3000)
        assert len(w.cs.registrar.contacts("s2002")) == 2
        w.phones["2002"].ring_ms = 3000
        second.ring_ms = None                   # rings until cancelled
        events = _record(second)
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 8000)
        w.run(500)
        other = [x for x, e in events if e == "incoming"]
        assert len(other) == 1, events
        assert other[0].state == "terminated" and other[0].end_reason == "cancelled_by_remote", (
            other[0].state, other[0].end_reason)
        w.phones["2001"].hangup(c)
        w.phones["2002b"] = second
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_busy_unknown_unregistered_and_forward_unreachable(tmp_path):
    w = CsWorld(tmp_path, seed=25, sip_exts=("2001", "2002", "2003", "2004"),
                extra=(B + "station s2002 call-waiting disable",
                       B + "station s2004 forward-unreachable 2003"))
    try:
        w.register_all(("2001", "2002", "2003"))
        c = _connect(w, "2001", "2002")
        busy = w.phones["2003"].call("2002")
        w.run_until(lambda: busy.state == "terminated", 3000)
        assert busy.status == 486, busy.status
        unknown = w.phones["2003"].call("2999")
        w.run_until(lambda: unknown.state == "terminated", 3000)
        assert unknown.status == 404, unknown.status
        w.phones["2001"].hangup(c)
        w.run(2000)
        # 2004 never registered: its calls go to 2003
        fwd2 = w.phones["2001"].call("2004")
        w.run_until(lambda: fwd2.state == "connected", 5000)
        inc = _incoming(w, "2003")
        assert inc and inc[0].remote == "2001", inc
        assert w.cs.b2b.counters["forwarded"] == 1
        w.phones["2001"].hangup(fwd2)
        w.phones["2003"].unregister()
        w.run_until(lambda: w.cs.registrar.count == 2, 3000)
        gone = w.phones["2001"].call("2003")
        w.run_until(lambda: gone.state == "terminated", 3000)
        assert gone.status == 480, gone.status
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_caller_cancels_while_ringing(tmp_path):
    w = CsWorld(tmp_path, seed=27)
    try:
        w.register_all()
        w.phones["2002"].ring_ms = None
        events = _record(w.phones["2002"])
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "ringing", 3000)
        w.phones["2001"].hangup(c)
        w.run_until(lambda: c.state == "terminated", 3000)
        assert c.status == 487, c.status
        inc = [x for x, e in events if e == "incoming"][0]
        w.run_until(lambda: inc.state == "terminated", 3000)
        assert inc.end_reason == "cancelled_by_remote", inc.end_reason
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_no_answer_timeout_ends_the_call_with_480(tmp_path):
    w = CsWorld(tmp_path, seed=29, extra=(B + "call-server no-answer-timeout 20",))
    try:
        w.register_all()
        w.phones["2002"].ring_ms = None
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "ringing", 3000)
        w.run(19000)
        assert c.state == "ringing"
        w.run_until(lambda: c.state == "terminated", 2000)
        assert c.status == 480, c.status
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_station_calling_from_another_address_is_challenged(tmp_path):
    w = CsWorld(tmp_path, seed=31, sip_exts=("2001", "2002"))
    try:
        w.register_all(("2002",))
        # 2001 never registered: its INVITE must pass a 407 digest challenge
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 5000)
        assert w.phones["2001"].counters.get("calls_auth_retries") == 1, w.phones["2001"].counters
        assert w.cs.counters["invite_challenges"] == 1
        w.phones["2001"].hangup(c)
        # a wrong password gets 407 again and is an access failure
        w.phones["2001"].password = "not-the-password"
        bad = w.phones["2001"].call("2002")
        w.run_until(lambda: bad.state == "terminated", 5000)
        assert bad.status == 407, bad.status
        assert "call: wrong credentials" in w.cli("show security access-log")
        w.assert_no_leaks(bindings=1)
    finally:
        w.close()


def test_unknown_source_is_rejected_or_taken_as_trunk_call(tmp_path):
    w = CsWorld(tmp_path, seed=33, sip_exts=("2001", "2002"), extra=(B + "station s2002 did 4085550102",))
    try:
        w.register_all(("2002",))
        stranger = w.net.add("5551234", "whatever-pw", DOMAIN, w.server)
        w.net.start()
        w.phones["stranger"] = stranger
        c = stranger.call("2002")
        w.run_until(lambda: c.state == "terminated", 3000)
        # issue 12 item 4: challenged like a station (407, then 407 again for its
        # credentials), no longer 403 "Not A Station", which named the extensions
        assert c.status == 407, c.status
        # (no "call from a source that is no station" record any more: the
        # unauthenticated INVITE costs the same work whatever its From)
        log = w.cli("show security access-log")
        assert "5551234" in log and "call: wrong credentials" in log, log
        w.app.config.load_file("trunk", B + "call-server unknown-source trunk\n")
        c = stranger.call("4085550102")           # the DID of 2002
        w.run_until(lambda: c.state == "connected", 5000)
        inc = _incoming(w, "2002")[0]
        assert inc.remote == "5551234"
        assert "5551234 (trunk)" in w.cli("show calls")
        stranger.hangup(c)
        w.assert_no_leaks(bindings=1)
    finally:
        w.close()


def test_call_limit_answers_503_with_retry_after(tmp_path):
    w = CsWorld(tmp_path, seed=35, sip_exts=("2001", "2002", "2003", "2004"),
                extra=(B + "call-server max-calls 1",))
    try:
        w.register_all()
        c = _connect(w, "2001", "2002")
        over = w.phones["2003"].call("2004")
        w.run_until(lambda: over.state == "terminated", 3000)
        assert over.status == 503, over.status
        assert w.cs.b2b.counters["over_limit"] == 1
        w.phones["2001"].hangup(c)
        w.run(1000)
        ok = _connect(w, "2003", "2004")
        w.phones["2004"].hangup(_incoming(w, "2004")[0])
        w.run_until(lambda: ok.state == "terminated", 3000)
        w.assert_no_leaks(bindings=4)
    finally:
        w.close()


def test_analog_stations_call_sip_stations_in_process(tmp_path):
    w = CsWorld(tmp_path, seed=37, sip_exts=("2001",), fxs=True)
    try:
        gw = w.app.gateway
        assert gw.call_server.name == "local"
        w.register_all()
        # the local call server reaches its own ports in process: no REGISTER,
        # no binding, no SIP over the loopback socket
        w.run(3000)
        assert gw.registrations == {} and w.cs.registrar.count == 1
        assert w.cs.registrar.contacts("a1001") == []
        w.run_until(lambda: gw.port_ready("fxs", 1) and gw.port_ready("fxs", 2), 3000)
        sim = w.app.hardware.sim
        # SIP phone -> analog phone: it rings with the caller's number
        c = w.phones["2001"].call("1001")
        w.run_until(lambda: sim.phones[1].ringing, 5000)
        w.run_until(lambda: sim.phones[1].caller_ids, 8000)
        assert sim.phones[1].caller_ids[-1]["number"] == "2001", sim.phones[1].caller_ids
        sim.phones[1].off_hook()
        w.run_until(lambda: c.state == "connected" and gw.fxs[1].state == "talk", 3000)
        w.phones["2001"].hangup(c)
        w.run_until(lambda: gw.fxs[1].state != "talk", 3000)
        sim.phones[1].on_hook()
        w.run(1500)
        # analog phone -> SIP phone, with the analog station's name
        events = _record(w.phones["2001"])
        w.phones["2001"].ring_ms = 500
        sim.phones[2].off_hook()
        w.run(300)
        sim.phones[2].dial_dtmf("2001")
        w.run_until(lambda: gw.fxs[2].state == "talk", 10000)
        inc = [x for x, e in events if e == "incoming"][0]
        assert inc.remote == "1002", inc.remote
        assert "1002" in w.cli("show calls")
        sim.phones[2].on_hook()
        w.run_until(lambda: inc.state == "terminated", 3000)
        assert inc.end_reason == "bye_received", inc.end_reason
        assert w.app.handover_counters["calls"] == 2
        # each call held one SIP session (to the phone): three before
        assert w.cs.b2b.counters["calls"] == 2
        w.assert_no_leaks(bindings=1)
        assert gw.leaks()["rtp"] == 0
    finally:
        w.close()


def test_nated_phone_gets_requests_at_its_source_and_its_sdp_rewritten(tmp_path):
    from firmware.callserver.b2bua import fix_sdp
    body = b"v=0\r\no=- 1 1 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\n" \
           b"m=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.1.2.3\r\n"
    out = fix_sdp(body, "203.0.113.7")
    assert out.count(b"c=IN IP4 203.0.113.7\r\n") == 2 and b"o=- 1 1 IN IP4 192.168.1.20" in out
    assert fix_sdp(b"v=0\r\nc=IN IP4 198.51.100.1\r\n", "203.0.113.7") == b"v=0\r\nc=IN IP4 198.51.100.1\r\n"
    assert fix_sdp(b"c=IN IP4 172.32.0.1\n", "203.0.113.7") == b"c=IN IP4 172.32.0.1\n"
    assert fix_sdp(b"c=IN IP4 172.20.0.1\n", "203.0.113.7") == b"c=IN IP4 203.0.113.7\n"
    w = CsWorld(tmp_path, seed=39, sip_exts=("2001", "2002"),
                # a raw client that does not answer a 407: trusted by its source
                extra=(B + "station s2001 caller-authentication registered-source",))
    try:
        w.register_all(("2002",))
        events = _record(w.phones["2002"])
        # 2001 is a phone behind NAT: Contact and SDP carry its private address
        from tests.sim.test_callserver_registrar import Raw
        from sip.message import parse
        nat = Raw(w, "2001", password("2001"))
        assert nat.register(contact="sip:2001@192.168.1.20:5062").status == 200
        pub = nat.sock.getsockname()
        sdp = ("v=0\r\no=- 7 7 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\n"
               "m=audio 4000 RTP/AVP 0\r\n")
        invite = "\r\n".join([
            "INVITE sip:2002@%s SIP/2.0" % DOMAIN,
            "Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKnatinv1;rport",
            "Max-Forwards: 70", "From: <sip:2001@%s>;tag=nat1" % DOMAIN,
            "To: <sip:2002@%s>" % DOMAIN, "Call-ID: natcall@192.168.1.20", "CSeq: 1 INVITE",
            "Contact: <sip:2001@192.168.1.20:5062>", "Content-Type: application/sdp",
            "Content-Length: %d" % len(sdp), "", sdp])
        replies = [parse(r) for r in w.exchange(nat.sock, invite, 3000)]
        final = [r for r in replies if r.status >= 200]
        assert final and final[0].status == 200, [r.status for r in replies]
        inc = [x for x, e in events if e == "incoming"][0]
        conn = inc.offer.connection
        assert conn is not None and pub[0] in str(conn), conn     # rewritten to the public source
        ok = final[0]
        ack = "\r\n".join([
            "ACK %s SIP/2.0" % ok.contact[0].uri,
            "Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKnatack1;rport",
            "Max-Forwards: 70", "From: <sip:2001@%s>;tag=nat1" % DOMAIN,
            "To: %s" % ok.get("to"), "Call-ID: natcall@192.168.1.20", "CSeq: 1 ACK",
            "Content-Length: 0", "", ""])
        w.exchange(nat.sock, ack, 500)
        # the callee hangs up: the BYE reaches the NATed phone at its public source
        w.phones["2002"].hangup(inc)
        w.run(200)
        got = [parse(d) for d in w.drain(nat.sock)]
        byes = [m for m in got if getattr(m, "method", None) == "BYE"]
        assert byes and str(byes[0].uri).startswith("sip:2001@192.168.1.20:5062"), got
        w.exchange(nat.sock, w.ok_for(byes[0]), 500)
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_analog_ports_take_new_calls_only_from_the_call_server(tmp_path):
    from sip.message import parse
    w = CsWorld(tmp_path, seed=41, sip_exts=("2001",), fxs=True,
                extra=[B + "trunk pstn fxo-port 1", B + "trunk pstn prefix 9"])
    try:
        gw = w.app.gateway
        w.register_all()
        w.run_until(lambda: gw.port_ready("fxs", 1) and gw.port_ready("fxo", 1), 3000)
        sock = w.raw("127.0.0.9")
        here = "127.0.0.9:%d" % sock.getsockname()[1]
        sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.9\r\ns=-\r\nc=IN IP4 127.0.0.9\r\nt=0 0\r\n" \
              "m=audio 4000 RTP/AVP 0\r\n"
        for n, ruri in enumerate(("sip:1001@127.0.0.1:%d;line=fxs1" % w.app.sip_port,
                                  "sip:95551234@127.0.0.1:%d;line=fxo" % w.app.sip_port)):
            invite = "\r\n".join([
                "INVITE %s SIP/2.0" % ruri,
                "Via: SIP/2.0/UDP %s;branch=z9hG4bKrogue%d;rport" % (here, n),
                "Max-Forwards: 70", "From: <sip:mallory@%s>;tag=r%d" % (here, n),
                "To: <%s>" % ruri.split(";")[0], "Call-ID: rogue%d@x" % n, "CSeq: 1 INVITE",
                "Contact: <sip:mallory@%s>" % here, "Content-Type: application/sdp",
                "Content-Length: %d" % len(sdp), "", sdp])
            replies = [parse(r) for r in w.exchange(sock, invite, 500)]
            final = [r for r in replies if r.status >= 200]
            assert final and final[0].status == 403, [(r.status, r.reason) for r in replies]
            assert "Not From The Call Server" in final[0].reason
        assert gw.counters["refused_source"] == 2
        assert not w.app.hardware.sim.phones[1].ringing and not w.app.hardware.sim.lines[1].seized
        assert "not from the call server" in w.cli("show security access-log")
        w.assert_no_leaks(bindings=1)     # the FXS stations take no binding: in process
    finally:
        w.close()


class _TcpPhone:
    """A station registered over TCP: a raw connection on the simulated
    network that registers with digest and answers the INVITE it gets on
    that same connection."""

    def __init__(self, w, ext):
        import socket
        from sip.message import StreamFramer
        self.w = w
        self.ext = ext
        self.sock = w.network.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.connect(("127.0.0.1", w.app.sip_port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.framer = StreamFramer()
        self.host, self.port = self.sock.getsockname()
        self.got = []
        self.n = 0

    def send(self, text):
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def pump(self, ms=300):
        self.w.run(ms)
        while True:
            try:
                data = self.sock.recv(65535)
            except OSError:
                break
            if not data:
                break
            for m in self.framer.feed(data):
                from sip.message import parse
                self.got.append(parse(m) if isinstance(m, bytes) else m)

    def register(self):
        from sip.digest import DigestClient
        from firmware.compat import Random
        auth = None
        for cseq in (1, 2):
            self.n += 1
            lines = ["REGISTER sip:%s SIP/2.0" % DOMAIN,
                     "Via: SIP/2.0/TCP %s:%d;branch=z9hG4bKtcpreg%d;rport" % (self.host, self.port, self.n),
                     "Max-Forwards: 70", "From: <sip:%s@%s>;tag=tr1" % (self.ext, DOMAIN),
                     "To: <sip:%s@%s>" % (self.ext, DOMAIN), "Call-ID: tcpreg@x",
                     "CSeq: %d REGISTER" % cseq,
                     "Contact: <sip:%s@%s:%d;transport=tcp>" % (self.ext, self.host, self.port)]
            if auth:
                lines.append("Authorization: " + auth)
            self.send("\r\n".join(lines + ["Content-Length: 0", "", ""]))
            self.pump()
            last = self.got[-1]
            if last.status == 401:
                auth = DigestClient().authorize("REGISTER", "sip:" + DOMAIN,
                                                last.get_all("www-authenticate"), self.ext,
                                                password(self.ext), Random(3))
                continue
            return last.status

    def requests(self, method):
        return [m for m in self.got if getattr(m, "method", None) == method]

    def answer(self, req, status, body=b""):
        from sip.message import Response
        r = Response.for_request(req, status, None, "tcpans")
        if status == 200:
            r.add("Contact", "<sip:%s@%s:%d;transport=tcp>" % (self.ext, self.host, self.port))
            if body:
                r.set("Content-Type", "application/sdp")
                r.body = body
        self.send(r.serialize())


def test_a_phone_registered_over_tcp_gets_its_calls_on_that_connection(tmp_path):
    w = CsWorld(tmp_path, seed=43, sip_exts=("2001", "2002"))
    try:
        w.register_all(("2001",))
        tcp = _TcpPhone(w, "2002")
        assert tcp.register() == 200
        b = w.cs.registrar.contacts("s2002")[0]
        assert b.transport == "TCP" and b.dest == (tcp.host, tcp.port), (b.transport, b.dest)
        c = w.phones["2001"].call("2002")
        tcp.pump(500)
        invites = tcp.requests("INVITE")
        assert len(invites) == 1, tcp.got
        inv = invites[0]
        assert inv.top_via.transport == "TCP", inv.get("via")
        sdp = ("v=0\r\no=- 2 2 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
               "m=audio 41000 RTP/AVP 0\r\n" % (tcp.host, tcp.host)).encode()
        tcp.answer(inv, 200, sdp)
        w.run_until(lambda: c.state == "connected", 3000)
        tcp.pump(300)
        assert tcp.requests("ACK"), [getattr(m, "method", m.status) for m in tcp.got]
        w.phones["2001"].hangup(c)                  # the BYE comes over TCP too
        tcp.pump(300)
        byes = tcp.requests("BYE")
        assert byes and byes[0].top_via.transport == "TCP", tcp.got
        tcp.answer(byes[0], 200)
        w.run_until(lambda: c.state == "terminated", 3000)
        assert w.app.sip_transports.counters["tcp_no_connection"] == 0
        assert w.app.sip_transports.counters["udp_sent"] > 0
        tcp.sock.close()
        w.run(200)
        w.assert_no_leaks()
    finally:
        w.close()


def _delayed_offer_call(w, ack_body):
    """2001 (raw UDP, registered) calls 2002 with an INVITE without SDP; the
    2xx carries 2002's offer; 2001 ACKs with ack_body.  Returns (the raw
    client, the 200 it got, the ACK bodies 2002 received, what came after the ACK)."""
    from tests.sim.test_callserver_registrar import Raw
    from sip.message import parse
    raw = Raw(w, "2001", password("2001"))
    assert raw.register().status == 200
    host, port = raw.sock.getsockname()
    acks = []
    ph = w.phones["2002"]
    ph.on_request = lambda p, req: acks.append(req.body) if req.method == "ACK" else None
    invite = "\r\n".join([
        "INVITE sip:2002@%s SIP/2.0" % DOMAIN,
        "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKdelayed1;rport" % (host, port),
        "Max-Forwards: 70", "From: <sip:2001@%s>;tag=do1" % DOMAIN,
        "To: <sip:2002@%s>" % DOMAIN, "Call-ID: delayed@x", "CSeq: 1 INVITE",
        "Contact: <sip:2001@%s:%d>" % (host, port), "Content-Length: 0", "", ""])
    replies = [parse(r) for r in w.exchange(raw.sock, invite, 3000)]
    ok = [r for r in replies if r.status == 200][0]
    assert ok.content_type == "application/sdp" and b"m=audio" in ok.body, ok.body
    assert acks == [], "the callee was ACKed before the caller answered"
    lines = ["ACK %s SIP/2.0" % ok.contact[0].uri,
             "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKdelayedack;rport" % (host, port),
             "Max-Forwards: 70", "From: <sip:2001@%s>;tag=do1" % DOMAIN,
             "To: %s" % ok.get("to"), "Call-ID: delayed@x", "CSeq: 1 ACK"]
    if ack_body:
        lines += ["Content-Type: application/sdp"]
    text = "\r\n".join(lines + ["Content-Length: %d" % len(ack_body), "", ""]) + ack_body
    after = [parse(r) for r in w.exchange(raw.sock, text, 500)]
    return raw, ok, acks, after


def test_delayed_offer_the_callers_ack_answers_the_callees_offer(tmp_path):
    from sip.message import parse
    w = CsWorld(tmp_path, seed=44, sip_exts=("2001", "2002"),
                # a raw client that does not answer a 407: trusted by its source
                extra=(B + "station s2001 caller-authentication registered-source",))
    try:
        w.register_all(("2002",))
        w.phones["2002"].ring_ms = 200
        answer = ("v=0\r\no=- 3 3 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                  "m=audio 42000 RTP/AVP 0\r\n")
        raw, ok, acks, _ = _delayed_offer_call(w, answer)
        assert acks == [answer.encode()], acks
        inc = [c for c in w.phones["2002"].calls if c.role == "uas"][0]
        assert inc.state == "connected" and w.cs.b2b.counters["delayed_offers"] == 1
        w.phones["2002"].hangup(inc)
        w.run(200)
        got = [parse(d) for d in w.drain(raw.sock)]
        bye = [m for m in got if getattr(m, "method", None) == "BYE"][0]
        w.exchange(raw.sock, w.ok_for(bye), 300)
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_delayed_offer_without_an_answer_in_the_ack_ends_both_sides(tmp_path):
    w = CsWorld(tmp_path, seed=45, sip_exts=("2001", "2002"),
                # a raw client that does not answer a 407: trusted by its source
                extra=(B + "station s2001 caller-authentication registered-source",))
    try:
        w.register_all(("2002",))
        w.phones["2002"].ring_ms = 200
        raw, ok, acks, got = _delayed_offer_call(w, "")
        assert acks == [b""], acks          # the held ACK went, then the BYE
        byes = [m for m in got if getattr(m, "method", None) == "BYE"]
        assert byes, got
        inc = [c for c in w.phones["2002"].calls if c.role == "uas"]
        assert not inc or inc[0].state == "terminated"
        assert w.cs.b2b.calls == []
        w.assert_no_leaks(bindings=2)      # the caller never answers the BYE: Timer F ends it
    finally:
        w.close()

