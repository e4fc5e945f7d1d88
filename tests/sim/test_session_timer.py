"""Automatic session cut-off on the call server (issue 14, feature 13), on
the virtual clock with full SIP flows: RFC 4028 session timers (422 with
Min-SE for a too short interval; the caller as refresher, its refreshes
keeping the call and its silence ending it; the call server as refresher,
a dead callee ending the call), and the maximum call duration.  Every
cut-off sends BYE to both sides with a Reason header."""
from tests.sim.cs_world import CsWorld, B


def _spy(phone):
    """Every datagram the phone receives, as text."""
    seen = []
    orig = phone.datagram

    def datagram(data, src):
        seen.append(bytes(data).decode("latin-1"))
        return orig(data, src)

    phone.datagram = datagram
    return seen


def _byes(seen):
    return [m for m in seen if m.startswith("BYE ")]


def _connect(w, headers=()):
    c = w.phones["2001"].call("2002", headers)
    w.run_until(lambda: c.state == "connected", 5000)
    inc = [x for x in w.phones["2002"].calls if x.role == "uas"][0]
    return c, inc


def test_a_too_short_session_expires_gets_422_with_min_se(tmp_path):
    w = CsWorld(tmp_path, seed=41, extra=(B + "call-server session-timer min-se 120",))
    try:
        w.register_all()
        seen = _spy(w.phones["2001"])
        c = w.phones["2001"].call("2002", (("Session-Expires", "100"), ("Supported", "timer")))
        w.run_until(lambda: c.state == "terminated", 5000)
        assert c.status == 422, c.status
        r = [m for m in seen if m.startswith("SIP/2.0 422")]
        assert r and "\r\nMin-SE: 120\r\n" in r[0], r
        assert not [x for x in w.phones["2002"].calls if x.role == "uas"]   # never rang
        c = w.phones["2001"].call("2002", (("Session-Expires", "soon"),))
        w.run_until(lambda: c.state == "terminated", 5000)
        assert c.status == 400
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_the_caller_refreshes_and_a_missing_refresh_ends_the_call_on_both_sides(tmp_path):
    w = CsWorld(tmp_path, seed=43)
    try:
        w.register_all()
        seen_a = _spy(w.phones["2001"])
        seen_b = _spy(w.phones["2002"])
        c, inc = _connect(w, (("Session-Expires", "120;refresher=uac"), ("Supported", "timer")))
        ok = [m for m in seen_a if m.startswith("SIP/2.0 200") and "INVITE" in m.split("CSeq:")[1][:20]]
        assert ok and "Session-Expires: 120;refresher=uac" in ok[-1] and "Require: timer" in ok[-1], ok
        # the caller refreshes (a re-INVITE: hold, then resume) within each interval
        w.run(60000)
        w.phones["2001"].hold(c)
        w.run(60000)
        w.phones["2001"].resume(c)
        w.run(60000)
        assert c.state == "connected" and inc.state == "connected"
        assert w.cs.b2b.calls[0].cutoff.refreshes == 2
        # then it stops refreshing: cut at 120 - min(32, 120/3) = 88 s after the last one
        w.run(20000)
        assert c.state == "connected"
        w.run(9000)
        assert c.state == "terminated" and inc.state == "terminated", (c.state, inc.state)
        for seen in (seen_a, seen_b):
            byes = _byes(seen)
            assert len(byes) == 1 and 'Reason: SIP;cause=408;text="Session timer expired"' in byes[0], byes
        assert w.cs.b2b.counters["cut_session_expired"] == 1
        assert w.cli("show calls") == "Calls: 0 (limit 64)"
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_the_call_server_refreshes_and_a_dead_callee_ends_the_call(tmp_path):
    w = CsWorld(tmp_path, seed=47, extra=(B + "call-server session-timer session-expires 120",))
    try:
        w.register_all()
        seen_a = _spy(w.phones["2001"])
        c, inc = _connect(w)                     # the phone offers no timer support
        ok = [m for m in seen_a if m.startswith("SIP/2.0 200")]
        assert "Session-Expires: 120;refresher=uas" in ok[-1] and "Require: timer" not in ok[-1]
        # at 60 s the call server re-INVITEs both phones with their current SDP
        r_a = w.phones["2001"].counters["reinvites_received"]
        r_b = w.phones["2002"].counters["reinvites_received"]
        w.run(61000)
        assert w.phones["2001"].counters["reinvites_received"] == r_a + 1
        assert w.phones["2002"].counters["reinvites_received"] == r_b + 1
        w.run(120000)                            # refreshed twice more: still up
        assert c.state == "connected" and not c.held and not inc.remote_held
        # the callee's phone dies (no more answers): the next refresh times out
        w.phones["2002"].rx_loss = 1.0
        w.phones["2002"].loss = 1.0
        w.run(59000 + 33000)                     # the refresh at 240 s, Timer B 32 s
        assert c.state == "terminated", c.state
        byes = _byes(seen_a)
        assert len(byes) == 1 and 'Reason: SIP;cause=408;text="Session refresh failed"' in byes[0], byes
        assert w.cs.b2b.counters["cut_refresh_failed"] == 1
        assert w.cli("show calls") == "Calls: 0 (limit 64)"
    finally:
        w.close()


def test_the_maximum_call_duration_cuts_the_call_with_a_reason(tmp_path):
    w = CsWorld(tmp_path, seed=49, extra=(B + "call-server max-call-duration 300",
                                          B + "call-server session-timer session-expires 0"))
    try:
        w.register_all()
        seen_a = _spy(w.phones["2001"])
        seen_b = _spy(w.phones["2002"])
        c, inc = _connect(w)
        ok = [m for m in seen_a if m.startswith("SIP/2.0 200")]
        assert "Session-Expires" not in ok[-1]          # no timer asked, none configured
        w.run(299000)
        assert c.state == "connected"
        w.run(2000)
        assert c.state == "terminated" and inc.state == "terminated"
        for seen in (seen_a, seen_b):
            byes = _byes(seen)
            assert len(byes) == 1 and (
                'Reason: SIP;cause=200;text="Maximum call duration reached"' in byes[0]), byes
        assert w.cs.b2b.counters["cut_max_duration"] == 1
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_cut_off_settings_are_validated_by_the_console(tmp_path):
    w = CsWorld(tmp_path, seed=51)
    try:
        w.assert_refused([B + "call-server session-timer min-se 30"], "90")
        w.assert_refused([B + "call-server max-call-duration -1"], "")
    finally:
        w.close()


def _rtp_to(w, phone, call):
    """A socket at the phone's RTP address and the far end's RTP address."""
    import socket
    s = w.network.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((phone.host, call.rtp_port))
    s.setblocking(False)
    m = [m for m in call.session.remote_sdp.media if m.kind == "audio"][0]
    return s, (m.connection[2], m.port)


def test_rtp_inactivity_ends_an_analog_call_on_both_sides_with_the_reason(tmp_path):
    from firmware.media.rtp import build_header
    w = CsWorld(tmp_path, seed=53, sip_exts=("2001",), fxs=True,
                extra=(B + "media rtp-inactivity-timeout 10",))
    try:
        w.register_all()
        gw = w.app.gateway
        w.run_until(lambda: gw.port_ready("fxs", 1), 3000)
        sim = w.app.hardware.sim
        seen = _spy(w.phones["2001"])
        c = w.phones["2001"].call("1001")
        w.run_until(lambda: sim.phones[1].ringing, 5000)
        sim.phones[1].off_hook()
        w.run_until(lambda: c.state == "connected" and gw.fxs[1].state == "talk", 3000)
        sock, dest = _rtp_to(w, w.phones["2001"], c)
        pkt = bytearray(172)
        for n in range(750):                      # 15 s of RTP: the call stays
            build_header(pkt, 0, n, n * 160, 0x77, n == 0)
            sock.sendto(bytes(pkt), dest)
            w.run(20)
        assert c.state == "connected" and gw.fxs[1].state == "talk"
        w.run(9000)                               # the phone's RTP stops: 9 s, still up
        assert c.state == "connected"
        w.run(2000)                               # 10 s: cut
        assert c.state == "terminated" and gw.fxs[1].state != "talk", (c.state, gw.fxs[1].state)
        byes = _byes(seen)
        assert len(byes) == 1 and 'Reason: SIP;cause=408;text="RTP inactivity"' in byes[0], byes
        sock.close()
        sim.phones[1].on_hook()
        w.assert_no_leaks(bindings=1)
    finally:
        w.close()
