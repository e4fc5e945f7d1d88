"""The console over a pseudo-terminal, driven with pyserial as a user would:
line editing, `?` help, Tab completion, abbreviations, configuration mode,
commit / commit check / rollback, validation errors, pipes, and the root
login once a password is committed — which must survive a restart."""
import os
import re
import subprocess
import time

from tests.harness import Booted, ROOT

PROMPT = re.compile(rb"\S+@\S+[>#] $")


def _read_until(port, pattern, timeout=10):
    """Console output up to the first match of pattern (bytes regex) at the end."""
    rx = re.compile(pattern) if isinstance(pattern, bytes) else pattern
    deadline = time.monotonic() + timeout
    out = b""
    while not rx.search(out):
        if time.monotonic() > deadline:
            raise TimeoutError("no %r within %ss; got %r" % (rx.pattern, timeout, out))
        out += port.read(port.in_waiting or 1)
    return out.decode(errors="replace").replace("\r\n", "\n")


def _open(app, login=False):
    """Open the console pty.  pyserial flushes pending input on open, and the
    first prompt may come before or after that: synchronise on a unique word."""
    import serial
    port = app.serial_port = serial.Serial(app.console_path, 115200, timeout=10)
    if login:   # a user name, then Ctrl-C at Password: back to a fresh login:
        port.write(b"sync-7q\r")
        _read_until(port, rb"sync-7q\r\nPassword:$")
        port.write(b"\x03")
        _read_until(port, rb"\^C\r\nlogin: $")
    else:
        port.write(b"sync-7q\r")
        _read_until(port, rb"unknown command: sync-7q\r\n\S+@\S+[>#] $")
    return port


def _cmd(port, line, until=PROMPT):
    """Send a line; return its output without the echo, [edit] banner and prompt."""
    port.write(line.encode() + b"\r")
    out = _read_until(port, until)
    lines = out.split("\n")[1:-1]
    while lines and (lines[-1] == "" or lines[-1].startswith("[edit")):
        lines.pop()
    return "\n".join(lines)


def test_console_editing_help_completion_config_mode_and_login(tmp_path):
    state = tmp_path / "state"
    with Booted(state, console="pty") as app:
        port = _open(app)
        # editing: cursor left then insert; Ctrl-A / Ctrl-K; abbreviations
        port.write(b"shw\x1b[Do\x05 ver\r")
        assert "Firmware: branch-voice" in _read_until(port, PROMPT)
        port.write(b"xyz\x01\x0bsh sys up\r")
        assert "System booted:" in _read_until(port, PROMPT)
        # ? lists completions with help and redisplays the line
        port.write(b"show ?")
        out = _read_until(port, rb"root@branch> show $")
        assert "Possible completions:" in out and "configuration" in out
        assert "Show the committed configuration" in out and "version" in out
        # Tab completes a keyword
        port.write(b"\x15conf\t")
        assert _read_until(port, rb"igure $").endswith("igure ")
        port.write(b"\r")
        out = _read_until(port, rb"root@branch# $")
        assert "Entering configuration mode" in out and "[edit]" in out
        # configuration mode
        assert _cmd(port, "set sys host-n br1") == ""
        assert _cmd(port, "show | compare") == "[edit system]\n+  host-name br1;"
        assert _cmd(port, "set services convergence-services sip port 70000") == \
            "error: services convergence-services sip port 70000: value out of range 1..65535"
        assert _cmd(port, "set services convergence-services service-class voice dscp-rtp ef") == ""
        assert _cmd(port, "commit check") == "configuration check succeeds"
        assert _cmd(port, "commit") == "commit complete"
        assert _cmd(port, "show system") == "host-name br1;"       # the prompt follows host-name
        port.write(b"set services convergence-services service-class vo\t")
        assert _read_until(port, rb"voice $")
        port.write(b"dscp-sip ?")
        out = _read_until(port, rb"dscp-sip $")
        assert "<0..63>" in out and "ef" in out
        port.write(b"cs3\r")
        _read_until(port, PROMPT)
        assert _cmd(port, "commit") == "commit complete"
        assert _cmd(port, "set system host-name br2") == ""
        assert _cmd(port, "rollback 0") == "load complete"
        assert _cmd(port, "show | compare") == ""
        assert _cmd(port, "rollback 1") == "load complete"
        assert "-  dscp-sip cs3;" in _cmd(port, "show | compare")
        assert _cmd(port, "rollback 0") == "load complete"
        # a root password, asked twice without echo
        port.write(b"set system root-authentication plain-text-password\r")
        _read_until(port, rb"New password: $")
        port.write(b"secret123\r")
        _read_until(port, rb"Retype new password: $")
        port.write(b"secret123\r")
        assert "secret123" not in _read_until(port, PROMPT)
        assert _cmd(port, "commit and-quit").endswith("Exiting configuration mode")
        # pipes in operational mode
        assert _cmd(port, "show configuration | match host-name") == "    host-name br1;"
        out = _cmd(port, "show configuration | count")
        assert re.fullmatch(r"Count: \d+ lines", out)
        out = _cmd(port, "show configuration | no-more")
        assert "## SECRET-DATA" in out and "secret123" not in out
        # exit now logs out: login is required
        port.write(b"exit\r")
        _read_until(port, rb"login: $")
        port.write(b"root\r")
        _read_until(port, rb"Password:$")
        port.write(b"wrong-one\r")
        _read_until(port, rb"Login incorrect\r\nlogin: $", timeout=15)
        port.write(b"root\r")
        _read_until(port, rb"Password:$")
        port.write(b"secret123\r")
        _read_until(port, rb"root@br1> $")
        assert "failed login for 'root'" in _cmd(port, "show log | match login")
    # after a restart on the same flash: login first, then the committed config
    with Booted(state, console="pty") as app:
        port = _open(app, login=True)
        port.write(b"root\r")
        _read_until(port, rb"Password:$")
        port.write(b"secret123\r")
        _read_until(port, rb"root@br1> $")
        out = _cmd(port, "show configuration | display set")
        assert "set system host-name br1" in out
        assert "set services convergence-services service-class voice dscp-sip cs3" in out


def test_paging_follows_screen_length_and_no_more_overrides(tmp_path):
    with Booted(tmp_path / "state", console="pty") as app:
        port = _open(app)
        assert _cmd(port, "set cli screen-length 3") == "Screen length set to 3"
        port.write(b"show system commit\r")    # one line: no paging
        _read_until(port, PROMPT)
        port.write(b"show version\r")
        out = _read_until(port, rb"---\(more\)---$")
        assert "Hostname:" in out and "Runtime" not in out
        port.write(b" ")
        assert "Runtime:" in _read_until(port, PROMPT)
        port.write(b"show version\r")
        _read_until(port, rb"---\(more\)---$")
        port.write(b"q")
        assert "Runtime" not in _read_until(port, PROMPT)
        assert "Runtime:" in _cmd(port, "show version | no-more")


def test_tools_console_send_runs_a_script_and_stops_on_error(tmp_path):
    script = tmp_path / "script.txt"
    script.write_text("# a scripted session\nconfigure\nset system host-name scripted\ncommit\n"
                      "exit\nshow configuration | display set\n")
    bad = tmp_path / "bad.txt"
    bad.write_text("configure\nset services convergence-services sip port 0\nshow\n")
    tool = os.path.join(ROOT, "tools", "console")
    with Booted(tmp_path / "state", console="pty") as app:
        r = subprocess.run([tool, app.console_path, "--send", str(script), "--timeout", "10"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "commit complete" in r.stdout
        assert "set system host-name scripted" in r.stdout
        assert r.stdout.rstrip().endswith("root@scripted>")
        r = subprocess.run([tool, app.console_path, "--send", str(bad), "--stop-on-error"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "error: services convergence-services sip port 0: value out of range" in r.stdout
        assert "--stop-on-error" in r.stdout
