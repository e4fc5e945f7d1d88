"""Linux and MicroPython backends with fake libraries (CPython only), and the
mpy-cross compile check of every device module."""
import os
import subprocess
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class FakeSpiDev:
    def __init__(self):
        self.calls = []

    def open(self, b, c):
        self.opened = (b, c)

    def xfer(self, data):
        self.calls.append(("xfer", list(data)))
        return [0] * (len(data) - 1) + [0x33]

    def xfer2(self, data):
        self.calls.append(("xfer2", list(data)))
        return [0, 0, 0x03]


def test_linux_spi_cs_modes(monkeypatch):
    mod = types.ModuleType("spidev")
    mod.SpiDev = FakeSpiDev
    monkeypatch.setitem(sys.modules, "spidev", mod)
    from hal.linux import LinuxSPI
    from hal.drivers.si3210 import Si3210
    from hal.drivers.si3050 import Si3050
    slic = Si3210(LinuxSPI(0, 1, cs_per_byte=True))
    assert slic.read(11) == 0x33
    assert slic.spi._dev.calls == [("xfer", [0x8B, 0])]
    daa = Si3050(LinuxSPI(0, 2))
    assert daa.read(2) == 0x03
    assert daa.spi._dev.calls == [("xfer2", [0x60, 2, 0])]
    assert daa.spi._dev.mode == 3


def test_linux_i2c(monkeypatch):
    class Bus:
        def __init__(self, n):
            self.log = []

        def read_i2c_block_data(self, a, r, n):
            self.log.append(("r", a, r, n))
            return [0x22] * n

        def write_i2c_block_data(self, a, r, d):
            self.log.append(("w", a, r, d))

    mod = types.ModuleType("smbus2")
    mod.SMBus = Bus
    monkeypatch.setitem(sys.modules, "smbus2", mod)
    from hal.linux import LinuxI2C
    from hal.drivers.tps23861 import TPS23861
    d = TPS23861(LinuxI2C(1), 0x30)
    d.init()
    assert d.device_id == 0x22
    assert ("w", 0x30, 0x1A, [0x80]) in d.i2c._bus.log


def test_linux_file_pcm(tmp_path):
    from hal.linux import FilePCM
    rx = tmp_path / "rx0"
    rx.write_bytes(b"\x01" * 200)
    p = FilePCM(1, str(tmp_path / "rx%d"), str(tmp_path / "tx%d"))
    assert p.read_frame(0) == b"\x01" * 160
    assert p.read_frame(0) is None          # 40 bytes pending, not a frame
    p.write_frame(0, b"\x02" * 160)
    assert (tmp_path / "tx0").read_bytes() == b"\x02" * 160


def test_linux_pcm_kind_unknown_names_board():
    from hal.linux import Backend
    e = pytest.raises(NotImplementedError, Backend({"name": "rpi_oak8x"}).pcm, {"kind": "i2s9"})
    assert "rpi_oak8x" in str(e.value) and "i2s9" in str(e.value)


def _interleave(frames):
    n = len(frames)
    out = bytearray(160 * n)
    for c, f in enumerate(frames):
        out[c::n] = f
    return bytes(out)


def test_tdm_stream_is_split_into_channels_and_answered_frame_for_frame():
    from hal.linux import StreamPCM
    rx_r, rx_w = os.pipe()
    tx_r, tx_w = os.pipe()
    os.set_blocking(rx_r, False)
    p = StreamPCM(3, rx_r, tx_w, "ulaw")
    try:
        assert p.read_frame(0) is None and p.frames_in == 0          # nothing yet
        first = [bytes([0x10 + c]) * 160 for c in range(3)]
        second = [bytes(range(c, c + 160)) for c in range(3)]
        data = _interleave(first) + _interleave(second)
        os.write(rx_w, data[:300])                                  # a partial frame
        assert p.read_frame(1) is None
        p.write_frame(1, b"\x42" * 160)                             # toward the line, slot 1
        os.write(rx_w, data[300:])
        assert p.read_frame(0) == first[0]
        assert [p.read_frame(c) for c in (1, 2)] == first[1:]
        assert [p.read_frame(c) for c in range(3)] == second
        assert p.frames_in == 2 and p.frames_out == 2
        out = os.read(tx_r, 10000)
        assert out == _interleave([b"\xff" * 160, b"\x42" * 160, b"\xff" * 160]) + \
            _interleave([b"\xff" * 160] * 3)                          # then silence everywhere
        pytest.raises(ValueError, p.write_frame, 0, b"short")
        os.close(rx_w)
        assert p.read_frame(0) is None and p.eof
    finally:
        for fd in (tx_r,):
            os.close(fd)
        p.close()


def test_tdm_device_that_is_missing_is_a_reported_fault(tmp_path):
    from hal.linux import Backend
    e = pytest.raises(OSError, Backend({"name": "srx210", "law": "ulaw"}).pcm,
                      {"kind": "tdm", "channels": 4, "device": str(tmp_path / "tdm0")})
    assert "tdm0" in str(e.value)


def test_bcm2835_pcm_runs_arecord_and_aplay_on_the_alsa_device(tmp_path, monkeypatch):
    import select
    from hal.linux import Backend
    frames = [bytes([0x20 + c]) * 160 for c in range(2)]
    (tmp_path / "frame.bin").write_bytes(_interleave(frames))
    (tmp_path / "arecord").write_text(
        '#!/bin/sh\necho "$@" > %s/arecord.args\ncat %s/frame.bin\n' % (tmp_path, tmp_path))
    (tmp_path / "aplay").write_text(
        '#!/bin/sh\necho "$@" > %s/aplay.args\ncat > %s/played.bin\n' % (tmp_path, tmp_path))
    for name in ("arecord", "aplay"):
        os.chmod(tmp_path / name, 0o755)
    monkeypatch.setenv("PATH", "%s:%s" % (tmp_path, os.environ["PATH"]))
    p = Backend({"name": "rpi_oak8x", "law": "alaw"}).pcm(
        {"kind": "bcm2835", "channels": 2, "alsa": "hw:1,0"})
    try:
        assert select.select([p.rx_fd], [], [], 10)[0], "arecord gave no data"
        p.write_frame(0, b"\x01" * 160)
        got = None
        for _ in range(100):               # bytes may come in pieces; each pump takes what is there
            got = p.read_frame(1)
            if got is not None or not select.select([p.rx_fd], [], [], 10)[0]:
                break
        assert got == frames[1] and p.read_frame(0) == frames[0]
    finally:
        p.close()
    args = (tmp_path / "arecord.args").read_text().split()
    assert args[:10] == ["-q", "-D", "hw:1,0", "-t", "raw", "-f", "A_LAW", "-r", "8000", "-c"], args
    assert args[10] == "2" and (tmp_path / "aplay.args").read_text().split() == args
    assert (tmp_path / "played.bin").read_bytes() == _interleave([b"\x01" * 160, b"\xd5" * 160])


def test_mpy_backend_with_fake_machine(monkeypatch):
    log = []

    class Pin:
        OUT = 1
        IN = 0
        PULL_UP = 2

        def __init__(self, num, mode=None, pull=None, value=None):
            self.num = num

        def __call__(self, v):
            log.append(("cs", self.num, v))

        def value(self, v=None):
            return 0

    class SPI:
        def __init__(self, bus, baudrate, polarity, phase):
            assert (polarity, phase) == (1, 1)

        def write_readinto(self, tx, rx):
            log.append(("spi", bytes(tx)))
            for i in range(len(rx)):
                rx[i] = 0x02

    mod = types.ModuleType("machine")
    mod.Pin = Pin
    mod.SPI = SPI
    monkeypatch.setitem(sys.modules, "machine", mod)
    monkeypatch.delitem(sys.modules, "hal.mpy", raising=False)
    from hal.mpy import Backend
    be = Backend({"spi": {0: {"cs_pins": (8, 7)}}})
    spi = be.spi(0, 1, True)
    log.clear()
    rx = bytearray(2)
    spi.write_readinto(b"\x88\x00", rx)
    assert log == [("cs", 7, 0), ("spi", b"\x88"), ("cs", 7, 1),
                   ("cs", 7, 0), ("spi", b"\x00"), ("cs", 7, 1)]


def _device_modules():
    out = []
    for top in ("hal", "boards"):
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            if "__pycache__" in d:
                continue
            out.extend(os.path.join(d, f) for f in files if f.endswith(".py"))
    return sorted(out)


@pytest.mark.parametrize("path", _device_modules())
def test_mpy_cross_compiles(path, tmp_path):
    exe = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    if not os.path.exists(exe):
        pytest.skip("mpy-cross not installed")
    r = subprocess.run([exe, path, "-o", str(tmp_path / "x.mpy")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_hal_does_not_import_firmware_or_host_libs():
    for path in _device_modules():
        lines = [ln.strip() for ln in open(path)]
        imports = [ln for ln in lines if ln.startswith(("import ", "from "))]
        assert not [ln for ln in imports if "firmware" in ln], path
        if "/hal/linux/" not in path and "/hal/mpy/" not in path:
            for lib in ("spidev", "smbus2", "gpiozero", "serial", "machine"):
                assert not [ln for ln in imports if ln.split()[1] == lib], (path, lib)
