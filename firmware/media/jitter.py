"""A bounded jitter buffer for one conference member: reorders RTP frames
by sequence number and hands them out one per 20 ms tick.

    jb = JitterBuffer(law)             # JITTER_FRAMES slots, allocated here once
    jb.put(seq, buf, off, xl=None)     # copy 160 bytes of buf[off:] in (no allocation;
                                       # xl: a 256-byte law translation table)
    jb.get(out) -> bool                # the next frame in sequence order into out

Playout starts once PREFILL frames wait (absorbs that much jitter, 40 ms)
and stops again when the buffer runs dry (counted in `underrun`; the mixer
then takes the member as silent).  Bounds and overflow: at most
JITTER_FRAMES frames wait; one more drops the oldest (`overflow`).  A frame
older than the one last played, or a duplicate, is dropped (`late`).
Sequence comparisons are modulo 2^16 (RFC 3550 wrap).
"""
from firmware.compat import const

JITTER_FRAMES = const(6)        # 120 ms of audio at most
PREFILL = const(2)
FRAME = const(160)
_EMPTY = const(-1)


def _newer(a, b):
    """Is sequence number a after b (mod 2^16)?"""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


class JitterBuffer:
    def __init__(self):
        self.slots = [bytearray(FRAME) for _ in range(JITTER_FRAMES)]
        self.seqs = [_EMPTY] * JITTER_FRAMES
        self.count = 0
        self.played = _EMPTY      # sequence number of the frame last handed out
        self.playing = False
        self.overflow = 0
        self.late = 0
        self.underrun = 0

    def reset(self):
        for i in range(JITTER_FRAMES):
            self.seqs[i] = _EMPTY
        self.count = 0
        self.played = _EMPTY
        self.playing = False

    def _oldest(self):
        seqs = self.seqs
        best = -1
        for i in range(JITTER_FRAMES):
            s = seqs[i]
            if s != _EMPTY and (best < 0 or _newer(seqs[best], s)):
                best = i
        return best

    def put(self, seq, buf, off, xl=None):
        if self.played != _EMPTY and not _newer(seq, self.played):
            self.late += 1
            return False
        seqs = self.seqs
        free = -1
        for i in range(JITTER_FRAMES):
            s = seqs[i]
            if s == seq:
                self.late += 1
                return False
            if s == _EMPTY and free < 0:
                free = i
        if free < 0:                      # full: the oldest frame goes
            free = self._oldest()
            self.overflow += 1
            self.count -= 1
        slot = self.slots[free]
        if xl is None:
            for i in range(FRAME):
                slot[i] = buf[off + i]
        else:                             # the far end's law is not ours
            for i in range(FRAME):
                slot[i] = xl[buf[off + i]]
        seqs[free] = seq
        self.count += 1
        return True

    def get(self, out):
        if not self.playing:
            if self.count < PREFILL:
                return False
            self.playing = True
        i = self._oldest()
        if i < 0:
            self.playing = False
            self.underrun += 1
            return False
        slot = self.slots[i]
        for k in range(FRAME):
            out[k] = slot[k]
        self.played = self.seqs[i]
        self.seqs[i] = _EMPTY
        self.count -= 1
        return True
