"""./flash.sh mpy against a real MicroPython REPL: the MicroPython unix port
plays the board.  Its REPL runs on one pseudo-terminal, mpremote gets another,
and a relay thread joins the two masters, as a USB serial link would.  The
unix port's "flash" is its working directory: after the copy it must hold
the .mpy payload and main.py, and the appliance must boot from those files
alone."""
import os
import pty
import select
import subprocess
import threading
import tty

import pytest

from tests.harness import ROOT, MICROPYTHON


class Board:
    """The unix port's REPL behind a pty pair joined by a relay thread."""

    def __init__(self, flash_dir):
        self.ma, sa = pty.openpty()
        self.mb, self.sb = pty.openpty()
        tty.setraw(sa)
        tty.setraw(self.sb)
        self.proc = subprocess.Popen([MICROPYTHON], cwd=flash_dir, stdin=sa, stdout=sa, stderr=sa,
                                     close_fds=True)
        os.close(sa)
        self.port = os.ttyname(self.sb)
        self.stop = False
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

    def _relay(self):
        while not self.stop:
            r, _, _ = select.select([self.ma, self.mb], [], [], 0.2)
            for fd in r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                os.write(self.mb if fd == self.ma else self.ma, data)

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.proc.kill()
        self.proc.wait(10)
        for fd in (self.ma, self.mb, self.sb):
            os.close(fd)


@pytest.fixture
def board(tmp_path):
    b = Board(str(tmp_path))
    yield b
    b.close()


def test_flash_mpy_copies_the_payload_through_mpremote_and_the_appliance_boots_from_it(board, tmp_path):
    r = subprocess.run([os.path.join(ROOT, "flash.sh"), "mpy", "--port", board.port, "--no-reset"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "[1] tools/mkimage --runtime micropython" in r.stdout
    flash = str(tmp_path)
    for f in ("main.py", "default.conf", "firmware/__main__.mpy", "firmware/app.mpy",
              "firmware/software.mpy", "sip/message.mpy", "hal/sim/si3210.mpy", "boards/sim.mpy"):
        assert os.path.isfile(os.path.join(flash, f)), f
    assert not [n for n in os.listdir(os.path.join(flash, "firmware")) if n.endswith(".py")]
    assert not os.path.exists(os.path.join(flash, "hal", "linux"))
    with open(os.path.join(flash, "main.py")) as f:
        assert '"--board", "sim"' in f.read()
    # the board's files alone boot the appliance (no source on the path)
    b = subprocess.run([MICROPYTHON, "-m", "firmware", "--state", os.path.join(flash, "state"),
                        "--console", "none", "--sip-host", "127.0.0.1", "--sip-port", "0",
                        "--exit-after-boot"], cwd=flash, capture_output=True, text=True, timeout=120)
    assert "booted on board sim" in b.stdout, b.stdout + b.stderr
