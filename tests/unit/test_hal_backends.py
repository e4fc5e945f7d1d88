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


def test_linux_pcm_kind_not_implemented_names_board():
    from hal.linux import Backend
    e = pytest.raises(NotImplementedError, Backend({"name": "rpi_oak8x"}).pcm, {"kind": "bcm2835"})
    assert "rpi_oak8x" in str(e.value)


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
