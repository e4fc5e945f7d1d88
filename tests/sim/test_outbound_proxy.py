# portable: micropython
# mpy-heapsize: 8M
"""The outbound proxy with shadow registrations (firmware/proxy/outbound.py)
on the virtual clock and the simulated network: branch SIP phones register
through the appliance to a peer registrar that challenges them (the peer
authenticates, the appliance holds a shadow binding), calls between branch
phones and from HQ go through the peer with Record-Route, a WAN cut gives
control to the local call server which calls the phones on the bindings it
holds (no phone re-registers), a REGISTER during survival is authenticated
locally and gets the short expiry, a call set up in survival outlives
failback, failback sends new calls (and the survival registration) through
the peer again, a peer that supports Path gets it, CANCEL and a 486 are
relayed hop by hop, 911 stays local in both modes, and bad input gets
precise statuses."""
from sip.message import parse
from tests.sim.cs_world import DOMAIN
from tests.sim.proxy_world import ProxyWorld, PEER_HOST

def _spy(phone):
    seen = []
    phone.on_request = lambda p, req: seen.append(req)
    return seen


def test_register_through_the_appliance_to_a_challenging_peer_is_shadowed():
    w = ProxyWorld(seed=131)
    try:
        w.register_all(["2001", "2002"])
        assert w.peer.counters["challenges"] >= 2, w.peer.counters      # the peer's 401s
        assert w.peer.counters["registers_ok"] >= 2
        assert w.cs.registrar.counters["auth_challenges"] == 0          # we did not challenge
        me = "%s:%d" % w.server
        for ext in ("2001", "2002"):
            p = w.phones[ext]
            contact, granted = w.peer.bindings[ext]
            assert contact.startswith("sip:%s@%s;ob=" % (ext, me)), contact   # via us
            [b] = w.cs.registrar.contacts("s" + ext)
            assert w.cs.registrar.is_shadow(b), b
            assert b.contact == "sip:%s@%s:%d" % (ext, p.host, p.port), b.contact
            left = (b.expires_at - w.now()) // 1000
            assert granted - 2 <= left <= granted, (left, granted)       # the peer's expiry
            assert p.granted == granted                                   # the phone saw it
        out = w.cli("show sip registrations")
        assert "2 shadow: granted by the peer" in out and out.count("shadow") >= 3, out
        out = w.cli("show sip outbound-proxy")
        assert "relaying the branch phones to peer hq" in out, out
        assert "shadow bindings" in out and "registers relayed" in out, out
        # refreshes keep coming through for an hour: the binding follows the peer
        w.run(3600 * 1000)
        assert w.cs.registrar.shadow_count() == w.cs.registrar.count == 2
        assert w.px.counters["registers_relayed"] >= 2 * 6, w.px.counters
        # un-registering through us removes the shadow binding too
        w.phones["2002"].unregister()
        w.run_until(lambda: not w.cs.registrar.contacts("s2002"), 3000)
        assert "2002" not in w.peer.bindings
    finally:
        w.close()


def test_a_peer_that_supports_path_gets_path_and_the_phones_own_contacts():
    w = ProxyWorld(seed=136, path=True)
    try:
        w.run(3000)                         # the monitor's probes: Supported: path
        w.register_all(["2001"])
        p = w.phones["2001"]
        contact, granted = w.peer.bindings["2001"]
        assert contact == "sip:2001@%s:%d" % (p.host, p.port), contact   # untouched
        assert w.peer.paths["2001"] == ["<sip:%s:%d;lr>" % w.server], w.peer.paths
        assert w.px.counters["path_used"] >= 1 and w.cs.registrar.shadow_count() == 1
        assert "Path (RFC 3327): yes" in w.cli("show sip outbound-proxy")
        # HQ calls the phone: the peer routes along the Path, we to the binding
        w.hq.register()
        w.run_until(lambda: w.hq.registered, 3000)
        c = w.hq.call("2001")
        w.run_until(lambda: c.state == "connected", 8000)
        w.hq.hangup(c)
        w.run_until(lambda: c.state == "terminated", 8000)
        w.run(1000)
        assert c.bye_status == 200, c
        w.assert_no_leaks(bindings=1)
    finally:
        w.close()


def test_branch_to_branch_and_hq_calls_go_through_the_peer_with_record_route():
    w = ProxyWorld(seed=132)
    try:
        w.register_all(["2001", "2002"])
        w.hq.register()
        w.run_until(lambda: w.hq.registered, 3000)
        seen = _spy(w.phones["2002"])
        before = w.peer_invites()
        c = w.connect("2001", "2002")
        assert w.peer_invites() == before + 1       # 2001 -> us -> peer -> us -> 2002
        inv = [r for r in seen if r.method == "INVITE"][0]
        rr = inv.get_all("record-route")
        me = "%s:%d" % w.server
        assert len(rr) == 3 and me in rr[0] and PEER_HOST in rr[1] and me in rr[2], rr
        assert len(inv.via) == 4, inv.get_all("via")  # us, peer, us, the caller
        assert w.cs.b2b.calls == []                   # not the local B2BUA
        byes = len([m for m, u in w.peer.log if m == "BYE"])
        w.hang_up("2001", c)
        assert len([m for m, u in w.peer.log if m == "BYE"]) == byes + 1   # in dialog, via peer
        # HQ calls a branch phone: the peer sends it to our contact, we to the phone
        c = w.hq.call("2001")
        w.run_until(lambda: c.state == "connected", 8000)
        w.hq.hangup(c)
        w.run_until(lambda: c.state == "terminated", 8000)
        w.run(1000)
        assert c.bye_status == 200, c
        # and a branch phone calls HQ
        c = w.connect("2002", "3001")
        w.hang_up("2002", c)
        assert w.px.counters["acks_relayed"] >= 4 and w.px.counters["loops"] == 0, w.px.counters
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_wan_cut_local_calls_on_shadow_bindings_short_local_registration_failback():
    w = ProxyWorld(seed=133)
    try:
        w.register_all(["2001", "2002"])
        regs = dict((e, w.phones[e].counters["reg_sent"]) for e in ("2001", "2002"))
        w.cut()
        # survival: the local call server calls the phones on what it holds
        invites = w.peer_invites()
        c = w.connect("2001", "2002")
        assert len(w.cs.b2b.calls) == 1                # the local B2BUA
        assert w.peer_invites() == invites
        for e in ("2001", "2002"):
            assert w.phones[e].counters["reg_sent"] == regs[e], (e, w.seed)
        # a phone registering now: authenticated locally, short expiry
        p = w.phones["2003"]
        p.register()
        w.run_until(lambda: p.registered, 5000)
        assert w.cs.registrar.counters["auth_challenges"] >= 1
        assert 60 <= p.granted <= 120, p.granted
        [b] = w.cs.registrar.contacts("s2003")
        assert not w.cs.registrar.is_shadow(b)
        assert "2003" not in w.peer.bindings
        # failback: the survival registration comes back through us within its expiry
        w.heal()
        # the call set up in survival goes on after failback and ends cleanly
        assert c.state == "connected"
        w.hang_up("2001", c)
        assert c.bye_status == 200 and w.cs.b2b.calls == [], (c, c.bye_status)
        w.run_until(lambda: "2003" in w.peer.bindings, 125000, step=500)
        assert w.cs.registrar.is_shadow(w.cs.registrar.contacts("s2003")[0])
        invites = w.peer_invites()
        c = w.connect("2003", "2001")
        assert w.peer_invites() == invites + 1          # through the peer again
        w.hang_up("2003", c)
        assert w.app.control.state == "peer"
    finally:
        w.close()


def test_cancel_and_a_busy_answer_are_relayed_hop_by_hop():
    w = ProxyWorld(seed=137)
    try:
        w.register_all(["2001"])
        w.hq.register()
        w.run_until(lambda: w.hq.registered, 3000)
        w.hq.ring_ms = None                  # rings until cancelled
        c = w.phones["2001"].call("3001")
        w.run_until(lambda: c.state == "ringing", 5000)
        inc = [x for x in w.hq.calls if x.role == "uas"][0]
        w.phones["2001"].hangup(c)           # CANCEL: the core answers it, we pass it on
        w.run_until(lambda: inc.state == "terminated", 5000)
        w.run(1000)
        assert inc.end_reason == "cancelled_by_remote" and c.status == 487, (inc, c, c.status)
        assert w.px.counters["cancels_relayed"] == 1
        assert len([m for m, u in w.peer.log if m == "CANCEL"]) == 1
        # a busy HQ phone: the 486 comes back, each hop ACKs its own
        w.hq.busy = True
        c = w.phones["2001"].call("3001")
        w.run_until(lambda: c.state == "terminated", 5000)
        assert c.status == 486, c.status
        w.assert_no_leaks(bindings=1)
        assert w.app.sip.counters["stray_responses"] == 0, w.app.sip.counters
    finally:
        w.close()


def _raw_request(w, sock, method, ruri, frm, extra=(), mf=70, n=0):
    here = "%s:%d" % sock.getsockname()
    lines = ["%s %s SIP/2.0" % (method, ruri),
             "Via: SIP/2.0/UDP %s;branch=z9hG4bKraw%d;rport" % (here, n),
             "Max-Forwards: %d" % mf, "From: <%s>;tag=raw%d" % (frm, n),
             "To: <%s>" % ruri, "Call-ID: raw%d@x" % n, "CSeq: 1 %s" % method,
             "Contact: <sip:x@%s>" % here] + list(extra) + ["Content-Length: 0", "", ""]
    return "\r\n".join(lines)


def _finals(w, sock, text):
    """The distinct final statuses (an INVITE's is retransmitted: no ACK here)."""
    out = []
    for r in (parse(d) for d in w.exchange(sock, text, 500)):
        if r.status >= 200 and (r.status, r.reason) not in out:
            out.append((r.status, r.reason))
    return out


def test_bad_input_gets_precise_statuses():
    w = ProxyWorld(seed=134)
    try:
        st = "sip:2001@" + DOMAIN
        hq = "sip:3001@" + DOMAIN

        def ask(n, method, ruri, frm, mf=70, edit=None):
            sock = w.raw("127.0.1.%d" % (50 + n))      # its own source: no stray retransmissions
            text = _raw_request(w, sock, method, ruri, frm, mf=mf, n=n)
            return _finals(w, sock, edit(text) if edit is not None else text)

        # Max-Forwards 0 on a request we would relay -> 483
        assert [x[0] for x in ask(1, "INVITE", hq, st, mf=0)] == [483]

        # a request that already went through us with the same loop hash -> 482
        def looped(text):
            lh = w.px._loop_hash(parse(text.encode()))
            ours = "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKop%sabcd;rport" % (w.server + (lh,))
            return text.replace("Max-Forwards:", ours + "\r\nMax-Forwards:")
        assert [x[0] for x in ask(2, "INVITE", hq, st, edit=looped)] == [482]
        assert w.px.counters["loops"] == 1 and w.px.counters["too_many_hops"] == 1
        # REGISTER for an AoR no station has -> 404, nothing relayed
        f = ask(3, "REGISTER", "sip:" + DOMAIN, "sip:4444@" + DOMAIN,
                edit=lambda t: t.replace("To: <sip:%s>" % DOMAIN, "To: <sip:4444@%s>" % DOMAIN))
        assert f == [(404, "Not Found (No Such Station)")], f
        # an INVITE whose From names no branch phone is not relayed: the gateway's 403
        f = ask(4, "INVITE", hq, "sip:mallory@" + DOMAIN)
        assert [x[0] for x in f] == [403], f
        # nor a request to a foreign URI from a stranger: 404 (no open relay)
        assert [x[0] for x in ask(5, "OPTIONS", "sip:x@203.0.113.9", "sip:mallory@x")] == [404]
        assert w.px.counters["requests_relayed"] == 0 and w.px.counters["registers_relayed"] == 0
        assert len([m for m, u in w.peer.log if m != "OPTIONS"]) == 0, w.peer.log
    finally:
        w.close()


def test_911_from_a_sip_phone_goes_out_locally_in_both_modes():
    w = ProxyWorld(seed=135)
    try:
        w.register_all(["2001"])
        line = w.app.hardware.sim.lines[1]
        w.run_until(lambda: w.app.gateway.port_ready("fxo", 1), 3000)
        for mode in ("peer", "local"):
            if mode == "local":
                w.cut()
            invites = w.peer_invites()
            c = w.phones["2001"].call("911")
            w.run_until(lambda: line.seized, 5000)
            assert w.peer_invites() == invites, mode
            w.phones["2001"].hangup(c)
            w.run_until(lambda: not line.seized, 5000)
            w.run(2000)
    finally:
        w.close()
