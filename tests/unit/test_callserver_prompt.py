# portable: micropython
"""Voice prompt files (firmware/media/prompt.py): G.711 WAV and raw
files are played 160 bytes at a time with the last frame padded with
silence; every unusable file is refused with a message that names the
problem."""
from firmware.media.prompt import open_prompt, PromptError
from firmware.callserver.config import MAX_PROMPT_BYTES
from firmware.compat import Random
from tests.portable import tmpdir, rmtree, raises


def _le(n, size):
    return bytes([(n >> (8 * i)) & 0xFF for i in range(size)])


def _wav(path, data, code=7, chans=1, rate=8000, bits=8, extra=b""):
    fmt = _le(code, 2) + _le(chans, 2) + _le(rate, 4) + _le(rate * chans, 4) + _le(1, 2) + _le(bits, 2)
    body = b"WAVE" + b"fmt " + _le(len(fmt), 4) + fmt + extra + b"data" + _le(len(data), 4) + data
    with open(path, "wb") as f:
        f.write(b"RIFF" + _le(len(body), 4) + body)


def _frames(p):
    buf = bytearray(160)
    out = []
    while p.read_frame(buf):
        out.append(bytes(buf))
    return out


def test_wav_and_raw_prompts_play_in_frames_padded_with_silence():
    d = tmpdir("prompt", Random(3))
    try:
        data = bytes([i % 200 for i in range(400)])
        _wav(d + "/a.wav", data, extra=b"LIST" + _le(4, 4) + b"INFO")   # a chunk to skip
        p = open_prompt(d + "/a.wav")
        assert p.law == "ulaw"
        fr = _frames(p)
        assert len(fr) == 3 and b"".join(fr)[:400] == data
        assert fr[2][80:] == bytes([0xFF]) * 80            # u-law silence
        p.rewind()
        assert len(_frames(p)) == 3
        p.close()
        with open(d + "/b.al", "wb") as f:
            f.write(bytes([0x55]) * 170)
        p = open_prompt(d + "/b.al")
        fr = _frames(p)
        assert p.law == "alaw" and len(fr) == 2 and fr[1][10:] == bytes([0xD5]) * 150
        p.close()
    finally:
        rmtree(d)


def test_unusable_prompt_files_are_refused_with_the_reason():
    d = tmpdir("prompt", Random(4))
    try:
        _wav(d + "/pcm.wav", b"\x00" * 320, code=1, bits=16)
        _wav(d + "/stereo.wav", b"\x00" * 320, chans=2)
        _wav(d + "/rate.wav", b"\x00" * 320, rate=16000)
        _wav(d + "/empty.wav", b"")
        with open(d + "/text.wav", "wb") as f:
            f.write(b"hello, not audio")
        with open(d + "/big.ul", "wb") as f:
            f.write(b"\xff" * (MAX_PROMPT_BYTES + 1))
        for name, why in (("pcm.wav", "format 1, need G.711"),
                          ("stereo.wav", "2 channel(s)"),
                          ("rate.wav", "16000 Hz"),
                          ("empty.wav", "holds no audio"),
                          ("text.wav", "is not a WAV file"),
                          ("big.ul", "more than %d" % MAX_PROMPT_BYTES),
                          ("none.wav", "no such prompt file")):
            e = raises(PromptError, open_prompt, d + "/" + name)
            assert why in str(e), (name, str(e))
    finally:
        rmtree(d)
