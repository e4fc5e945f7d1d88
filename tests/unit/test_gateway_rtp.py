# portable: micropython
"""RTP packetisation of the G.711 frames: header fields, sequence and
timestamp steps, the playout queue bound, bad packets, law translation,
and the three-way mixer."""
import socket

from firmware.compat import Random
from firmware.media.mixer import Mixer
from firmware.media.rtp import (MediaManager, build_header, parse_header,
                                    PLAYOUT_FRAMES, MAX_SESSIONS)
from firmware.sipstack.transport import sockaddr
from hal import g711


class _App:
    def __init__(self, seed=5):
        self.rng = Random(seed)


def _frame(v):
    return bytes([v]) * 160


def test_header_round_trip():
    buf = bytearray(12)
    build_header(buf, 8, 0xBEEF, 0x12345678, 0xCAFEBABE, True)
    assert buf[0] == 0x80 and buf[1] == 0x88
    assert parse_header(buf, 12) == (8, 0xBEEF, 0x12345678, 0xCAFEBABE, 12)
    buf[0] = 0x40
    assert parse_header(buf, 12) is None
    assert parse_header(bytearray(8), 8) is None


def _pair(port_base):
    mm = MediaManager(_App(), "127.0.0.1", port_base, port_base + 20)
    a = mm.open()
    b = mm.open()
    assert a.port % 2 == 0 and b.port % 2 == 0 and a.port != b.port
    a.set_remote("127.0.0.1", b.port, 0)
    b.set_remote("127.0.0.1", a.port, 0)
    return mm, a, b


def test_frames_go_out_with_sequence_and_timestamp_steps():
    mm, a, b = _pair(31200)
    try:
        # a raw socket in place of b to see the packets themselves
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.bind(sockaddr("127.0.0.1", 31240))
        a.set_remote("127.0.0.1", 31240, 0)
        seq0, ts0 = a.seq, a.ts
        for i in range(3):
            assert a.send(_frame(i))
        pkts = [raw.recv(2048) for _ in range(3)]
        raw.close()
        for i, p in enumerate(pkts):
            assert len(p) == 172
            pt, seq, ts, ssrc, off = parse_header(p, len(p))
            assert pt == 0 and ssrc == a.ssrc
            assert seq == (seq0 + i) & 0xFFFF and ts == (ts0 + 160 * i) & 0xFFFFFFFF
            assert p[12:] == _frame(i)
            assert (p[1] & 0x80 != 0) == (i == 0)      # marker on the first packet only
        assert a.sent == 3
    finally:
        mm.close(a)
        mm.close(b)
    assert len(mm) == 0


def test_receive_queue_is_bounded_and_bad_packets_are_counted():
    mm, a, b = _pair(31300)
    try:
        for i in range(PLAYOUT_FRAMES + 3):
            a.send(_frame(i))
        b.poll()
        assert b.received == PLAYOUT_FRAMES + 3 and b.overflow == 3 and b.pending() == PLAYOUT_FRAMES
        f = b.pop()
        assert bytes(f) == _frame(3)              # the oldest three were dropped
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dst = sockaddr("127.0.0.1", b.port)
        s.sendto(b"\x00" * 20, dst)                             # version 0
        s.sendto(b"\x80\x08" + b"\x00" * 10 + b"\xff" * 160, dst)  # wrong payload type
        s.sendto(b"\x80\x00" + b"\x00" * 10 + b"\xff" * 80, dst)   # short payload
        s.close()
        b.poll()
        assert b.bad == 3
    finally:
        mm.close(a)
        mm.close(b)


def test_rfc4733_key_presses_count_once_per_event():
    mm, a, b = _pair(31350)
    try:
        b.set_remote("127.0.0.1", a.port, 0, 101)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dst = sockaddr("127.0.0.1", b.port)
        seq = [1]

        def event(key, ts, end, dur):
            h = bytearray(12)
            build_header(h, 101, seq[0], ts, 77, False)
            seq[0] += 1
            s.sendto(bytes(h) + bytes([key, (0x80 if end else 0) | 10, dur >> 8, dur & 0xFF]), dst)

        for key, ts in ((5, 1000), (11, 2000), (10, 3000)):       # "5", "#", "*"
            for i in range(3):
                event(key, ts, i == 2, 160 * (i + 1))
            event(key, ts, True, 480)                           # end retransmitted
        event(99, 4000, True, 160)                              # no key: ignored
        s.close()
        b.poll()
        assert b.events == 13
        assert b.take_digits() == "5#*" and b.take_digits() == ""
    finally:
        mm.close(a)
        mm.close(b)


def test_pcma_peer_gets_translated_frames():
    mm, a, b = _pair(31400)
    try:
        a.set_remote("127.0.0.1", b.port, 8)
        b.set_remote("127.0.0.1", a.port, 8)
        u = g711.ulaw_encode(1000)
        a.send(_frame(u))
        b.poll()
        f = b.pop()
        assert abs(g711.ulaw_decode(f[0]) - 1000) < 64     # µ-law -> A-law -> µ-law
    finally:
        mm.close(a)
        mm.close(b)


def test_session_table_is_bounded():
    mm = MediaManager(_App(), "127.0.0.1", 31500, 31600)
    got = []
    try:
        for _ in range(MAX_SESSIONS + 2):
            s = mm.open()
            if s is not None:
                got.append(s)
        assert len(got) == MAX_SESSIONS and mm.refused == 2
    finally:
        for s in got:
            mm.close(s)


def test_mixer_sums_and_clips():
    m = Mixer("ulaw")
    out = bytearray(160)
    a = _frame(g711.ulaw_encode(1000))
    b = _frame(g711.ulaw_encode(2000))
    m.mix(a, b, out)
    assert abs(g711.ulaw_decode(out[0]) - 3000) < 128
    m.mix(_frame(g711.ulaw_encode(30000)), _frame(g711.ulaw_encode(30000)), out)
    assert g711.ulaw_decode(out[0]) > 30000
    m.mix(None, None, out)
    assert out[0] == g711.ULAW_SILENCE
    m.mix(a, None, out)
    assert bytes(out) == a
