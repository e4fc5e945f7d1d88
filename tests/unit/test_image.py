"""The firmware image: tools/mkimage (construct layout, tools/imagelayout.py)
against the device's own parser (firmware/image.py) and the portable tests'
writer (tests/unit/imgbuild.py), so the three cannot drift; and every kind of
bad image is refused with a message naming what is wrong."""
import binascii
import hashlib
import io
import os
import subprocess

import pytest

from firmware import ed25519, image
from tests.unit import imgbuild
from tools import imagelayout, mkimage

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = bytes(range(32))
PUB = ed25519.public_key(SECRET)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    out = {}
    for runtime in ("cpython", "micropython"):
        p = str(d / ("fw-%s.img" % runtime))
        mkimage.build(p, runtime, ["sim", "srx210"], "1.2.3", key=SECRET, quiet=True)
        out[runtime] = p
    p = str(d / "unsigned.img")
    mkimage.build(p, "cpython", ["srx240"], quiet=True)
    out["unsigned"] = p
    return out


def _files(path):
    with open(path, "rb") as f:
        h = image.Header(f.read(image.HEADER_SIZE))
        got = []

        def sink(name, size, read):
            got.append((name, read(size)))
        image.entries(f, h, sink)
    return h, got


def test_device_parser_reads_what_construct_wrote(built):
    for runtime in ("cpython", "micropython"):
        path = built[runtime]
        data = open(path, "rb").read()
        c = imagelayout.parse_header(data)
        h = image.check_file(path, board="sim", runtime=runtime, pubkey=PUB)
        assert (h.version, h.build_time, h.runtime, h.boards, h.payload_size, h.sha256) == (
            c.version, c.build_time, runtime, c.boards, c.payload_size, c.payload_sha256)
        assert h.boards == ["sim", "srx210"] and h.version == "1.2.3"
        assert h.payload_size + imagelayout.HEADER_SIZE == len(data)
        _, files = _files(path)
        assert files == imagelayout.parse_payload(data[imagelayout.HEADER_SIZE:])
        names = [n for n, _ in files]
        assert "default.conf" in names
        ext = ".py" if runtime == "cpython" else ".mpy"
        for mod in ("firmware/app", "firmware/image", "sip/message", "boards/sim"):
            assert mod + ext in names
        assert ("hal/linux/__init__.py" in names) == (runtime == "cpython")
        if runtime == "micropython":
            assert all(d[:1] == b"M" for n, d in files if n.endswith(".mpy"))
        else:
            assert dict(files)["firmware/app.py"] == open(os.path.join(ROOT, "firmware/app.py"), "rb").read()


def test_portable_writer_matches_construct_byte_for_byte():
    files = [("a/b.py", b"x = 1\n"), ("default.conf", b"set system host-name x\n")]
    body = imagelayout.build_payload(files)
    assert imgbuild.payload(files) == body
    signed = imagelayout.build_signed("9.9.9", 1700000000, "cpython", ["sim", "srx240"],
                                      len(body), hashlib.sha256(body).digest(), 1)
    head = imagelayout.build_header(signed, ed25519.sign(SECRET, signed))
    assert imgbuild.image(files, secret=SECRET, boards=("sim", "srx240")) == head + body


def test_inspect_prints_the_header_and_refuses_bad_images(built, tmp_path):
    pubfile = tmp_path / "k.pub"
    pubfile.write_text(binascii.hexlify(PUB).decode())
    run = lambda *a: subprocess.run([os.path.join(ROOT, "tools", "mkimage"), "--inspect"] + list(a),
                                    capture_output=True, text=True, timeout=120)
    r = run(built["cpython"], "--board", "sim", "--pubkey", str(pubfile))
    assert r.returncode == 0, r.stdout + r.stderr
    for text in ("version: 1.2.3", "runtime: cpython", "boards: sim, srx210", "signature: Ed25519",
                 "ok for board sim, signature verified"):
        assert text in r.stdout
    r = run(built["cpython"], "--board", "srx240")
    assert r.returncode == 1 and "image is for board sim, srx210, not for this board (srx240)" in r.stdout
    r = run(built["unsigned"], "--pubkey", str(pubfile))
    assert r.returncode == 1 and "image is unsigned, and this appliance requires a signed image" in r.stdout
    data = open(built["micropython"], "rb").read()
    (tmp_path / "trunc.img").write_bytes(data[:-100])
    r = run(str(tmp_path / "trunc.img"))
    assert r.returncode == 1 and "truncated image: payload ends 100 bytes early" in r.stdout
    r = run(str(tmp_path / "nosuch.img"))
    assert r.returncode == 2 and "no such image" in r.stderr


def _refusal(data, **kw):
    with pytest.raises(image.ImageError) as e:
        image.check(io.BytesIO(data), **kw)
    return str(e.value)


def test_every_corruption_is_refused_with_a_clear_message(built):
    data = open(built["micropython"], "rb").read()
    assert image.check(io.BytesIO(data), pubkey=PUB).payload_size == len(data) - 320
    assert "not a firmware image" in _refusal(b"XXXX" + data[4:])
    assert "format 2 is not supported" in _refusal(data[:4] + b"\0\2" + data[6:])
    assert "truncated image: 100 bytes" in _refusal(data[:100])
    assert "bytes after the" in _refusal(data + b"\0")
    # one flipped bit anywhere: header fields fail the CRC, the signature or
    # the payload hash -- never accepted
    for pos in list(range(0, 320, 7)) + list(range(320, len(data), len(data) // 97)):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        msg = _refusal(bytes(bad), pubkey=PUB)
        assert ("CRC" in msg or "signature" in msg or "SHA-256" in msg or "header" in msg
                or "not a firmware image" in msg or "format" in msg), (pos, msg)
    # a forged header (re-CRCed after changing the boards) fails the signature
    forged = bytearray(data)
    forged[50:66] = b"srx240".ljust(16, b"\0")
    crc = binascii.crc32(bytes(forged[:280])) & 0xFFFFFFFF
    forged[280:284] = crc.to_bytes(4, "big")
    assert "signature does not verify" in _refusal(bytes(forged), pubkey=PUB)
    assert "image is for micropython, this appliance runs cpython" in _refusal(data, runtime="cpython")


def test_bad_payload_entries_are_refused():
    for files, expect in (([("../etc/passwd", b"x")], "bad entry '../etc/passwd'"),
                          ([("/abs", b"x")], "bad entry '/abs'")):
        data = imgbuild.image(files)
        h = image.check(io.BytesIO(data))
        f = io.BytesIO(data[320:])
        with pytest.raises(image.ImageError) as e:
            image.entries(f, h, lambda n, s, r: None)
        assert expect in str(e.value)


def test_mkimage_usage_errors_name_the_problem(tmp_path):
    r = subprocess.run([os.path.join(ROOT, "tools", "mkimage"), "--board", "nosuch", "-o",
                        str(tmp_path / "x.img")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown board 'nosuch'" in r.stderr
    r = subprocess.run([os.path.join(ROOT, "tools", "mkimage"), "--key", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cannot read the secret key" in r.stderr
