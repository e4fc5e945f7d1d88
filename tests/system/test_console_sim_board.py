"""Test commands and the simulated board's phones and lines from the
console (pty), as a person trying `./flash.sh sim` uses them: a call between
two analog phones, an inbound PSTN call with caller ID, the port tests, and
the error message of each command.  Waits are bounded console reads."""
import re
import time

from tests.harness import Booted
from tests.system.test_console_pty import _cmd, _open

CONFIG = """set services convergence-services station alice extension 1001
set services convergence-services station alice fxs-port 1
set services convergence-services station bob extension 1002
set services convergence-services station bob fxs-port 2
set services convergence-services trunk pstn1 fxo-port 1
set services convergence-services trunk pstn1 did-target 1001
"""


def _port_row(port, name):
    for line in _cmd(port, "show ports").split("\n"):
        if line.startswith(name + " "):
            return line.split()
    raise AssertionError("no row for %s" % name)


def _until(port, name, want, seconds=15):
    """show ports until the row of `name` has all the words of want (each
    command is a bounded read; the deadline bounds the polling)."""
    row = None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        row = _port_row(port, name)
        if all(w in row for w in want):
            return row
    raise AssertionError("%s never showed %r; last %r" % (name, want, row))


def test_a_call_between_two_simulated_phones_and_an_inbound_pstn_call(tmp_path):
    cfg = tmp_path / "two-phones.txt"
    cfg.write_text(CONFIG)
    with Booted(tmp_path / "state", console="pty", args=["--config", str(cfg)]) as app:
        port = _open(app)
        for n in ("fxs 1", "fxs 2", "fxo 1"):
            _until(port, n, ["ready"])
        assert _cmd(port, "request sim phone 1 off-hook") == "phone 1: off-hook"
        _until(port, "fxs 1", ["off-hook", "dialtone"])
        assert _cmd(port, "request sim phone 1 dial 1002") == "phone 1: dialling 1002"
        row = _until(port, "fxs 2", ["ringing", "1001"])
        assert row[1:3] == ["2", "FXS"] or row[2] == "FXS"
        assert _cmd(port, "request sim phone 2 off-hook") == "phone 2: off-hook"
        out = ""
        end = time.monotonic() + 15
        while "connected" not in out and time.monotonic() < end:
            out = _cmd(port, "show calls")
        assert re.search(r"\d+\s+1001\s+1002\s+connected", out), out
        assert _cmd(port, "request sim phone 2 flash") == "phone 2: flash"
        _until(port, "fxs 2", ["off-hook", "dialtone", "flash"])     # the call is on hold
        assert _cmd(port, "request sim phone 1 on-hook") == "phone 1: on-hook"
        assert _cmd(port, "request sim phone 2 on-hook") == "phone 2: on-hook"
        end = time.monotonic() + 15
        while "Calls: 0" not in _cmd(port, "show calls") and time.monotonic() < end:
            pass
        _until(port, "fxs 1", ["on-hook", "idle"])
        # the PSTN line rings: alice's phone rings with the caller ID
        assert _cmd(port, "request sim line 1 ring caller-id 5551234 Carol") == \
            "line 1: ringing with caller ID 5551234 Carol"
        row = _until(port, "fxs 1", ["ringing", "5551234", "Carol"])
        assert "{" not in " ".join(_port_row(port, "fxo 1"))     # no Python repr
        assert _cmd(port, "request sim line 1 stop") == "line 1: ringing stopped"
        # the errors name what is wrong
        assert _cmd(port, "request sim phone 9 off-hook") == \
            "error: no simulated phone on port 9 (ports: 1 2 3 4)"
        assert _cmd(port, "request sim phone 3 dial 12") == \
            "error: phone 3 is on-hook: request sim phone 3 off-hook first"
        assert _cmd(port, "request sim phone 3 flash") == \
            "error: phone 3 is on-hook: a flash needs the phone off-hook"
        assert _cmd(port, "request sim phone 3 jump") == (
            "error: unknown action 'jump': request sim phone N off-hook|on-hook|flash|dial DIGITS")
        assert _cmd(port, "request sim phone 3") == (
            "error: missing action: request sim phone N off-hook|on-hook|flash|dial DIGITS")
        assert _cmd(port, "request sim phone x") == (
            "error: expected a port number: request sim phone N off-hook|on-hook|flash|dial DIGITS")
        assert _cmd(port, "request sim phone 3 on-hook now") == \
            "error: syntax error: unexpected word 'now' after 'request sim phone N on-hook'"
        assert _cmd(port, "request sim line 3 ring") == "error: no simulated line on port 3 (ports: 1 2)"
        assert _cmd(port, "request sim line 2 ring caller-id abc").startswith(
            "error: expected: request sim line N ring [caller-id NUMBER [NAME]]")
        assert _cmd(port, "request sim line 2 hum") == \
            "error: unknown action 'hum': request sim line N ring [caller-id NUMBER [NAME]] | stop"


def test_port_tests_and_test_voice_call(tmp_path):
    cfg = tmp_path / "two-phones.txt"
    cfg.write_text(CONFIG)
    with Booted(tmp_path / "state", console="pty", args=["--config", str(cfg)]) as app:
        port = _open(app)
        for n in ("fxs 1", "fxs 2", "fxs 3", "fxs 4"):
            _until(port, n, ["ready"])
        assert _cmd(port, "test voice port 3 ring caller-id 5550000") == \
            "FXS port 3: ringing 3 times with caller ID 5550000 (test voice port 3 stop ends it)"
        _until(port, "fxs 3", ["ringing"])
        assert _cmd(port, "test voice port 3 ring") == "error: FXS port 3 is already ringing"
        out = _cmd(port, "test voice port 3 loop")
        lines = out.split("\n")
        assert lines[0] == "FXS port 3 (Si3215) line test:"
        assert "  Loop: open (on-hook)" in lines and "  Linefeed: ringing" in lines
        assert re.search(r"  Battery \(VBAT, reg 82 = 0x[0-9a-f]{2}\): -\d+\.\d V", out), out
        assert _cmd(port, "test voice port 3 tone busy") == \
            "error: FXS port 3 is ringing: test voice port 3 stop first"
        assert _cmd(port, "test voice port 3 stop") == "FXS port 3: test stopped"
        assert _cmd(port, "test voice port 4 tone ringback") == \
            "FXS port 4: ringback tone for 10 s (test voice port 4 stop ends it)"
        assert "tone: 440+480 Hz" in _cmd(port, "test voice port 4 loop")
        assert _cmd(port, "test voice port 4 stop") == "FXS port 4: test stopped"
        assert "tone: none" in _cmd(port, "test voice port 4 loop")
        assert _cmd(port, "test voice port 4 tone howl") == \
            "error: expected: test voice port N tone dial|busy|ringback"
        assert _cmd(port, "test voice port 9 ring") == \
            "error: no FXS port 9 on this board (FXS ports: 1 2 3 4)"
        assert _cmd(port, "test voice port 4").startswith("error: missing action: test voice port N ring")
        assert _cmd(port, "test voice port 4 dance").startswith("error: unknown action 'dance'")
        assert _cmd(port, "test voice port 4 loop now") == \
            "error: syntax error: unexpected word 'now' after 'test voice port N loop'"
        assert _cmd(port, "test voice port 4 ring caller-id x").startswith(
            "error: expected: test voice port N ring [caller-id NUMBER]")
        # test voice call: alice's phone goes off-hook and dials bob
        assert _cmd(port, "test voice call alice bob") == \
            "Calling 1002 from alice (FXS port 1): off-hook, dialling 1002; show calls, show ports"
        _until(port, "fxs 2", ["ringing", "1001"])
        assert _cmd(port, "test voice call alice bob") == \
            "error: station alice (FXS port 1) is already off-hook"
        assert _cmd(port, "test voice call carol bob") == "error: no station named or numbered carol"
        assert _cmd(port, "test voice call alice") == \
            "error: expected: test voice call FROM TO (station names or extensions)"
