"""The booted appliance sets its time of day from an SNTP responder that the
test runs on loopback: before the answer every timestamp says it is not
synchronised, after it `show system uptime`, `show log` and `show system
commit` show dates in the configured time zone.  Waits are bounded reads."""
import socket
import threading

from firmware import sntp as N
from firmware.timeofday import days_from_civil
from tests.harness import Booted

# the responder's clock: 2030-01-02 03:04:05 UTC
T = days_from_civil(2030, 1, 2) * 86400000 + (3 * 3600 + 4 * 60 + 5) * 1000


class Responder:
    """A small SNTP server (mode 4, stratum 1) on 127.0.0.1; counts requests."""

    def __init__(self, answer=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.requests = []
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                data, src = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            self.requests.append(data)
            if not self.answer or len(data) < 48:
                continue
            pkt = bytearray(48)
            pkt[0] = (4 << 3) | 4
            pkt[1] = 1
            pkt[12:16] = b"GPS\x00"
            pkt[24:32] = data[40:48]
            pkt[32:40] = N.unix_ms_to_ntp(T)
            pkt[40:48] = N.unix_ms_to_ntp(T)
            self.sock.sendto(bytes(pkt), src)

    def close(self):
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


def _until(app, command, needle, tries=50):
    """Repeat a command (each a bounded read) until its output has needle."""
    out = ""
    for _ in range(tries):
        out = app.command(command)
        if needle in out:
            return out
    raise AssertionError("%r never showed %r; last: %r" % (command, needle, out))


def test_sntp_sets_the_time_of_day_and_timestamps_become_dates(tmp_path):
    r = Responder()
    cfg = tmp_path / "c.txt"
    cfg.write_text("set system ntp server 127.0.0.1 port %d\nset system time-zone UTC+2\n" % r.port)
    try:
        with Booted(tmp_path / "state", console="pipes", args=["--config", str(cfg)]) as app:
            out = _until(app, "show system uptime", "Current time: 2030-01-02 05:0")
            assert "Time zone: UTC+2" in out
            assert "Last time sync: 0:00:0" in out and "from 127.0.0.1:%d" % r.port in out
            assert "answers used 1" in out
            assert len(r.requests[0]) == 48 and r.requests[0][0] == 0x23
            log = app.command("show log")
            assert "time synchronised from 127.0.0.1:%d: 2030-01-02 05:04:05 UTC+02:00" % r.port in log
            # earlier entries (the boot line) are dated too, none says "uptime"
            assert "uptime " not in log
            assert "\n2030-01-02 05:0" in "\n" + log
            hist = app.command("show system commit")
            assert "2030-01-02 05:0" not in hist      # committed at boot, before the sync
            assert "time not synchronised" in hist
            app.command("configure")
            app.command("set system host-name dated")
            assert "commit complete" in app.command("commit comment dated-commit")
            app.command("exit")
            hist = app.command("show system commit")
            assert "0   2030-01-02 05:0" in hist and "by root via console" in hist
    finally:
        r.close()


def test_without_an_answer_timestamps_say_not_synchronised(tmp_path):
    r = Responder(answer=False)
    cfg = tmp_path / "c.txt"
    cfg.write_text("set system ntp server 127.0.0.1 port %d\n" % r.port)
    try:
        with Booted(tmp_path / "state", console="pipes", args=["--config", str(cfg)]) as app:
            out = _until(app, "show system uptime", "requests 1")
            assert "Current time: not synchronised" in out and "Last time sync: never" in out
            assert "uptime " in app.command("show log")
            assert "2030" not in app.command("show log")
    finally:
        r.close()
