"""The console as a Junos user expects it, over a pty (pyserial): exit and
quit end the session but not the appliance, halt and reboot ask first,
unknown and extra words are errors that name the word, `[ ]` lists, the
SECRET-DATA marker in `show | compare`, and the commit history."""
import re

from tests.harness import Booted
from tests.system.test_console_pty import PROMPT, _cmd, _open, _read_until


def test_exit_and_quit_end_the_session_not_the_appliance(tmp_path):
    with Booted(tmp_path / "state", console="pty") as app:
        port = _open(app)
        port.write(b"exit\r")
        _read_until(port, rb"Session ended. Press Enter to begin a new session.\r\n$")
        assert app.alive()
        port.write(b"\r")
        _read_until(port, rb"root@branch> $")
        assert "Firmware:" in _cmd(port, "show version")
        port.write(b"quit\r")
        _read_until(port, rb"Press Enter to begin a new session.\r\n$")
        port.write(b"\r")
        _read_until(port, rb"root@branch> $")
        assert _cmd(port, "exit now") == "error: syntax error: unexpected word 'now' after 'exit'"
        assert "console: session ended by root" in _cmd(port, "show log | match session")
        assert app.alive()


def test_reboot_and_halt_ask_for_confirmation(tmp_path):
    with Booted(tmp_path / "state", console="pty") as app:
        port = _open(app)
        port.write(b"request system reboot\r")
        _read_until(port, rb"Reboot the system \? \[yes,no\] \(no\) $")
        port.write(b"no\r")
        assert "Reboot cancelled" in _read_until(port, PROMPT)
        port.write(b"request system halt\r")
        _read_until(port, rb"Halt the system \? \[yes,no\] \(no\) $")
        port.write(b"\r")
        assert "Halt cancelled" in _read_until(port, PROMPT)
        assert app.alive()
        assert _cmd(port, "request system halt now") == \
            "error: syntax error: unexpected word 'now' after 'request system halt'"
        port.write(b"request system halt\r")
        _read_until(port, rb"\(no\) $")
        port.write(b"yes\r")
        _read_until(port, rb"Halting\r\n")
        assert app.proc.wait(10) == 0


def test_unknown_and_extra_words_are_errors_naming_the_word(tmp_path):
    with Booted(tmp_path / "state", console="pty") as app:
        port = _open(app)
        assert _cmd(port, "show version blah") == \
            "error: syntax error: unexpected word 'blah' after 'show version'"
        out = _cmd(port, "show blah")
        assert out.startswith("error: syntax error: unknown word 'blah' after 'show' (possible: ")
        assert "version" in out
        assert _cmd(port, "show system uptime now") == \
            "error: syntax error: unexpected word 'now' after 'show system uptime'"
        assert _cmd(port, "show system").startswith("error: incomplete command: show system ...")
        assert _cmd(port, "blah").startswith("error: unknown command: blah")


def test_list_values_in_brackets_and_secret_data_in_compare(tmp_path):
    with Booted(tmp_path / "state", console="pty") as app:
        port = _open(app)
        _cmd(port, "configure", rb"root@branch# $")
        base = "set services convergence-services "
        for line in ("station bob extension 2001", "station bob password Bobs-phone-7",
                     "station al extension 2002", "station al password Als-phone-77",
                     "hunt-group sales extension 3000"):
            assert _cmd(port, base + line) == ""
        assert _cmd(port, base + "hunt-group sales member [ 2001 2002 ]") == ""
        assert "member [ 2001 2002 ];" in _cmd(port, "show services convergence-services hunt-group")
        out = _cmd(port, "show | compare")
        assert re.search(r'\+  password-ha1 "\$sip-ha1\$[^"]+"; ## SECRET-DATA', out), out
        assert "Bobs-phone-7" not in out
        assert _cmd(port, base + "hunt-group sales member [ 2003") == \
            "error: services convergence-services hunt-group sales member: missing ] after the list of values"
        assert _cmd(port, base + "hunt-group sales extension [ 1 ]") == \
            ("error: services convergence-services hunt-group sales extension: [ ] lists are for "
             "statements that take several values")
        assert _cmd(port, "delete services convergence-services hunt-group sales member [ 2001 ]") == ""
        assert "member 2002;" in _cmd(port, "show services convergence-services hunt-group")
        assert _cmd(port, "commit comment two-stations") == "commit complete"
        assert _cmd(port, "set system host-name h2") == ""
        assert _cmd(port, "commit") == "commit complete"
        assert _cmd(port, "rollback 1") == "load complete"
        assert _cmd(port, "commit") == "commit complete"
        _cmd(port, "exit")
        hist = _cmd(port, "show system commit")
        lines = hist.split("\n")
        assert re.match(r"0   time not synchronised \(\d+\.\d{3} s after boot\) by root via "
                        r"console\+rollback-1, generation 3$", lines[0]), hist
        assert re.match(r"1   time not synchronised .* by root via console, generation 2$", lines[1])
        assert re.match(r"2   time not synchronised .* by root via console, generation 1$", lines[2])
        assert lines[3] == "    two-stations"
