"""The auto attendant on the virtual clock: a SIP caller keys a menu choice
(RFC 4733) and is transferred (the target gets the caller's offer, the
caller is re-INVITEd with the target's SDP); in-band DTMF dials an extension;
no input replays the greeting and then goes to the operator or hangs up; a
target that does not answer brings the caller back to the greeting; a PSTN
call on an FXO trunk with did-target auto-attendant reaches a station by a
key pressed on the line; the greeting comes from a WAV prompt file; commit
checks.  Nothing is left behind."""
import os
import socket
import struct

from firmware.media.rtp import build_header
from hal import dsp, g711
from tests.sim.cs_world import CsWorld, B

AA = [B + "auto-attendant extension 500",
      B + "auto-attendant digit-timeout 3",
      B + "auto-attendant max-retries 1",
      B + "auto-attendant menu 1 target 2002"]


class Caller:
    """The RTP side of a simulated phone: a socket on the phone's SDP address
    (on the simulated network) that hears the attendant and keys digits to it."""

    def __init__(self, w, ext):
        self.w = w
        p = w.phones[ext]
        self.sock = w.network.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((p.host, p.rtp_port))
        self.sock.setblocking(False)
        self.seq = 1
        self.ts = 1000
        self.heard = []

    def aa_addr(self):
        c = self.w.cs.attendant.calls[0]
        return (c.leg.rtp.mm.host, c.leg.rtp.port)

    def listen(self):
        while True:
            try:
                self.heard.append(self.sock.recv(2048))
            except OSError:
                return

    def _send(self, pt, payload, marker=False):
        buf = bytearray(12)
        build_header(buf, pt, self.seq, self.ts, 0x1234, marker)
        self.sock.sendto(bytes(buf) + payload, self.aa_addr())
        self.seq += 1

    def rfc4733(self, digit, pt=101):
        code = "0123456789*#".index(digit)
        for i in range(3):
            end = 0x80 if i == 2 else 0
            self._send(pt, struct.pack(">BBH", code, end | 10, 160 * (i + 1)), i == 0)
            self.w.run(20)
        self._send(pt, struct.pack(">BBH", code, 0x80 | 10, 480))   # end retransmitted
        self.ts += 800
        self.w.run(40)

    def inband(self, digit):
        gen = dsp.ToneGen(dsp.dtmf_freqs(digit), 5000)
        frame = bytearray(160)
        for _ in range(5):                       # 100 ms of the pair
            gen.fill(frame, g711.encoder("ulaw"))
            self._send(0, bytes(frame))
            self.ts += 160
            self.w.run(20)
        silence = bytes([g711.silence("ulaw")]) * 160
        for _ in range(5):
            self._send(0, silence)
            self.ts += 160
            self.w.run(20)

    def close(self):
        self.sock.close()


def _watch(w):
    w.seen = {}
    for ext, p in w.phones.items():
        w.seen[ext] = []
        p.on_event = lambda p, call, event, log=w.seen[ext]: log.append((call, event))


def _incoming(w, ext):
    return [c for c, e in w.seen[ext] if e == "incoming"]


def test_menu_key_by_rfc4733_transfers_and_reinvites_the_caller(tmp_path):
    w = CsWorld(tmp_path, seed=71, sip_exts=("2001", "2002"), extra=AA)
    try:
        w.register_all()
        _watch(w)
        w.phones["2002"].ring_ms = 1000
        caller = Caller(w, "2001")
        c = w.phones["2001"].call("500")
        w.run_until(lambda: c.state == "connected", 3000)
        w.run(400)
        caller.listen()
        assert len(caller.heard) >= 15, len(caller.heard)      # the greeting's beeps
        caller.rfc4733("1")
        w.run_until(lambda: _incoming(w, "2002"), 2000)
        inc = _incoming(w, "2002")[0]
        assert inc.remote == "2001", inc.remote
        w.run_until(lambda: inc.state == "connected", 3000)
        w.run(500)
        # the caller was re-INVITEd with 2002's SDP, and the attendant let go
        assert w.phones["2001"].counters["reinvites_received"] == 1
        assert w.cs.attendant.calls == [] and w.cs.attendant.counters["menu"] == 1
        out = w.cli("show calls")
        assert "2002" in out and "connected" in out, out
        w.phones["2001"].hangup(c)
        w.run_until(lambda: inc.state == "terminated", 3000)
        caller.close()
        w.assert_no_leaks(bindings=2)
        assert len(w.cs.attendant.media()) == 0
    finally:
        w.close()


def test_inband_dtmf_dials_an_extension(tmp_path):
    w = CsWorld(tmp_path, seed=72, sip_exts=("2001", "2002", "2003"), extra=AA)
    try:
        w.register_all()
        _watch(w)
        w.phones["2003"].ring_ms = 500
        caller = Caller(w, "2001")
        c = w.phones["2001"].call("500")
        w.run_until(lambda: c.state == "connected", 3000)
        for d in "2003":
            caller.inband(d)
        w.run_until(lambda: _incoming(w, "2003"), 2000)
        w.run_until(lambda: _incoming(w, "2003")[0].state == "connected", 3000)
        assert not _incoming(w, "2002")
        w.phones["2001"].hangup(c)
        caller.close()
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_no_input_replays_then_goes_to_the_operator_or_hangs_up(tmp_path):
    w = CsWorld(tmp_path, seed=73, sip_exts=("2001", "2002", "2009"),
                extra=AA + [B + "auto-attendant operator 2009"])
    try:
        w.register_all()
        _watch(w)
        w.phones["2009"].ring_ms = 500
        c = w.phones["2001"].call("500")
        w.run_until(lambda: c.state == "connected", 3000)
        # the shipped greeting (prompts/aa-greeting.ul, ~5.6 s) + 3 s, replayed
        # once, then the operator
        w.run_until(lambda: _incoming(w, "2009"), 22000)
        assert w.cs.attendant.counters["no_input"] == 2
        w.run_until(lambda: _incoming(w, "2009")[0].state == "connected", 3000)
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=3)
        # without an operator the attendant hangs up
        w.app.config.load_file("no-op", "delete services convergence-services "
                                        "auto-attendant operator\n")
        c2 = w.phones["2001"].call("500")
        w.run_until(lambda: c2.state == "terminated", 25000)
        assert c2.end_reason == "bye_received", c2.end_reason
        assert w.cs.attendant.counters["hung_up"] == 1
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def test_unanswered_transfer_brings_the_caller_back_to_the_greeting(tmp_path):
    w = CsWorld(tmp_path, seed=74, sip_exts=("2001", "2002"),
                extra=AA + [B + "call-server no-answer-timeout 5"])
    try:
        w.register_all()
        _watch(w)
        w.phones["2002"].ring_ms = None
        caller = Caller(w, "2001")
        c = w.phones["2001"].call("500")
        w.run_until(lambda: c.state == "connected", 3000)
        caller.rfc4733("1")
        w.run_until(lambda: _incoming(w, "2002"), 2000)
        ring = _incoming(w, "2002")[0]
        w.run_until(lambda: ring.state == "terminated", 8000)
        assert ring.end_reason == "cancelled_by_remote"
        aa = w.cs.attendant
        assert aa.counters["transfer_failed"] == 1 and aa.calls[0].state == "greeting"
        assert c.state == "connected"
        w.phones["2001"].hangup(c)
        caller.close()
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_pstn_call_to_the_attendant_reaches_a_station_by_a_key_on_the_line(tmp_path):
    w = CsWorld(tmp_path, seed=75, sip_exts=("2001", "2002"), fxs=True,
                extra=AA + [B + "trunk pstn fxo-port 1",
                            B + "trunk pstn did-target auto-attendant"])
    try:
        gw = w.app.gateway
        w.register_all()
        _watch(w)
        w.run_until(lambda: gw.port_ready("fxo", 1), 3000)
        w.phones["2002"].ring_ms = 500
        line = w.app.hardware.sim.lines[1]
        line.ring(caller_id=("5551234", "PSTN Caller"))
        w.run_until(lambda: w.cs.attendant.calls, 15000)
        w.run_until(lambda: line.seized, 3000)
        w.run(1500)
        line.send_dtmf("1")
        # the FXS stations 1001/1002 start with 1: the key counts after digit-timeout
        w.run_until(lambda: _incoming(w, "2002"), 5000)
        inc = _incoming(w, "2002")[0]
        assert inc.remote == "5551234", inc.remote
        w.run_until(lambda: inc.state == "connected", 3000)
        w.run(500)
        assert w.cs.attendant.calls == []
        w.phones["2002"].hangup(inc)
        w.run_until(lambda: not line.seized, 3000)
        w.assert_no_leaks(bindings=2)     # the FXS stations take no binding: in process
    finally:
        w.close()


def _wav(path, frames):
    data = bytes(frames)
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"data" + struct.pack("<I", len(data)) + data)


def test_the_greeting_is_played_from_a_wav_prompt_and_bad_files_are_refused(tmp_path):
    w = CsWorld(tmp_path, seed=76, sip_exts=("2001", "2002"), extra=AA)
    try:
        prompts = os.path.join(w.app.state_dir, "prompts")
        os.makedirs(prompts, exist_ok=True)
        marker = [0x20 + (i % 64) for i in range(160 * 10)]     # 200 ms, recognisable
        _wav(os.path.join(prompts, "hello.wav"), marker)
        with open(os.path.join(prompts, "stereo.wav"), "wb") as f:
            f.write(b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00" +
                    struct.pack("<HHIIHH", 1, 2, 44100, 176400, 4, 16))
        for name, why in (("missing.wav", "no such prompt file"),
                          ("stereo.wav", "format 1, need G.711")):
            w.assert_refused([B + "auto-attendant greeting %s" % name], why)
        w.app.config.load_file("g", B + "auto-attendant greeting hello.wav\n")
        w.register_all()
        caller = Caller(w, "2001")
        c = w.phones["2001"].call("500")
        w.run_until(lambda: c.state == "connected", 3000)
        w.run(600)
        caller.listen()
        payloads = [p[12:] for p in caller.heard]
        assert bytes(marker[:160]) in payloads and bytes(marker[-160:]) in payloads
        w.phones["2001"].hangup(c)
        caller.close()
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_attendant_commit_checks(tmp_path):
    w = CsWorld(tmp_path, seed=77, sip_exts=("2001",))
    try:
        for lines, why in (
                ([B + "auto-attendant extension 2001"], "already the extension of a station"),
                ([B + "auto-attendant menu 1 target 2001"], "needs an extension"),
                ([B + "auto-attendant extension 500", B + "auto-attendant menu 1 target 500"],
                 "is the attendant itself"),
                ([B + "trunk t fxo-port 1", B + "trunk t did-target auto-attendant"],
                 "no auto attendant is configured")):
            w.assert_refused(lines, why)
    finally:
        w.close()
