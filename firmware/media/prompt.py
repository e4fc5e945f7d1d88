"""Voice prompts from flash, played 20 ms at a time (never loaded whole).

    p = open_prompt(path)      # PromptError names what is wrong with the file
    p.law                      # "ulaw" | "alaw"
    p.read_frame(buf) -> bool  # the next 160 samples into buf; False at the end
    p.rewind(); p.close()

Formats: WAV (RIFF, format 7 u-law or 6 A-law, 8000 Hz, mono, 8 bits) or
raw G.711 named *.ul / *.al.  At most MAX_PROMPT_BYTES (60 s) per file.  A
last partial frame is padded with silence.
"""
from firmware.callserver.config import MAX_PROMPT_BYTES


class PromptError(Exception):
    pass


_SILENCE = {"ulaw": 0xFF, "alaw": 0xD5}


def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _u32(b, i):
    return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)


def _wav(f, name):
    """(law, data offset, data length) of a G.711 WAV file."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise PromptError("%s is not a WAV file" % name)
    pos = 12
    law = None
    for _ in range(16):               # chunks before "data": fmt, fact, LIST ...
        h = f.read(8)
        if len(h) < 8:
            break
        cid, size = h[:4], _u32(h, 4)
        pos += 8
        if cid == b"fmt ":
            fmt = f.read(size)
            if len(fmt) < 16:
                raise PromptError("%s: truncated fmt chunk" % name)
            code, chans, rate, bits = _u16(fmt, 0), _u16(fmt, 2), _u32(fmt, 4), _u16(fmt, 14)
            if code not in (6, 7):
                raise PromptError("%s: format %d, need G.711 u-law (7) or A-law (6)" % (name, code))
            if chans != 1 or rate != 8000 or bits != 8:
                raise PromptError("%s: %d channel(s) at %d Hz, %d bits; need mono 8000 Hz 8 bits" % (
                    name, chans, rate, bits))
            law = "ulaw" if code == 7 else "alaw"
            pos += size
            if size & 1:
                f.read(1)
                pos += 1
        elif cid == b"data":
            if law is None:
                raise PromptError("%s: data before fmt chunk" % name)
            return law, pos, size
        else:
            f.seek(pos + size + (size & 1))
            pos += size + (size & 1)
    raise PromptError("%s: no data chunk" % name)


class Prompt:
    def __init__(self, f, law, start, length):
        self.f = f
        self.law = law
        self.start = start
        self.left = length
        self.length = length

    def rewind(self):
        self.f.seek(self.start)
        self.left = self.length

    def read_frame(self, buf):
        if self.left <= 0:
            return False
        n = min(self.f.readinto(buf) or 0, self.left)
        self.left = self.left - n if n else 0
        if n < len(buf):
            s = _SILENCE[self.law]
            for i in range(n, len(buf)):
                buf[i] = s
        return n > 0

    def close(self):
        self.f.close()


def open_prompt(path):
    import os
    name = path.rsplit("/", 1)[-1]
    try:
        size = os.stat(path)[6]
    except OSError:
        raise PromptError("no such prompt file (put it in the flash's prompts/ directory)")
    if size > MAX_PROMPT_BYTES:
        raise PromptError("%s is %d bytes, more than %d (60 s of G.711)" % (name, size, MAX_PROMPT_BYTES))
    try:
        f = open(path, "rb")
    except OSError as e:
        raise PromptError("cannot open %s: %s" % (name, e))
    try:
        lower = name.lower()
        if lower.endswith(".ul") or lower.endswith(".al"):
            law, start, length = ("ulaw" if lower.endswith(".ul") else "alaw"), 0, size
        else:
            law, start, length = _wav(f, name)
            length = min(length, size - start)
        if length <= 0:
            raise PromptError("%s holds no audio" % name)
        f.seek(start)
        return Prompt(f, law, start, length)
    except Exception:
        f.close()
        raise
