"""Issue 16: message waiting on the analog phones: the lamp through the SLIC
(FSK MDMF message-waiting, sent only on an idle on-hook line) and the
stutter dial tone at off-hook, asserted on the Si3210 model's recorded
register writes, the FSK the phone decoded and the tone on the line."""
from hal import tones
from tests.sim.analog_world import World

DIAL = (350, 440)
REG_OSC1_CTL = 32
REG_LINEFEED = 64
LF_OHT = 2


def _osc_writes(model, since):
    return [v for r, v in model.history.writes()[since:] if r == REG_OSC1_CTL]


def test_vmwi_when_idle_pending_while_off_hook_and_stutter_dial_tone(tmp_path):
    w = World(tmp_path, seed=21)
    try:
        w.settle()
        p1 = w.phones[1]
        m1 = p1.model
        agent = w.fxs(1)
        n0 = len(p1.caller_ids)
        mark = len(m1.history.writes())
        out = w.app.commands.execute(w.app,
                                     "request voice mwi station alice new 2 old 1")
        assert "messages waiting" in out, out
        w.run(2000)
        # the lamp: on-hook transmission (OHT linefeed), MDMF message-waiting on
        assert (REG_LINEFEED, LF_OHT) in m1.history.writes()[mark:], w.seed
        assert len(p1.caller_ids) == n0 + 1 and p1.caller_ids[-1]["vmwi"] is True, p1.caller_ids
        assert p1.fsk_outside_oht == 0 and not p1.ringing
        assert agent.vmwi_sent == 1 and not agent.mwi_pending
        # off-hook: stutter (0.1 s on / 0.1 s off) for ~2 s, then steady dial tone
        cad = tones.tone("US", "stutter")[1]
        assert cad == (100, 100)
        mark = len(m1.history.writes())
        p1.off_hook()
        heard = []
        for _ in range(36):
            w.run(50)
            heard.append(p1.tone())
        assert DIAL in heard and () in heard, heard       # interrupted
        gaps = sum(1 for i in range(1, len(heard)) if heard[i] == () and heard[i - 1] == DIAL)
        assert gaps >= 6, heard                           # ~9 interruptions in 1.8 s
        osc = _osc_writes(m1, mark)
        assert osc.count(0x00) >= 8 and osc.count(0x06) >= 8, osc   # the cadence, written
        w.run(600)
        steady = []
        for _ in range(20):
            w.run(50)
            steady.append(p1.tone())
        assert steady == [DIAL] * 20, steady
        # messages read while off-hook: the lamp change waits for on-hook
        w.app.commands.execute(w.app, "request voice mwi station alice new 0 old 3")
        w.run(6000)
        assert len(p1.caller_ids) == n0 + 1 and agent.mwi_pending, (p1.caller_ids, w.seed)
        p1.on_hook()
        w.run(2000)
        assert len(p1.caller_ids) == n0 + 2 and p1.caller_ids[-1]["vmwi"] is False, p1.caller_ids
        assert not agent.mwi_pending and agent.vmwi_sent == 2
        # no messages: plain dial tone at once
        p1.off_hook()
        plain = []
        for _ in range(10):
            w.run(50)
            plain.append(p1.tone())
        assert plain == [DIAL] * 10, plain
        p1.on_hook()
        w.run(500)
        show = w.app.commands.execute(w.app, "show voice mwi")
        assert "alice    1001     0    3    0       no       console  subscribe" in show, show
    finally:
        w.close()


def test_stutter_tone_of_every_country_is_defined():
    for c in ("US", "GB", "DE"):
        freqs, cad, level = tones.tone(c, "stutter")
        assert freqs == tones.tone(c, "dial")[0], (c, freqs)
        assert len(cad) == 2 and cad[0] > 0 and cad[1] > 0, (c, cad)


def _notify(w, sock, ruri, body, event="message-summary", n=1):
    host, port = sock.getsockname()
    text = "\r\n".join([
        "NOTIFY %s SIP/2.0" % ruri,
        "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKpeermwi%d" % (host, port, n),
        "Max-Forwards: 70", "From: <sip:vm@hq.example>;tag=vm%d" % n,
        "To: <%s>" % ruri, "Call-ID: peer-mwi-%d@%s" % (n, host), "CSeq: 1 NOTIFY",
        "Event: %s" % event, "Subscription-State: active",
        "Content-Type: application/simple-message-summary",
        "Content-Length: %d" % len(body), "", body])
    sock.sendto(text.encode(), ("127.0.0.1", w.app.sip_port))
    w.run(300)
    out = []
    while True:
        try:
            out.append(sock.recv(65535).split(b"\r\n", 1)[0].decode())
        except OSError:
            return out


def test_unsolicited_mwi_from_the_peer_lights_an_fxs_lamp(tmp_path):
    import socket
    from tests.sim.analog_world import PEER_HOST
    w = World(tmp_path, seed=22)
    try:
        w.settle()
        p2 = w.phones[2]
        n0 = len(p2.caller_ids)
        peer = w.network.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind((PEER_HOST, 0))
        peer.setblocking(False)
        body = "Messages-Waiting: yes\r\nVoice-Message: 4/1 (1/0)\r\n"
        ruri = "sip:1002@127.0.0.1:%d;line=fxs2" % w.app.sip_port
        assert _notify(w, peer, ruri, body) == ["SIP/2.0 200 OK"]
        w.run(2000)
        b = w.app.mwi.box("bob")
        assert (b.new, b.old, b.urgent_new, b.source) == (4, 1, 1, "peer")
        assert len(p2.caller_ids) == n0 + 1 and p2.caller_ids[-1]["vmwi"] is True
        # by extension, without the line marker
        assert _notify(w, peer, "sip:1002@127.0.0.1", "Messages-Waiting: no\r\n", n=2) == \
            ["SIP/2.0 200 OK"]
        w.run(2000)
        assert w.app.mwi.box("bob").new == 0 and p2.caller_ids[-1]["vmwi"] is False
        # errors: no such line, no summary, another package (not ours: 481)
        assert _notify(w, peer, "sip:1999@127.0.0.1", body, n=3) == \
            ["SIP/2.0 404 No Such Line"]
        assert _notify(w, peer, ruri, "hello\r\n", n=4) == ["SIP/2.0 400 Bad Message Summary"]
        assert _notify(w, peer, ruri, body, event="presence", n=5)[0].startswith("SIP/2.0 481")
        # anyone but the peer call server: 403, nothing changes
        other = w.network.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind(("127.0.4.4", 0))
        other.setblocking(False)
        assert _notify(w, other, ruri, body, n=6) == \
            ["SIP/2.0 403 Forbidden (Not The Call Server)"]
        assert w.app.mwi.box("bob").new == 0
        peer.close()
        other.close()
    finally:
        w.close()
