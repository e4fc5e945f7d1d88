"""A/B upgrade on the booted appliance, through the boot loader as the qemu
target runs it (`python -m firmware.software boot ...`, CPython, sim board):
the factory image lands in slot a, `request system software add` writes a
new image to slot b, the next boot tries it and makes it active once it is
running; an image that never reaches running is stopped by the watchdog and
the boot after falls back.  Each boot is a process whose console is its
stdin/stdout; every wait is a process exit with a timeout."""
import os
import subprocess

import pytest

from tests.harness import ROOT, PYTHON
from tests.unit import imgbuild
from tools import mkimage


def _boot(state, factory, console_input, extra=(), timeout=90):
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([PYTHON, "-m", "firmware.software", "boot", "--state", str(state),
                        "--factory", factory] + list(extra) +
                       ["--", "--console", "stdio", "--sip-host", "127.0.0.1", "--sip-port", "0"],
                       input=console_input, capture_output=True, text=True, timeout=timeout,
                       env=env, cwd="/")
    return r.returncode, r.stdout + r.stderr


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("ab")
    out = {}
    for v in ("1.0.0", "2.0.0"):
        out[v] = str(d / ("fw-%s.img" % v))
        mkimage.build(out[v], "cpython", ["sim"], v, quiet=True)
    # an image whose appliance never reaches running: it blocks before booting
    hang = [("firmware/__init__.py", b""),
            ("firmware/__main__.py", b"import select\nprint('hanging', flush=True)\nselect.select([], [], [])\n"),
            ("default.conf", b"")]
    out["hang"] = str(d / "hang.img")
    with open(out["hang"], "wb") as f:
        f.write(imgbuild.image(hang, version="9.9.9-hang", boards=("sim",)))
    out["dir"] = d
    return out


def test_add_reboot_runs_the_new_slot_and_keeps_it(images, tmp_path):
    st = tmp_path / "state"
    rc, out = _boot(st, images["1.0.0"], "show system software\nrequest system software add %s\n"
                    "show system software\n" % images["2.0.0"])
    assert rc == 0, out
    assert "boot: factory image 1.0.0 installed in slot a" in out
    assert "Firmware: " not in out and "branch-voice 1.0.0 booted on board sim" in out
    assert "Installed 2.0.0 (cpython" in out and "in slot b." in out
    assert "b     trial                2.0.0" in out, out
    # a bad image is refused and changes nothing
    rc, out = _boot(st, images["1.0.0"], "request system software add %s\nshow system software\n"
                    % os.path.join(ROOT, "README.md"))
    assert "boot: trying slot b (2.0.0), boot 1 of 1" in out, out
    assert "branch-voice 2.0.0 booted" in out
    assert "error: software add refused: not a firmware image" in out, out
    assert "b     active,booted        2.0.0" in out, out
    rc, out = _boot(st, images["1.0.0"], "show version\n")
    assert "boot: slot b, firmware 2.0.0" in out and "Firmware: branch-voice 2.0.0" in out, out


def test_an_image_that_never_runs_is_stopped_by_the_watchdog_and_the_next_boot_falls_back(images, tmp_path):
    st = tmp_path / "state"
    rc, out = _boot(st, images["1.0.0"], "request system software add %s\n" % images["hang"])
    assert rc == 0 and "Installed 9.9.9-hang" in out, out
    rc, out = _boot(st, images["1.0.0"], "show system software\n", extra=["--watchdog", "2"])
    assert "boot: trying slot b (9.9.9-hang)" in out and "hanging" in out, out
    assert "boot: watchdog: slot b did not reach running in 2 s; rebooting" in out, out
    assert "slot b did not reach running after 1 boot(s); back to slot a" in out, out
    assert "branch-voice 1.0.0 booted" in out, out
    assert "a     active,booted        1.0.0" in out, out
    assert rc == 0, out


def test_boot_loader_usage_errors(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([PYTHON, "-m", "firmware.software", "boot", "--watchdog", "x"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "--state DIR is required" in r.stdout
    r = subprocess.run([PYTHON, "-m", "firmware.software", "boot", "--state", str(tmp_path)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1 and "no bootable slot" in r.stdout, r.stdout
