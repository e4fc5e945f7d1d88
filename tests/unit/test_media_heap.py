# portable: micropython
"""The media hot paths allocate nothing (issue 14, media module): the
conference mixer's tick, its jitter buffers and the RTP send path run under
micropython.heap_lock() with five members on real loopback sockets.  On
CPython (no heap lock) the same path runs and its output is checked, so
the test proves the mixing there too."""
import socket

from firmware.compat import Random
from firmware.media.mixer import ConferenceMixer, MAX_MEMBERS
from firmware.media.jitter import JitterBuffer, JITTER_FRAMES, PREFILL
from firmware.media.rtp import MediaManager, HEADER, parse_header
from hal import g711

try:
    from micropython import heap_lock, heap_unlock
except ImportError:
    def heap_lock():
        pass

    def heap_unlock():
        pass


class _App:
    def __init__(self):
        self.rng = Random(11)


def _tone(v):
    """A frame of constant linear level v in u-law."""
    return bytes([g711.ulaw_encode(v)]) * 160


def test_mixer_and_rtp_send_allocate_nothing_with_five_members():
    mm = MediaManager(_App(), "127.0.0.1", 31810, 31840)
    cm = ConferenceMixer("ulaw")
    sinks = []
    sess = []
    try:
        for n in range(MAX_MEMBERS):
            s = mm.open()
            r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            r.bind(socket.getaddrinfo("127.0.0.1", 31850 + n)[0][-1])
            s.set_remote("127.0.0.1", 31850 + n, 0)
            sess.append(s)
            sinks.append(r)
            assert cm.join() == n
        assert cm.join() == -1 and cm.refused == 1
        frames = [_tone(1000 * (n + 1)) for n in range(MAX_MEMBERS)]
        seq = 100
        for _ in range(PREFILL):
            for n in range(MAX_MEMBERS):
                cm.put(n, seq, frames[n], 0)
            seq += 1
        ticks = 3
        heap_lock()
        try:
            for _ in range(ticks):
                for n in range(MAX_MEMBERS):
                    cm.put(n, seq, frames[n], 0)
                cm.tick()
                for n in range(MAX_MEMBERS):
                    sess[n].send(cm.out[n])
                seq += 1
        finally:
            heap_unlock()
        assert cm.ticks == ticks
        dec = g711.ulaw_table()
        total = sum(dec[f[0]] for f in frames)
        for n in range(MAX_MEMBERS):
            # each member hears everyone but itself
            heard = dec[cm.out[n][0]]
            want = total - dec[frames[n][0]]
            assert abs(heard - want) <= want // 16, (n, heard, want)
            pkt = sinks[n].recv(400)
            assert len(pkt) == HEADER + 160
            assert parse_header(pkt, len(pkt))[0] == 0
            assert sess[n].sent == ticks
    finally:
        for s in sess:
            mm.close(s)
        for r in sinks:
            r.close()


def test_the_jitter_buffer_reorders_bounds_and_drops_late_frames():
    jb = JitterBuffer()
    out = bytearray(160)
    assert not jb.get(out)                 # nothing yet: silent, not an underrun
    jb.put(11, bytes([11]) * 160, 0)
    jb.put(10, bytes([10]) * 160, 0)       # arrived out of order
    assert jb.get(out) and out[0] == 10
    assert jb.get(out) and out[0] == 11
    assert not jb.put(10, bytes([10]) * 160, 0) and jb.late == 1   # already played
    assert not jb.get(out) and jb.underrun == 1
    for s in range(12, 12 + JITTER_FRAMES + 2):
        jb.put(s, bytes([s]) * 160, 0)
    assert jb.overflow == 2 and jb.count == JITTER_FRAMES
    assert jb.get(out) and out[0] == 14    # the two oldest went
    # sequence wrap: 65535 then 0
    jb.reset()
    jb.put(0, bytes([1]) * 160, 0)
    jb.put(65535, bytes([2]) * 160, 0)
    assert jb.get(out) and out[0] == 2
    assert jb.get(out) and out[0] == 1


def test_a_member_that_leaves_is_no_longer_mixed():
    cm = ConferenceMixer("alaw")
    a, b, c = cm.join(), cm.join(), cm.join()
    cm.leave(b)
    assert cm.members == 2 and cm.join() == b   # the slot is reused
    cm.leave(b)
    f = bytes([g711.alaw_encode(2000)]) * 160
    for seq in (1, 2):
        cm.put(a, seq, f, 0)
        cm.put(b, seq, f, 0)       # b has left: ignored
    cm.tick()
    dec = g711.alaw_table()
    assert abs(dec[cm.out[c][0]] - 2000) < 100      # c hears a only
    assert dec[cm.out[a][0]] in (8, -8)             # a hears silence (no one else)
