"""Conference calls mixed by the appliance (issue 14, feature 7) on the
virtual clock with full SIP flows: the station manual's 46 (a station's
held and active calls become one conference), the ad-hoc way (INVITE the
conference extension, REFER the parties to it, NOTIFY sipfrag 200), an
analog (FXS) party, the mix itself (each party hears the others, not
itself), the collapse to a plain phone-to-phone call when only two are
left, refusals, and `show call-server conferences`."""
import socket

from hal import g711
from hal.dsp import ToneGen, tone_ratio_pct
from firmware.media.rtp import build_header, parse_header
from tests.sim.cs_world import CsWorld, B, DOMAIN

_DEC = g711.ulaw_table()
CONF = B + "call-server conference-extension 7000"


class _Rtp:
    """A phone's RTP end (its SDP address) on the simulated network: sends a
    tone to where its current remote SDP points, collects what arrives."""

    def __init__(self, w, phone, freq):
        self.w = w
        self.sock = w.network.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((phone.host, phone.rtp_port))
        self.sock.setblocking(False)
        self.gen = ToneGen((freq,), 5000) if freq else None
        self.buf = bytearray(160)
        self.seq = 1
        self.ts = 0

    def send(self, call, n):
        m = [m for m in call.session.remote_sdp.media if m.kind == "audio"][0]
        dest = (m.connection[2], m.port)
        pkt = bytearray(172)
        enc = g711.encoder("ulaw")
        for _ in range(n):
            self.gen.fill(self.buf, enc)
            build_header(pkt, 0, self.seq, self.ts, 0x5151, False)
            pkt[12:] = self.buf
            self.sock.sendto(bytes(pkt), dest)
            self.seq += 1
            self.ts += 160
            self.w.run(20)

    def heard(self):
        out = []
        while True:
            try:
                p = self.sock.recv(2048)
            except OSError:
                return out
            h = parse_header(p, len(p))
            if h is not None and len(p) - h[4] == 160:
                out.append([_DEC[b] for b in p[h[4]:]])

    def close(self):
        self.sock.close()


def _has(frames, freq):
    return len([f for f in frames if tone_ratio_pct(f, freq) >= 15])


def _host(call):
    m = [m for m in call.session.remote_sdp.media if m.kind == "audio"][0]
    return m.connection[2]


def _uas(w, ext, remote=None):
    return [x for x in w.phones[ext].calls
            if x.role == "uas" and x.state == "connected" and (remote is None or x.remote == remote)]


def _call(w, a, b):
    c = w.phones[a].call(b)
    w.run_until(lambda: c.state == "connected", 5000)
    w.run(300)
    return c


def test_46_joins_the_stations_calls_and_the_conference_collapses_when_one_leaves(tmp_path):
    w = CsWorld(tmp_path, seed=81, extra=(CONF,))
    try:
        w.register_all()
        p1 = w.phones["2001"]
        c12 = _call(w, "2001", "2002")
        p1.hold(c12)
        w.run(500)
        c13 = _call(w, "2001", "2003")
        in2, in3 = _uas(w, "2002")[0], _uas(w, "2003")[0]
        c46 = _call(w, "2001", "46")
        w.run(1000)
        # the old legs of 2001 are ended by the call server, the others re-INVITEd to the bridge
        assert c12.state == "terminated" and c13.state == "terminated", (c12.state, c13.state)
        assert in2.state == "connected" and in3.state == "connected"
        assert _host(in2) == _host(in3) == _host(c46) == "127.0.0.1"
        out = w.cli("show call-server conferences")
        assert "Conferences: 1" in out and "3 members" in out and "started by 2001" in out, out
        assert w.cli("show calls").startswith("Calls: 0")
        # the mix: each party hears the others, not itself
        r1, r2, r3 = _Rtp(w, p1, None), _Rtp(w, w.phones["2002"], 500), _Rtp(w, w.phones["2003"], 1500)
        for r in (r1, r2, r3):
            r.heard()
        for _ in range(20):
            r2.send(in2, 1)
            r3.send(in3, 1)
        h1, h2, h3 = r1.heard(), r2.heard(), r3.heard()
        assert _has(h1, 500) >= 10 and _has(h1, 1500) >= 10, (_has(h1, 500), _has(h1, 1500))
        assert _has(h2, 1500) >= 10 and _has(h2, 500) == 0
        assert _has(h3, 500) >= 10 and _has(h3, 1500) == 0
        # 2003 leaves: two are left, the conference collapses to a plain call
        w.phones["2003"].hangup(in3)
        w.run(2000)
        assert w.cli("show call-server conferences").startswith("Conferences: 0")
        out = w.cli("show calls")
        assert out.startswith("Calls: 1") and "connected" in out, out
        assert _host(in2) == p1.host and _host(c46) == w.phones["2002"].host, (_host(in2), _host(c46))
        assert w.cs.conferences.counters["collapsed"] == 1
        # the plain call ends as any call does
        w.phones["2002"].hangup(in2)
        w.run_until(lambda: c46.state == "terminated", 3000)
        for r in (r1, r2, r3):
            r.close()
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_ad_hoc_conference_by_invite_and_refer_to_the_conference_extension(tmp_path):
    w = CsWorld(tmp_path, seed=83, extra=(CONF,))
    try:
        w.register_all()
        p1 = w.phones["2001"]
        c12 = _call(w, "2001", "2002")
        c13 = _call(w, "2001", "2003")
        cc = _call(w, "2001", "7000")                  # 2001 starts its conference
        assert "1 members" in w.cli("show call-server conferences")
        events = []
        ref = "sip:7000@%s" % DOMAIN
        for c in (c12, c13):
            assert c.session.refer(ref, None, lambda kind, st: events.append((kind, st)),
                                   w.app.clock.now())
            w.run(1500)
        assert events == [("accepted", 202), ("final", 200)] * 2, events
        out = w.cli("show call-server conferences")
        assert "3 members" in out and "2002" in out and "2003" in out, out
        in2, in3 = _uas(w, "2002")[0], _uas(w, "2003")[0]
        assert _host(in2) == _host(in3) == "127.0.0.1"
        w.run(5000)                                     # the referrer's old legs are hung up
        assert c12.state == "terminated" and c13.state == "terminated"
        # 2001 (the one who started it) leaves: 2002 and 2003 go on as a plain call
        p1.hangup(cc)
        w.run(2000)
        out = w.cli("show calls")
        assert out.startswith("Calls: 1"), out
        assert _host(in2) == w.phones["2003"].host and _host(in3) == w.phones["2002"].host
        w.phones["2003"].hangup(in3)
        w.run_until(lambda: in2.state == "terminated", 3000)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_an_analog_party_joins_through_the_refer(tmp_path):
    w = CsWorld(tmp_path, seed=85, sip_exts=("2001", "2002"), fxs=True, extra=(CONF,))
    try:
        w.register_all()
        gw = w.app.gateway
        w.run_until(lambda: gw.port_ready("fxs", 1), 3000)
        sim = w.app.hardware.sim
        c = w.phones["2001"].call("1001")
        w.run_until(lambda: sim.phones[1].ringing, 5000)
        sim.phones[1].off_hook()
        w.run_until(lambda: c.state == "connected" and gw.fxs[1].state == "talk", 3000)
        c12 = _call(w, "2001", "2002")
        cc = _call(w, "2001", "7000")
        for x in (c, c12):
            x.session.refer("sip:7000@%s" % DOMAIN, None, None, w.app.clock.now())
            w.run(1500)
        assert "3 members" in w.cli("show call-server conferences")
        assert "1001" in w.cli("show call-server conferences")
        # the analog phone hears the SIP phone 2002 through the bridge
        in2 = _uas(w, "2002")[0]
        r2 = _Rtp(w, w.phones["2002"], 700)
        heard = sim.phones[1].audio
        heard.items = []
        r2.send(in2, 30)
        frames = [[_DEC[b] for b in f] for f in heard.items]
        assert _has(frames, 700) >= 10, len(frames)
        r2.close()
        w.phones["2001"].hangup(cc)
        w.run(2000)
        assert w.cli("show calls").startswith("Calls: 1")      # 1001 and 2002, plain
        w.phones["2002"].hangup(in2)
        w.run(2000)
        sim.phones[1].on_hook()
        w.run(1000)
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_refusals_and_the_extension_check(tmp_path):
    w = CsWorld(tmp_path, seed=87, extra=(CONF,))
    try:
        w.assert_refused([B + "call-server conference-extension 2002"], "already the extension")
        w.register_all()
        c = w.phones["2001"].call("46")                  # no call to conference
        w.run_until(lambda: c.state == "terminated", 3000)
        assert c.status == 403, c.status
        c12 = _call(w, "2001", "2002")
        bad = []
        c12.session.refer("sip:7001@%s" % DOMAIN, None, lambda k, st: bad.append((k, st)),
                          w.app.clock.now())
        w.run(1000)
        # not the conference: a blind transfer (transfer.py), to a number nobody has
        assert bad == [("accepted", 202), ("final", 404)], bad
        w.phones["2001"].hangup(c12)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_a_member_whose_rtp_stops_is_cut_and_the_conference_collapses(tmp_path):
    w = CsWorld(tmp_path, seed=89, extra=(CONF, B + "media rtp-inactivity-timeout 5"))
    try:
        w.register_all()
        seen = []
        orig = w.phones["2001"].datagram
        w.phones["2001"].datagram = lambda d, src: (seen.append(bytes(d).decode("latin-1")),
                                                    orig(d, src))[1]
        c12 = _call(w, "2001", "2002")
        c13 = _call(w, "2001", "2003")
        cc = _call(w, "2001", "7000")
        for c in (c12, c13):
            c.session.refer("sip:7000@%s" % DOMAIN, None, None, w.app.clock.now())
            w.run(1000)
        in2, in3 = _uas(w, "2002")[0], _uas(w, "2003")[0]
        r2, r3 = _Rtp(w, w.phones["2002"], 500), _Rtp(w, w.phones["2003"], 900)
        for _ in range(300):                      # 6 s: 2002 and 2003 talk, 2001 is silent
            r2.send(in2, 1)
            r3.send(in3, 1)
        assert cc.state == "terminated", cc.state
        byes = [m for m in seen if m.startswith("BYE ") and "RTP inactivity" in m]
        assert len(byes) == 1, [m.split("\r\n")[0] for m in seen if m.startswith("BYE")]
        w.run(2000)
        assert w.cli("show calls").startswith("Calls: 1")     # 2002 and 2003, plain
        assert _host(in2) == w.phones["2003"].host
        r2.close()
        r3.close()
        w.phones["2002"].hangup(in2)
        w.run_until(lambda: in3.state == "terminated", 3000)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()
