"""Three-party conference mixing for the analog ports."""
from firmware.media.rtp import FRAME


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
