"""Remote syslog from the booted appliance to a UDP receiver on loopback:
RFC 5424 messages with the configured facility, host name and level; the
console shows the counters.  Waits are socket timeouts."""
import re
import socket
import time

from tests.harness import Booted


def _receive(sock, needle, deadline_s=10):
    got = []
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data = sock.recv(4096)
        except socket.timeout:
            break
        got.append(data)
        if needle in data:
            return data, got
    raise AssertionError("no message with %r; got %r" % (needle, got))


def test_the_system_log_goes_to_a_remote_syslog_receiver(tmp_path):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    port = rx.getsockname()[1]
    cfg = tmp_path / "c.txt"
    cfg.write_text("set system host-name br7\n"
                   "set system syslog host 127.0.0.1 port %d\n"
                   "set system syslog host 127.0.0.1 facility local3\n" % port)
    try:
        with Booted(tmp_path / "state", console="pipes", args=["--config", str(cfg)]) as app:
            data, _ = _receive(rx, b"booted on board sim")
            # local3 (19) * 8 + info (6) = 158; no time sync yet: NILVALUE and timeQuality
            assert re.match(rb'<158>1 - br7 branch-voice - - \[timeQuality tzKnown="0" '
                            rb'isSynced="0"\] branch-voice \S+ booted on board sim', data), data
            app.command("configure")
            app.command("set system syslog host 127.0.0.1 level warning")
            app.command("set system host-name br8")
            assert "commit complete" in app.command("commit")
            app.command("exit")
            app.command("show nothing-here")       # an error, but not logged
            app.send("request system halt")        # the question is no prompt: read on
            app.send("no")
            assert "Halt cancelled" in app.output()
            out = app.command("show log")
            assert re.search(r"Remote syslog to 127\.0\.0\.1:%d \(local3, warning and above\): "
                             r"sent \d+, dropped 0 \(queue of 64 full\), send errors 0" % port, out), out
            # after the level change: the commit's info line is not sent, the
            # warning of an NTP server's kiss-o'-death is
            kod = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            kod.bind(("127.0.0.1", 0))
            kod.settimeout(10)
            app.command("configure")
            app.command("set system ntp server 127.0.0.1 port %d" % kod.getsockname()[1])
            assert "commit complete" in app.command("commit")
            req, src = kod.recvfrom(100)
            answer = bytearray(48)
            answer[0] = 0x24
            answer[12:16] = b"DENY"
            answer[24:32] = req[40:48]
            kod.sendto(bytes(answer), src)
            kod.close()
            data, got = _receive(rx, b"kiss-o'-death")
            assert data.startswith(b"<156>1 - br8 branch-voice ") and data.endswith(b"kiss-o'-death DENY")
            assert not [g for g in got if b"commit complete" in g], got
    finally:
        rx.close()
