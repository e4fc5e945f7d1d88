"""Mixing of G.711 frames in linear: Mixer, the three-way mix of an analog
port's flash conference, and ConferenceMixer, the call server's conference
of up to MAX_MEMBERS parties (issue 14, feature 7).

    cm = ConferenceMixer(law)      # every buffer of MAX_MEMBERS members allocated here
    i = cm.join()                  # a member slot, or -1 when MAX_MEMBERS are in (cm.refused)
    cm.put(i, seq, buf, off)       # a received frame into member i's jitter buffer
    cm.tick()                      # every 20 ms: cm.out[i] is what member i hears
    cm.leave(i)

Each member has one jitter buffer (firmware/media/jitter.py), one input and
one output frame buffer, all allocated in the constructor: a tick, put()
and join/leave allocate nothing (proved under micropython.heap_lock() by
tests/unit/test_media_heap.py).  A tick decodes each speaking member's
frame once through the 256-entry G.711 table into a shared linear sum, and
each member hears the sum minus its own voice, clipped to 16 bits.  A
member whose jitter buffer is dry this tick counts as silent.
"""
from array import array

from firmware.compat import const
from firmware.media.rtp import FRAME
from firmware.media.jitter import JitterBuffer

MAX_MEMBERS = const(5)


class Mixer:
    """Three-party mixing of µ-law/A-law frames in linear (buffers reused):
    mix(a, b, out) writes the clipped sum of a and b (either may be None =
    silence) into out."""

    def __init__(self, law="ulaw"):
        from hal import g711
        self.dec = g711.decode_table(law)
        self.enc = g711.encoder(law)
        self.sil = g711.silence(law)

    def mix(self, a, b, out):
        dec = self.dec
        enc = self.enc
        if a is None and b is None:
            for i in range(FRAME):
                out[i] = self.sil
            return out
        if b is None:
            out[:] = a
            return out
        if a is None:
            out[:] = b
            return out
        for i in range(FRAME):
            v = dec[a[i]] + dec[b[i]]
            if v > 32767:
                v = 32767
            elif v < -32768:
                v = -32768
            out[i] = enc(v)
        return out


class ConferenceMixer:
    def __init__(self, law="ulaw"):
        from hal import g711
        self.law = law
        self.dec = g711.decode_table(law)
        self.enc = g711.encoder(law)
        self.sil = g711.silence(law)
        self.jb = [JitterBuffer() for _ in range(MAX_MEMBERS)]
        self.inp = [bytearray(FRAME) for _ in range(MAX_MEMBERS)]
        self.out = [bytearray(FRAME) for _ in range(MAX_MEMBERS)]
        self.used = [False] * MAX_MEMBERS
        self.spoke = [False] * MAX_MEMBERS
        self.acc = array("i", [0] * FRAME)
        self.members = 0
        self.refused = 0
        self.ticks = 0

    def join(self):
        for i in range(MAX_MEMBERS):
            if not self.used[i]:
                self.used[i] = True
                self.jb[i].reset()
                self.members += 1
                return i
        self.refused += 1
        return -1

    def leave(self, i):
        if 0 <= i < MAX_MEMBERS and self.used[i]:
            self.used[i] = False
            self.spoke[i] = False
            self.members -= 1

    def put(self, i, seq, buf, off):
        if self.used[i]:
            self.jb[i].put(seq, buf, off)

    def jitter_of(self, i):
        """Member i's jitter buffer, for its RtpSession to fill (rtp.jitter)."""
        return self.jb[i]

    def tick(self):
        dec = self.dec
        enc = self.enc
        acc = self.acc
        used = self.used
        spoke = self.spoke
        for k in range(FRAME):
            acc[k] = 0
        for i in range(MAX_MEMBERS):
            spoke[i] = used[i] and self.jb[i].get(self.inp[i])
            if spoke[i]:
                f = self.inp[i]
                for k in range(FRAME):
                    acc[k] += dec[f[k]]
        for i in range(MAX_MEMBERS):
            if not used[i]:
                continue
            out = self.out[i]
            if spoke[i]:
                f = self.inp[i]
                for k in range(FRAME):
                    v = acc[k] - dec[f[k]]
                    if v > 32767:
                        v = 32767
                    elif v < -32768:
                        v = -32768
                    out[k] = enc(v)
            else:
                for k in range(FRAME):
                    v = acc[k]
                    if v > 32767:
                        v = 32767
                    elif v < -32768:
                        v = -32768
                    out[k] = enc(v)
        self.ticks += 1
