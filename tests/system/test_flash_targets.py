"""flash.sh targets: every one has --help; rpi and mpy are tested with
--dry-run (they need a Raspberry Pi or a MicroPython board), which must list
every step and do none of them; missing arguments get clear errors."""
import os
import subprocess

import pytest

from tests.harness import ROOT

FLASH = os.path.join(ROOT, "flash.sh")


def _run(*args, timeout=300):
    return subprocess.run([FLASH] + list(args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("target,words", [
    ("image", ("--runtime cpython|micropython", "--key", "--inspect")),
    ("qemu", ("qemu-system-aarch64 -M virt", "--sip-port", "--state-disk", "qemu-system-arm")),
    ("rpi", ("--ssh USER@HOST", "--device /dev/sdX", "--dry-run", "--board")),
    ("mpy", ("--port", "mpremote", "--dry-run")),
])
def test_every_target_has_help(target, words):
    r = _run(target, "--help")
    assert r.returncode == 0, r.stderr
    for w in words:
        assert w in r.stdout, (w, r.stdout)


def test_top_level_help_lists_every_target():
    r = _run("--help")
    for t in ("sim", "image", "qemu", "rpi", "mpy", "build"):
        assert "./flash.sh %s" % t in r.stdout, r.stdout
    r = _run("nosuch")
    assert r.returncode == 2 and "targets: sim, image, qemu, rpi, mpy, build" in r.stderr


def test_rpi_ssh_dry_run_lists_every_step_and_does_nothing(tmp_path):
    stage = os.path.join(ROOT, "build", "rpi")
    before = os.path.exists(os.path.join(stage, "branch-voice.service"))
    r = _run("rpi", "--ssh", "pi@branch-pi.invalid", "--board", "rpi_poe", "--dry-run")
    assert r.returncode == 0, r.stderr
    steps = [l for l in r.stdout.splitlines() if l.startswith("[")]
    assert steps[0].startswith("[1] tools/mkimage --runtime cpython") and "--board rpi_poe" in steps[0]
    for text in ("ssh pi@branch-pi.invalid sudo apt-get install -y python3",
                 "scp build/firmware-cpython.img", "sudo tar -C /opt/branch-voice -xf -",
                 "/etc/systemd/system/branch-voice.service",
                 "sudo systemctl enable --now branch-voice"):
        assert any(text in s for s in steps), (text, r.stdout)
    assert "ExecStart=/usr/bin/python3 -m firmware.software boot --state /var/lib/branch-voice --board rpi_poe" in r.stdout
    assert r.stdout.rstrip().endswith("dry run: nothing was done")
    assert os.path.exists(os.path.join(stage, "branch-voice.service")) == before


def test_rpi_device_dry_run_and_argument_errors():
    r = _run("rpi", "--device", "/dev/sdz", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "mount /dev/sdz2 build/rpi/mnt" in r.stdout and "umount build/rpi/mnt" in r.stdout
    assert "multi-user.target.wants/branch-voice.service" in r.stdout
    r = _run("rpi", "--device", "/dev/mmcblk9", "--dry-run")
    assert "mount /dev/mmcblk9p2" in r.stdout
    r = _run("rpi", "--dry-run")
    assert r.returncode == 2 and "give --ssh USER@HOST or --device /dev/sdX" in r.stderr
    r = _run("rpi", "--ssh", "a@b", "--board", "nosuch", "--dry-run")
    assert r.returncode == 2 and "unknown board 'nosuch'" in r.stderr
    r = _run("rpi", "--device", "/dev/nosuchdisk")
    assert r.returncode == 2 and "/dev/nosuchdisk is not a block device" in r.stderr


def test_mpy_dry_run_lists_the_copies_and_does_nothing():
    r = _run("mpy", "--port", "/dev/ttyACM7", "--dry-run")
    assert r.returncode == 0, r.stderr
    for top in ("firmware", "sip", "hal", "boards"):
        assert "mpremote connect /dev/ttyACM7 resume fs cp -r build/mpy-payload/%s :." % top in r.stdout
    assert "tools/mkimage --runtime micropython" in r.stdout
    assert "import firmware.__main__" in r.stdout
    assert r.stdout.rstrip().endswith("dry run: nothing was done")
    r = _run("mpy")
    assert r.returncode == 2 and "give --port DEVICE" in r.stderr
    r = _run("mpy", "--port", "/dev/nosuch-port")
    assert r.returncode == 2 and "no such port /dev/nosuch-port" in r.stderr
