"""Music and tone on hold (issue 14, feature 8) on the virtual clock, full
SIP flows through the call server: the holding station's music-on-hold
decides what the held party hears (the hold tone, a G.711 prompt file from
flash, or plain hold); a SIP phone's re-INVITE and an FXS phone's hook
flash both hold; resume gives the parties back to each other; a call that
ends on hold leaves nothing behind; a bad prompt file fails the commit."""
import os
import socket

from hal import g711
from hal.dsp import ToneGen
from firmware.media.rtp import parse_header
from tests.sim.cs_world import CsWorld, B
from tests.sim.analog_world import has_tone, drain


class _Ear:
    """The held SIP phone's RTP address on the simulated network."""

    def __init__(self, w, call):
        p = call.phone
        self.sock = w.network.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((p.host, call.rtp_port))
        self.sock.setblocking(False)

    def frames(self):
        out = []
        while True:
            try:
                pkt = self.sock.recv(2048)
            except OSError:
                return out
            h = parse_header(pkt, len(pkt))
            if h is not None and len(pkt) - h[4] == 160:
                out.append(pkt[h[4]:])

    def close(self):
        self.sock.close()


def _audio_host(call):
    m = [m for m in call.session.remote_sdp.media if m.kind == "audio"][0]
    c = m.connection or call.session.remote_sdp.connection
    return c[2], m.port


def _connect(w, a="2001", b="2002"):
    c = w.phones[a].call(b)
    w.run_until(lambda: c.state == "connected", 5000)
    inc = [x for x in w.phones[b].calls if x.role == "uas" and x.state == "connected"][-1]
    return c, inc


def test_a_sip_phone_holds_and_the_held_party_hears_the_hold_tone(tmp_path):
    w = CsWorld(tmp_path, seed=71, extra=(B + "station s2001 music-on-hold tone",))
    try:
        w.register_all()
        c, inc = _connect(w)
        before = _audio_host(inc)
        assert before[0] == w.phones["2001"].host
        ear = _Ear(w, inc)
        w.phones["2001"].hold(c)
        w.run_until(lambda: inc.remote_held, 3000)
        w.run_until(lambda: not c.reinviting, 3000)
        assert c.held
        assert _audio_host(inc)[0] == "127.0.0.1"          # the appliance's media now
        out = w.cli("show call-server holds")
        assert "Held calls with music: 1" in out and "tone" in out and "playing" in out, out
        w.run(6000)
        frames = ear.frames()
        assert len(frames) >= 250, len(frames)              # 20 ms each for 6 s
        assert len([f for f in frames if has_tone(f, 440)]) >= 30
        w.phones["2001"].resume(c)
        w.run_until(lambda: not inc.remote_held, 3000)
        w.run_until(lambda: not c.reinviting, 3000)
        assert _audio_host(inc) == before                  # back to the other phone
        assert w.cli("show call-server holds").startswith("Held calls with music: 0")
        w.run(200)
        ear.frames()
        w.run(1000)
        assert ear.frames() == []                           # the music stopped
        assert w.cs.hold.counters["holds"] == 1
        ear.close()
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def _write_prompt(w, name, freq):
    d = os.path.join(w.app.state_dir, "prompts")
    os.makedirs(d, exist_ok=True)
    enc = g711.encoder("ulaw")
    buf = bytearray(160)
    g = ToneGen((freq,), 6000)
    with open(os.path.join(d, name), "wb") as f:
        for _ in range(50):                                  # 1 s, looped while held
            f.write(bytes(g.fill(buf, enc)))


def test_the_held_party_hears_the_stations_prompt_file_looped(tmp_path):
    w = CsWorld(tmp_path, seed=73)
    try:
        _write_prompt(w, "moh.ul", 1000)
        w.app.config.load_file("moh.conf", B + "station s2002 music-on-hold moh.ul\n")
        w.register_all()
        c, inc = _connect(w)
        ear = _Ear(w, c)
        w.phones["2002"].hold(inc)                          # the callee holds this time
        w.run_until(lambda: c.remote_held, 3000)
        w.run(3000)
        frames = ear.frames()
        assert len(frames) >= 120 and len([f for f in frames if has_tone(f, 1000, 50)]) >= 120
        assert "moh.ul" in w.cli("show call-server holds")
        # the call ends while held: the caller hangs up; everything is released
        w.phones["2001"].hangup(c)
        w.run(1000)
        assert w.cs.hold.holds == [] and len(w.cs.hold.media()) == 0
        ear.close()
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_a_bad_prompt_file_fails_the_commit_and_none_is_plain_hold(tmp_path):
    w = CsWorld(tmp_path, seed=75)
    try:
        w.assert_refused([B + "station s2001 music-on-hold missing.wav"], "no such prompt file")
        w.register_all()
        c, inc = _connect(w)
        w.phones["2001"].hold(c)                            # music-on-hold none (default)
        w.run_until(lambda: inc.remote_held, 3000)
        assert _audio_host(inc)[0] == w.phones["2001"].host   # relayed: plain hold
        assert getattr(w.cs, "hold", None) is None or w.cs.hold.holds == []
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_hook_flash_on_an_fxs_phone_plays_the_tone_to_the_sip_phone(tmp_path):
    w = CsWorld(tmp_path, seed=77, sip_exts=("2001",), fxs=True,
                extra=(B + "station a1001 music-on-hold tone",))
    try:
        w.register_all()
        gw = w.app.gateway
        w.run_until(lambda: gw.port_ready("fxs", 1), 3000)
        sim = w.app.hardware.sim
        c = w.phones["2001"].call("1001")
        w.run_until(lambda: sim.phones[1].ringing, 5000)
        sim.phones[1].off_hook()
        w.run_until(lambda: c.state == "connected" and gw.fxs[1].state == "talk", 3000)
        ear = _Ear(w, c)
        sim.phones[1].flash()
        w.run_until(lambda: c.remote_held, 3000)
        w.run(5000)
        frames = ear.frames()
        assert len([f for f in frames if has_tone(f, 440)]) >= 30, len(frames)
        assert "tone" in w.cli("show call-server holds")
        sim.phones[1].flash()                                # back to the held call
        w.run_until(lambda: not c.remote_held, 3000)
        w.run(500)
        assert w.cs.hold.holds == []
        w.phones["2001"].hangup(c)
        w.run(1000)
        sim.phones[1].on_hook()
        ear.close()
        w.assert_no_leaks(bindings=1)
    finally:
        w.close()


def test_an_analog_party_held_by_a_sip_phone_hears_the_tone_on_its_line(tmp_path):
    w = CsWorld(tmp_path, seed=79, sip_exts=("2001",), fxs=True,
                extra=(B + "station s2001 music-on-hold tone",))
    try:
        w.register_all()
        gw = w.app.gateway
        w.run_until(lambda: gw.port_ready("fxs", 1), 3000)
        sim = w.app.hardware.sim
        c = w.phones["2001"].call("1001")
        w.run_until(lambda: sim.phones[1].ringing, 5000)
        sim.phones[1].off_hook()
        w.run_until(lambda: c.state == "connected" and gw.fxs[1].state == "talk", 3000)
        w.phones["2001"].hold(c)
        w.run_until(lambda: c.held and not c.reinviting, 3000)
        heard = sim.phones[1].audio

        def listen(ms):
            """What the analog phone heard (its audio ring holds about a second)."""
            drain(heard)
            out = []
            for _ in range(ms // 500):
                w.run(500)
                out.extend(drain(heard)[0])
            return out

        frames = listen(5000)
        assert len([f for f in frames if has_tone(f, 440)]) >= 30, len(frames)
        w.phones["2001"].resume(c)
        w.run_until(lambda: not c.held and not c.reinviting, 3000)
        w.run(500)
        assert w.cs.hold.holds == []
        # the port's media points at the SIP phone again (which sends nothing here)
        assert gw.fxs[1].legs[0].rtp.remote[0] == w.phones["2001"].host
        frames = listen(2000)
        assert len([f for f in frames if has_tone(f, 440)]) == 0
        w.phones["2001"].hangup(c)
        w.run(1000)
        sim.phones[1].on_hook()
        w.assert_no_leaks(bindings=1)
    finally:
        w.close()
