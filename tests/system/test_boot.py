"""The appliance boots the way users start it, and answers at its prompt."""
import os
import subprocess

import pytest

from tests.harness import Booted, ROOT, PYTHON, MICROPYTHON


def test_show_version_over_a_pty_console_with_pyserial(tmp_path):
    with Booted(tmp_path / "state", console="pty") as app:
        assert app.board == "sim"
        assert app.console_path.startswith("/dev/pts/")
        app.serial()
        out = app.command("show version")
        assert "Firmware: branch-voice" in out
        assert "board sim" in out
        assert app.command("sh ver") == out  # unambiguous abbreviations
        assert os.path.isdir(tmp_path / "state")


def test_flash_sh_sim_help_documents_every_flag():
    r = subprocess.run([os.path.join(ROOT, "flash.sh"), "sim", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for flag in ("--board", "--state", "--config", "--sip-port", "--console"):
        assert flag in r.stdout
    assert "stdio|pty|none|DEVICE" in r.stdout


@pytest.mark.parametrize("interpreter", [PYTHON, MICROPYTHON], ids=["cpython", "micropython"])
def test_piped_console_runs_commands_and_end_of_input_shuts_down(tmp_path, interpreter):
    r = subprocess.run([interpreter, "-m", "firmware", "--board", "sim", "--state", str(tmp_path),
                        "--console", "stdio", "--sip-host", "127.0.0.1",
                        "--sip-port", "0" if interpreter == PYTHON else str(_free_port())],
                       cwd=ROOT, input="show version\nshow system uptime\n",
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "booted on board sim" in r.stdout
    assert "Firmware: branch-voice" in r.stdout
    assert "System booted:" in r.stdout
    assert r.stdout.rstrip().endswith("shut down: end of console input")


def test_bad_flags_and_boards_get_clear_errors(tmp_path):
    r = subprocess.run([PYTHON, "-m", "firmware", "--sip-port", "seventy"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--sip-port takes a number, not 'seventy'" in r.stdout
    r = subprocess.run([PYTHON, "-m", "firmware", "--board", "nosuch", "--state", str(tmp_path),
                        "--console", "none", "--sip-port", "0"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "unknown board 'nosuch'" in r.stdout and "sim" in r.stdout


def test_a_config_file_that_cannot_be_applied_stops_boot_with_its_line(tmp_path):
    cfg = tmp_path / "boot.conf"
    cfg.write_text("# comment\nset no-such-statement 1\n")
    r = subprocess.run([PYTHON, "-m", "firmware", "--state", str(tmp_path / "s"), "--console", "none",
                        "--sip-port", "0", "--config", str(cfg)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "boot.conf line 2" in r.stdout


def _free_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_closed_console_output_shuts_the_appliance_down(tmp_path):
    # `... | head -1`: once the reader is gone, the console ends as at end of input
    p = subprocess.Popen([PYTHON, "-m", "firmware", "--state", str(tmp_path), "--console", "stdio",
                          "--sip-host", "127.0.0.1", "--sip-port", "0"], cwd=ROOT,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()          # the boot line
    p.stdout.close()             # the reader goes away
    p.stdin.write(b"show version\n")
    p.stdin.flush()
    try:
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, p.stderr.read()
    p.stdin.close()
    p.stderr.close()


def _boot_piped(state, lines, *extra):
    return subprocess.run([PYTHON, "-m", "firmware", "--board", "sim", "--state", str(state),
                           "--console", "stdio", "--sip-host", "127.0.0.1", "--sip-port", "0"]
                          + list(extra), cwd=ROOT, input="".join(l + "\n" for l in lines),
                          capture_output=True, text=True, timeout=60)


def test_a_corrupt_configuration_is_announced_at_boot_and_on_the_console(tmp_path):
    # issue 12 item 6: no silent fallback, and a loud safe state
    state = tmp_path / "s"
    for name in ("first", "second"):
        cfg = tmp_path / (name + ".conf")
        cfg.write_text("set system host-name %s\n" % name)
        r = _boot_piped(state, [], "--config", str(cfg))
        assert r.returncode == 0, r.stdout + r.stderr
    path = state / "config" / "c.2"
    data = bytearray(path.read_bytes())
    data[30] ^= 0x20
    path.write_bytes(bytes(data))
    r = _boot_piped(state, ["show system commit", "show log"])
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    boot, banner = out.split("\n")[0:2]
    assert "booted on board sim" in boot
    assert banner == ("*** configuration fallback: generation 2 unusable (CRC or length mismatch); "
                      "booted generation 1, the newest valid one"), out
    assert "\n*** configuration fallback" in out.split("root@first>")[0], out   # the banner, before the first prompt
    assert "Boot: configuration fallback: generation 2" in out
    assert "configuration: generation 2 is unusable: CRC or length mismatch" in out
    path = state / "config" / "c.1"
    path.write_bytes(path.read_bytes()[:-5])
    r = _boot_piped(state, ["show system commit"])
    out = r.stdout
    assert "*** SAFE STATE: no valid configuration generation" in out.split("root@branch>")[0], out
    assert "Boot: SAFE STATE" in out


@pytest.mark.parametrize("interpreter", [PYTHON, MICROPYTHON], ids=["cpython", "micropython"])
def test_lines_of_invalid_utf8_get_an_error_and_the_console_lives_on(tmp_path, interpreter):
    # issue 12 item 7: each such line used to crash the console task, and the
    # sixth ended the console for good
    bad = b"show \xff\xfe version\n"
    r = subprocess.run([interpreter, "-m", "firmware", "--board", "sim", "--state", str(tmp_path),
                        "--console", "stdio", "--sip-host", "127.0.0.1",
                        "--sip-port", "0" if interpreter == PYTHON else str(_free_port())],
                       cwd=ROOT, input=bad * 8 + b"show version\nshow log\n",
                       capture_output=True, timeout=30)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out + r.stderr.decode("utf-8", "replace")
    assert out.count("error: input is not valid UTF-8 text; line ignored") == 8, out
    assert "Firmware: branch-voice" in out
    assert "crashed" not in out, out
    assert out.rstrip().endswith("shut down: end of console input")


@pytest.mark.parametrize("interpreter", [PYTHON, MICROPYTHON], ids=["cpython", "micropython"])
def test_a_config_file_with_invalid_utf8_names_its_line(tmp_path, interpreter):
    # issue 12 item 10: used to print a Python traceback
    cfg = tmp_path / "bad.conf"
    cfg.write_bytes(b"# comment\nset system host-name br1\nset system domain-name \xff\xfe.example\n")
    r = subprocess.run([interpreter, "-m", "firmware", "--state", str(tmp_path / "s"),
                        "--console", "none", "--sip-host", "127.0.0.1",
                        "--sip-port", "0" if interpreter == PYTHON else str(_free_port()),
                        "--config", str(cfg)], cwd=ROOT, capture_output=True, timeout=60)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    assert r.returncode == 1, out
    assert "boot failed: config %s line 3: not valid UTF-8 text" % cfg in out, out
    assert "Traceback" not in out, out
