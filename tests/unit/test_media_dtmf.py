# portable: micropython
"""DTMF relay pieces (issue 14, feature 11): INFO bodies parsed with a
precise status for bad ones, RFC 4733 events sent in place of audio frames
(one timestamp per key, marker first, three end packets), and in-band
regeneration with its bound."""
import socket

from firmware.compat import Random
from firmware.media.dtmf import parse_info, info_body, DtmfError, InbandPlayer, MAX_KEYS
from firmware.media.rtp import MediaManager, parse_header, MAX_TX_EVENTS
from hal import g711
from hal.dsp import dtmf_digit


class _App:
    def __init__(self):
        self.rng = Random(4)


def _status(ctype, body):
    try:
        parse_info(ctype, body)
    except DtmfError as e:
        return e.status
    return 200


def test_info_bodies():
    assert parse_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n") == ("5", 160)
    assert parse_info("Application/DTMF-Relay; charset=x", b"signal= #\nduration=250") == ("#", 250)
    assert parse_info("application/dtmf", b"a\r\n") == ("A", 100)
    assert parse_info("application/dtmf-relay", info_body("*", 120)) == ("*", 120)
    assert _status("text/plain", b"Signal=5") == 415
    assert _status("application/dtmf-relay", b"Duration=100") == 400
    assert _status("application/dtmf-relay", b"Signal=55") == 400
    assert _status("application/dtmf-relay", b"Signal=5\r\nDuration=-1") == 400
    assert _status("application/dtmf-relay", b"Signal=5\r\nDuration=x") == 400


def test_rfc4733_events_go_out_in_place_of_audio():
    mm = MediaManager(_App(), "127.0.0.1", 31900, 31910)
    s = mm.open()
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(socket.getaddrinfo("127.0.0.1", 31911)[0][-1])
    try:
        s.set_remote("127.0.0.1", 31911, 0, None)
        assert not s.send_digits("1")           # no telephone-event negotiated
        s.set_remote("127.0.0.1", 31911, 0, 101)
        assert s.send_digits("1")
        frame = bytes([0xFF]) * 160
        pkts = []
        for _ in range(10):
            s.send(frame)
            pkts.append(r.recv(400))
        evs = [p for p in pkts if p[1] & 0x7F == 101]
        assert len(evs) == 7 and len(pkts[7]) == 172      # then audio again
        hs = [parse_header(p, len(p)) for p in evs]
        assert len(set(h[2] for h in hs)) == 1              # one timestamp
        assert evs[0][1] & 0x80 and not evs[1][1] & 0x80    # marker on the first only
        assert [bool(p[13] & 0x80) for p in evs] == [False] * 4 + [True] * 3
        assert [(p[14] << 8) | p[15] for p in evs] == [160, 320, 480, 640, 800, 800, 800]
        assert all(p[12] == 1 and len(p) == 16 for p in evs)
        seqs = [parse_header(p, len(p))[1] for p in pkts]
        assert all((seqs[i + 1] - seqs[i]) & 0xFFFF == 1 for i in range(9))
        assert s.events_sent == 1
        s.send_digits("1" * (MAX_TX_EVENTS + 3))
        assert s.events_dropped == 3
    finally:
        mm.close(s)
        r.close()


def test_inband_player_plays_each_key_and_bounds_its_queue():
    p = InbandPlayer("ulaw")
    buf = bytearray(160)
    assert not p.fill(buf)
    p.push("4D")
    dec = g711.ulaw_table()
    keys = ""
    prev = None
    while p.fill(buf):
        d = dtmf_digit([dec[b] for b in buf])
        if d is not None and d != prev:
            keys += d
        prev = d
    assert keys == "4D" and p.played == 2
    p.push("1" * (MAX_KEYS + 2))
    assert p.dropped == 2
