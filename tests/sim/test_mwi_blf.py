"""Issue 16: message waiting (RFC 3842), busy lamps (RFC 4235) and presence
(RFC 3863) served by the appliance's call server to SIP phones, on the
virtual clock and the simulated network.  The watcher is a sip.usage
Subscriber on a test-side SIP core (tests/sim/subclient.py)."""
from tests.sim.cs_world import CsWorld, B, password
from tests.sim.subclient import SubClient

MWI = "application/simple-message-summary"


def _world(tmp_path, extra=(), seed=1):
    w = CsWorld(tmp_path, seed=seed, extra=extra)
    w.register_all()
    return w


def test_message_summary_subscribe_notify_refresh_expiry_and_termination(tmp_path):
    w = _world(tmp_path)
    try:
        c = SubClient(w, "127.0.2.1")
        sub = c.subscriber("message-summary", "2001", "2001", password("2001"), expires=120,
                           accept=MWI)
        sub.start(w.now())
        w.run(1000)
        assert sub.state == "active", (sub.state, sub.status)
        assert c.notes[0] == ("active", b"Messages-Waiting: no\r\nMessage-Account: "
                              b"sip:2001@branch.example.com\r\nVoice-Message: 0/0 (0/0)\r\n", MWI)
        out = w.cli("request voice mwi station s2001 new 3 old 1 urgent 1")
        assert out == "station s2001: 3 new, 1 old (1 urgent), messages waiting", out
        w.run(500)
        assert c.notes[-1][1] == (b"Messages-Waiting: yes\r\nMessage-Account: "
                                  b"sip:2001@branch.example.com\r\nVoice-Message: 3/1 (1/0)\r\n")
        show = w.cli("show sip subscriptions")
        assert "message-summary" in show and "s2001" in show, show
        # refreshed in the dialog before its 120 s run out, for 5 minutes
        before = len(c.notes)
        w.run(300 * 1000)
        assert sub.state == "active", sub.state
        refreshes = len(c.notes) - before
        assert 2 <= refreshes <= 4, refreshes     # each refresh brings a NOTIFY
        ev = w.app.sip.router.get("events").impl
        assert len(ev.watchers) == 1 and ev.counters["ended"] == 0
        # termination by the watcher: Expires 0, a final NOTIFY, nothing left
        sub.stop(w.now())
        w.run(1000)
        assert sub.state == "terminated" and c.notes[-1][0] == "terminated", (sub.state, c.notes[-1])
        assert ev.watchers == [] and ev.counters["ended"] == 1
        # expiry: a subscription that is not refreshed (the link is cut) ends
        sub2 = c.subscriber("message-summary", "2001", "2001", password("2001"), expires=60)
        sub2.start(w.now())
        w.run(1000)
        assert sub2.state == "active" and len(ev.watchers) == 1
        w.network.partition("127.0.2.1", "127.0.0.1")
        w.run(100 * 1000)     # 60 s, then the final NOTIFY times out (64*T1)
        assert ev.watchers == [] and ev.counters["ended"] == 2, ev.counters
        assert w.cli("show sip subscriptions") == \
            "Subscriptions: 0 (served 0, limit 128, 8 per station)"
        c.close()
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_subscribe_is_authenticated_like_invite_and_bounded(tmp_path):
    w = _world(tmp_path)
    try:
        c = SubClient(w, "127.0.2.2")
        # no credentials: 407, nothing else
        s = c.subscriber("message-summary", "2001", "2001", None)
        s.start(w.now())
        w.run(1000)
        assert s.state == "failed" and s.status == 407, (s.state, s.status)
        # wrong password: 407 again, counted as an access failure
        s = c.subscriber("dialog", "2002", "2001", "wrong-password")
        s.start(w.now())
        w.run(1000)
        assert s.state == "failed" and s.status == 407
        ev = w.app.sip.router.get("events").impl
        assert ev.counters["auth_failures"] >= 1
        # someone else's mailbox: 403; no such station: 404; unknown package: 489
        s = c.subscriber("message-summary", "2002", "2001", password("2001"))
        s.start(w.now())
        w.run(1000)
        assert s.status == 403, s.status
        s = c.subscriber("dialog", "2999", "2001", password("2001"))
        s.start(w.now())
        w.run(1000)
        assert s.status == 404, s.status
        s = c.subscriber("conference", "2002", "2001", password("2001"))
        s.start(w.now())
        w.run(1000)
        assert s.status == 489, s.status
        # per-station bound: the ninth subscription of station 2001 gets 503
        from firmware.callserver.events import MAX_PER_STATION
        subs = []
        for i in range(MAX_PER_STATION):
            s = c.subscriber("presence" if i % 2 else "dialog", "2002" if i < 4 else "2003",
                             "2001", password("2001"))
            s.start(w.now())
            subs.append(s)
        w.run(2000)
        assert [s.state for s in subs] == ["active"] * MAX_PER_STATION, [s.state for s in subs]
        s = c.subscriber("dialog", "2003", "2001", password("2001"))
        s.start(w.now())
        w.run(1000)
        assert s.state == "failed" and s.status == 503, (s.state, s.status)
        assert ev.counters["station_limit"] == 1
        # another station still may
        s = c.subscriber("dialog", "2001", "2002", password("2002"))
        s.start(w.now())
        w.run(1000)
        assert s.state == "active"
        c.close()
    finally:
        w.close()


def test_the_total_subscription_bound_refuses_with_503(tmp_path):
    """MAX_TOTAL subscriptions from MAX_TOTAL / MAX_PER_STATION stations, all
    active; one more from a station under its own bound gets 503 (total_limit), and a
    slot freed by an unsubscribe is taken again."""
    from firmware.callserver.events import MAX_PER_STATION, MAX_TOTAL
    stations = MAX_TOTAL // MAX_PER_STATION
    exts = tuple(str(3001 + i) for i in range(stations + 1))
    w = CsWorld(tmp_path, sip_exts=exts)
    try:
        w.register_all()
        c = SubClient(w, "127.0.2.5")
        subs = []
        for ext in exts[:stations]:
            for i in range(MAX_PER_STATION):
                s = c.subscriber("presence" if i % 2 else "dialog", exts[-1], ext, password(ext))
                s.start(w.now())
                subs.append(s)
            w.run(500)
        w.run(2000)
        assert [s.state for s in subs].count("active") == MAX_TOTAL, \
            sorted(set((s.state, s.status) for s in subs))
        ev = w.app.sip.router.get("events").impl
        extra = c.subscriber("dialog", exts[0], exts[-1], password(exts[-1]))
        extra.start(w.now())
        w.run(1000)
        assert extra.state == "failed" and extra.status == 503, (extra.state, extra.status)
        assert ev.counters["total_limit"] == 1 and ev.counters["station_limit"] == 0
        assert w.cli("show sip subscriptions").startswith(
            "Subscriptions: %d (served %d, limit %d" % (MAX_TOTAL, MAX_TOTAL, MAX_TOTAL)), \
            w.cli("show sip subscriptions")[:80]
        # one ends: the next subscription fits again
        subs[0].stop(w.now())
        w.run(1000)
        again = c.subscriber("dialog", exts[0], exts[-1], password(exts[-1]))
        again.start(w.now())
        w.run(1000)
        assert again.state == "active", (again.state, again.status)
        c.close()
    finally:
        w.close()


def test_unsolicited_notify_to_each_registered_contact(tmp_path):
    w = CsWorld(tmp_path, extra=[B + "station s2002 mwi-notify unsolicited",
                                 B + "station s2002 mailbox 82002"])
    try:
        got = []
        p = w.phones["2002"]
        orig = p.datagram

        def spy(data, src):
            got.append(bytes(data))
            orig(data, src)

        p.datagram = spy
        w.register_all()
        w.run(500)
        notes = [d for d in got if d.startswith(b"NOTIFY ")]
        # at registration: the current state (nothing waiting)
        assert len(notes) == 1 and b"Messages-Waiting: no" in notes[0], notes
        w.cli("request voice mwi station s2002 new 1 old 4")
        w.run(500)
        notes = [d for d in got if d.startswith(b"NOTIFY ")]
        assert len(notes) == 2, notes
        n = notes[-1]
        assert b"\r\nEvent: message-summary\r\n" in n
        assert b"Content-Type: application/simple-message-summary" in n
        assert n.endswith(b"Messages-Waiting: yes\r\nMessage-Account: "
                          b"sip:82002@branch.example.com\r\nVoice-Message: 1/4 (0/0)\r\n"), n
        # the other stations subscribe instead: no NOTIFY for them
        assert not [d for d in got if d.startswith(b"NOTIFY sip:2001")]
        show = w.cli("show voice mwi")
        assert "s2002    82002    1    4    0       yes      console  unsolicited" in show, show
    finally:
        w.close()


def test_console_errors(tmp_path):
    w = _world(tmp_path)
    try:
        assert w.cli("request voice mwi station nobody new 1") == "error: no station nobody"
        assert w.cli("request voice mwi station s2001 old 1") == "error: new N is required"
        assert w.cli("request voice mwi station s2001 new x") == "error: new needs a number"
        assert w.cli("request voice mwi station s2001 new 1 urgent 2") == \
            "error: urgent 2 is more than new 1"
        assert w.cli("request voice mwi station s2001 new 1 loud 2") == \
            "error: unknown argument loud (new, old, urgent)"
        assert w.cli("request voice mwi station s2001 new 10000") == "error: counts go up to 9999"
    finally:
        w.close()


def _dialog_states(notes):
    out = []
    for state, body, ctype in notes:
        if ctype != "application/dialog-info+xml":
            continue
        b = body.decode()
        i = b.find("<state>")
        out.append(b[i + 7:b.find("</state>")] if i >= 0 else "idle")
    return out


def test_blf_and_presence_through_a_full_call(tmp_path):
    w = _world(tmp_path)
    try:
        c = SubClient(w, "127.0.2.3")
        blf = c.subscriber("dialog", "2002", "2001", password("2001"))
        blf.start(w.now())
        w.run(1000)
        pc = SubClient(w, "127.0.2.4", seed=9)
        pres = pc.subscriber("presence", "2002", "2001", password("2001"))
        pres.start(w.now())
        w.run(1000)
        assert blf.state == "active" and pres.state == "active"
        assert _dialog_states(c.notes) == ["idle"]
        assert b"<basic>open</basic></status><note>Available</note>" in pc.notes[-1][1]
        p2 = w.phones["2002"]
        p2.ring_ms = 3000
        call = w.phones["2003"].call("2002")
        w.run(1000)
        assert _dialog_states(c.notes)[-1] == "early"
        assert 'direction="recipient"' in c.notes[-1][1].decode()
        # the caller is the remote identity: what a desk phone shows on the key
        assert b"<remote><identity>sip:2003@branch.example.com</identity></remote>" in \
            c.notes[-1][1], c.notes[-1]
        w.run(4000)
        assert call.state == "connected"
        assert _dialog_states(c.notes)[-1] == "confirmed"
        assert b"<note>On the phone</note>" in pc.notes[-1][1]
        w.phones["2003"].hangup(call)
        w.run(1000)
        assert _dialog_states(c.notes)[-3:] == ["early", "confirmed", "terminated"], \
            _dialog_states(c.notes)
        versions = [int(n[1].split(b'dialog-info" version="')[1].split(b'"')[0]) for n in c.notes]
        assert versions == sorted(versions) and len(set(versions)) == len(versions), versions
        assert b"<note>Available</note>" in pc.notes[-1][1]
        # unregistering closes the presence
        p2.unregister()
        w.run(1000)
        assert b"<basic>closed</basic></status><note>Offline</note>" in pc.notes[-1][1], pc.notes[-1]
        c.close()
        pc.close()
    finally:
        w.close()


def test_blf_follows_a_hunt_group_call_from_member_to_member(tmp_path):
    w = _world(tmp_path, extra=[B + "hunt-group sales extension 600",
                                B + "hunt-group sales member 2002",
                                B + "hunt-group sales member 2003",
                                B + "hunt-group sales type linear",
                                B + "hunt-group sales ring-timeout 5"])
    try:
        c2 = SubClient(w, "127.0.2.5")
        k2 = c2.subscriber("dialog", "2002", "2001", password("2001"))
        k2.start(w.now())
        c3 = SubClient(w, "127.0.2.6", seed=8)
        k3 = c3.subscriber("dialog", "2003", "2001", password("2001"))
        k3.start(w.now())
        w.run(1000)
        assert k2.state == "active" and k3.state == "active"
        w.phones["2002"].ring_ms = None          # rings until cancelled
        w.phones["2003"].ring_ms = None
        incoming = []
        w.phones["2003"].on_event = lambda p, c, ev: incoming.append(c) if ev == "incoming" \
            else None
        call = w.phones["2001"].call("600")
        w.run(1000)
        assert _dialog_states(c2.notes)[-1] == "early", _dialog_states(c2.notes)
        assert _dialog_states(c3.notes) == ["idle"], _dialog_states(c3.notes)
        w.run(5000)                              # 2002's turn is over: 2003 rings
        assert _dialog_states(c2.notes)[-1] == "idle", _dialog_states(c2.notes)
        assert _dialog_states(c3.notes)[-1] == "early", _dialog_states(c3.notes)
        assert b"<remote><identity>sip:2001@" in c3.notes[-1][1]
        assert len(incoming) == 1, incoming
        w.phones["2003"].answer(incoming[0])
        w.run(1000)
        assert call.state == "connected", call.state
        assert _dialog_states(c3.notes)[-1] == "confirmed"
        w.phones["2001"].hangup(call)
        w.run(1000)
        assert _dialog_states(c3.notes)[-1] == "terminated"
        assert w.app.sip.router.get("events").impl._shown == {}
        c2.close()
        c3.close()
    finally:
        w.close()
