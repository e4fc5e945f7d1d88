"""DTMF relay across the gateway (issue 14, feature 11) on the virtual
clock, through the local call server: RFC 4733 events and SIP INFO from a
SIP phone are regenerated as tones on an FXS phone's line and dialled by
the DAA onto an FXO line; keys pressed on an analog phone in a call leave
as RFC 4733 events, as SIP INFO or only in-band, per the station's
dtmf-mode; a bad INFO gets 415 / 400."""
import socket

from hal import g711
from hal.dsp import dtmf_digit
from firmware.media.rtp import build_header, parse_header
from tests.sim.cs_world import CsWorld, B
from tests.sim.analog_world import drain

_DEC = g711.ulaw_table()


def _keys_in(frames):
    """DTMF keys in a run of frames (each key once per tone burst)."""
    out = ""
    prev = None
    for f in frames:
        d = dtmf_digit([_DEC[b] for b in f])
        if d is not None and d != prev:
            out += d
        prev = d
    return out


class _Media:
    """The SIP phone's RTP end on the simulated network: its SDP's address
    and port, pointed at the appliance's answer."""

    def __init__(self, w, call):
        p = call.phone
        self.sock = w.network.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((p.host, call.rtp_port))
        self.sock.setblocking(False)
        m = [m for m in call.session.remote_sdp.media if m.kind == "audio"][0]
        self.dest = (m.connection[2], m.port)
        self.event_pt = [int(f) for f in m.fmts
                         if f in m.rtpmap and m.rtpmap[f][0].lower() == "telephone-event"][0]
        self.seq = 1
        self.ts = 1000

    def key(self, k):
        """One key press as RFC 4733 packets: 5 updates and 3 end packets."""
        code = "0123456789*#ABCD".index(k)
        buf = bytearray(16)
        for n in range(8):
            dur = 160 * min(n + 1, 5)
            build_header(buf, self.event_pt, self.seq, self.ts, 0x1234, n == 0)
            buf[12] = code
            buf[13] = (0x80 if n >= 4 else 0) | 10
            buf[14] = dur >> 8
            buf[15] = dur & 0xFF
            self.sock.sendto(bytes(buf), self.dest)
            self.seq += 1
        self.ts += 2000

    def received(self):
        out = []
        while True:
            try:
                out.append(self.sock.recv(2048))
            except OSError:
                return out

    def close(self):
        self.sock.close()


def _world(tmp_path, seed, extra=()):
    w = CsWorld(tmp_path, seed=seed, sip_exts=("2001",), fxs=True,
                extra=[B + "trunk pstn fxo-port 1", B + "trunk pstn prefix 9"] + list(extra))
    w.register_all()
    gw = w.app.gateway
    w.run_until(lambda: gw.port_ready("fxs", 1) and gw.port_ready("fxo", 1), 3000)
    return w


def _sip_to_fxs(w):
    sim = w.app.hardware.sim
    c = w.phones["2001"].call("1001")
    w.run_until(lambda: sim.phones[1].ringing, 5000)
    sim.phones[1].off_hook()
    w.run_until(lambda: c.state == "connected" and w.app.gateway.fxs[1].state == "talk", 3000)
    return c


def _info(w, call, ctype, body):
    got = []
    s = call.session
    s.ua.in_dialog(s.dialog, "INFO", lambda resp, now: got.append(resp.status), w.app.clock.now(),
                   body, ctype)
    w.run_until(lambda: got and got[-1] >= 200, 3000)
    return got[-1]


def test_rfc4733_and_info_from_a_sip_phone_sound_on_the_fxs_phone(tmp_path):
    w = _world(tmp_path, 61)
    try:
        c = _sip_to_fxs(w)
        media = _Media(w, c)
        heard = w.app.hardware.sim.phones[1].audio
        drain(heard)
        media.key("5")
        w.run(300)
        media.key("#")
        w.run(300)
        assert _info(w, c, "application/dtmf-relay", b"Signal=9\r\nDuration=160\r\n") == 200
        w.run(300)
        assert _info(w, c, "application/dtmf", b"*") == 200
        w.run(300)
        frames, _ = drain(heard)
        assert _keys_in(frames) == "5#9*", _keys_in(frames)
        assert w.app.gateway.fxs[1].inband.played == 4
        # a body that is not DTMF: 415; a key that is none: 400; nothing plays
        assert _info(w, c, "application/json", b"{}") == 415
        assert _info(w, c, "application/dtmf-relay", b"Signal=X\r\n") == 400
        w.run(300)
        assert _keys_in(drain(heard)[0]) == ""
        media.close()
        w.phones["2001"].hangup(c)
        w.run(1000)
    finally:
        w.close()


def test_rfc4733_and_info_from_a_sip_phone_are_dialled_onto_the_fxo_line(tmp_path):
    w = _world(tmp_path, 63)
    try:
        line = w.app.hardware.sim.lines[1]
        c = w.phones["2001"].call("95551234")
        w.run_until(lambda: c.state == "connected", 8000)
        media = _Media(w, c)
        w.run(1000)
        drain(line.rx)
        for k in "12":
            media.key(k)
        w.run(200)
        assert _info(w, c, "application/dtmf-relay", b"Signal=#\r\nDuration=100\r\n") == 200
        w.run(1500)
        frames, _ = drain(line.rx)
        assert _keys_in(frames) == "12#", _keys_in(frames)
        assert w.app.gateway.fxo[1].keys_dialled == 3
        media.close()
        w.phones["2001"].hangup(c)
        w.run(1000)
    finally:
        w.close()


def _events(packets, pt):
    """(key, end, marker, ts) of every RFC 4733 packet."""
    out = []
    for p in packets:
        h = parse_header(p, len(p))
        if h is not None and h[0] == pt:
            out.append(("0123456789*#ABCD"[p[h[4]]], bool(p[h[4] + 1] & 0x80), bool(p[1] & 0x80),
                        h[2]))
    return out


def test_keys_on_the_analog_phone_leave_as_rfc4733_events(tmp_path):
    w = _world(tmp_path, 65)
    try:
        c = _sip_to_fxs(w)
        media = _Media(w, c)
        w.run(200)
        media.received()
        w.app.hardware.sim.phones[1].dial_dtmf("73")
        w.run(1500)
        ev = _events(media.received(), media.event_pt)
        keys = [e for e in ev if not e[1]]
        ends = [e for e in ev if e[1]]
        assert "".join(k for k, _, _, _ in ends) == "777333", ev
        assert [k for k, _, m, _ in keys if m] == ["7", "3"], ev    # marker on each key's first
        assert len(set(ts for k, _, _, ts in ev if k == "7")) == 1  # one timestamp per key
        assert w.app.gateway.media.sessions and sum(
            s.events_sent for s in w.app.gateway.media.sessions) == 2
        media.close()
        w.phones["2001"].hangup(c)
        w.run(1000)
    finally:
        w.close()


def test_dtmf_mode_info_and_inband_per_station(tmp_path):
    w = _world(tmp_path, 67, extra=[B + "station a1001 dtmf-mode info",
                                    B + "station a1002 dtmf-mode inband"])
    try:
        infos = []
        w.phones["2001"].on_request = lambda p, req: infos.append(req) if req.method == "INFO" else None
        c = _sip_to_fxs(w)
        media = _Media(w, c)
        w.app.hardware.sim.phones[1].dial_dtmf("4")
        w.run(1500)
        assert [bytes(r.body) for r in infos] == [b"Signal=4\r\nDuration=100\r\n"], infos
        assert infos[0].content_type.startswith("application/dtmf-relay")
        assert _events(media.received(), media.event_pt) == []
        media.close()
        w.phones["2001"].hangup(c)
        w.run(1000)
        # the in-band station: the tones stay in the audio, no event, no INFO
        sim = w.app.hardware.sim
        w.app.hardware.sim.phones[1].on_hook()
        c = w.phones["2001"].call("1002")
        w.run_until(lambda: sim.phones[2].ringing, 5000)
        sim.phones[2].off_hook()
        w.run_until(lambda: c.state == "connected" and w.app.gateway.fxs[2].state == "talk", 3000)
        media = _Media(w, c)
        sim.phones[2].dial_dtmf("8")
        w.run(1500)
        assert len(infos) == 1
        assert _events(media.received(), media.event_pt) == []
        assert w.app.gateway.fxs[2].keys_out == 1
        media.close()
        w.phones["2001"].hangup(c)
        w.run(1000)
    finally:
        w.close()
