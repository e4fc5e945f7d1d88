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
        assert re.search(r'\+  password-secret "\$9\$[0-9a-f]+"; ## SECRET-DATA', out), out
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


def test_junos_editing_commands_load_annotate_deactivate_rename_copy_help(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "over.conf").write_text(
        "system {\n    host-name loaded;\n    /* the branch's clock */\n    time-zone UTC+1;\n}\n"
        "services {\n    convergence-services {\n        inactive: hunt-group sales {\n"
        "            extension 3000;\n        }\n    }\n}\n")
    (state / "lines.set").write_text("set system domain-name example.com\ndeactivate system domain-name\n")
    (state / "bad.set").write_text("set system domain-name example.com\nset system bogus 1\n")
    with Booted(state, console="pty") as app:
        port = _open(app)
        _cmd(port, "configure")
        # load merge terminal: curly text, ended by Ctrl-D on an empty line
        port.write(b"load merge terminal\r")
        _read_until(port, rb"\[Type \^D at a new line to end input\]\r\n$")
        port.write(b"system {\r    host-name merged;\r}\r\x04")
        assert "load complete (1 statement)" in _read_until(port, PROMPT)
        assert _cmd(port, "show system") == "host-name merged;"
        # load override FILE (relative to the state directory): the whole candidate
        assert _cmd(port, "load override over.conf") == "load complete (5 statements)"
        out = _cmd(port, "show")
        assert "    host-name loaded;\n    /* the branch's clock */\n    time-zone UTC+1;" in out
        assert "        inactive: hunt-group sales {" in out
        assert "deactivate services convergence-services hunt-group sales" in _cmd(port, "show | display set")
        # load set FILE: set lines and deactivate lines
        assert _cmd(port, "load set lines.set") == "load complete (2 statements)"
        assert "inactive: domain-name example.com;" in _cmd(port, "show system")
        assert _cmd(port, "load set bad.set").startswith(
            "error: load set %s/bad.set line 2: system bogus: syntax error, expecting " % state)
        assert "domain-name" in _cmd(port, "show system")     # the failed load changed nothing
        assert _cmd(port, "load set nothing.set").startswith(
            "error: load set: cannot read %s/nothing.set" % state)
        # activate / deactivate: an inactive statement is kept but not applied
        assert _cmd(port, "activate system domain-name") == ""
        assert _cmd(port, "activate system domain-name") == "error: system domain-name: statement is not inactive"
        assert _cmd(port, "deactivate system host-name") == ""
        assert _cmd(port, "deactivate system location") .startswith("error: system location: syntax error")
        assert _cmd(port, "commit") == "commit complete"
        port.write(b"\r")
        assert _read_until(port, PROMPT).endswith("root@branch# ")   # host-name inactive: the default
        assert _cmd(port, "activate system host-name") == ""
        assert _cmd(port, "commit") == "commit complete"
        port.write(b"\r")
        assert _read_until(port, PROMPT).endswith("root@loaded# ")
        # annotate
        assert _cmd(port, 'annotate system host-name "the site name"') == ""
        assert "/* the site name */\nhost-name loaded;" in _cmd(port, "show system")
        assert _cmd(port, 'annotate system host-name "a */ b"').startswith(
            "error: system host-name: a comment is one line")
        assert _cmd(port, 'annotate system contact "x"').startswith("error: system contact: syntax error")
        # rename and copy of named entries; their marks follow
        assert _cmd(port, "rename services convergence-services hunt-group sales to hunt-group support") == ""
        assert _cmd(port, "copy services convergence-services hunt-group support to support2") == ""
        out = _cmd(port, "show services convergence-services")
        assert "inactive: hunt-group support {" in out and "inactive: hunt-group support2 {" in out
        assert "sales" not in out
        assert _cmd(port, "copy services convergence-services hunt-group support to support2") == \
            "error: services convergence-services hunt-group support2: already exists"
        assert _cmd(port, "rename system host-name to x") == \
            "error: system host-name: rename works on a named entry (station NAME, trunk NAME, ...)"
        assert _cmd(port, "rename services convergence-services hunt-group nope to x") == \
            "error: services convergence-services hunt-group nope: statement not found"
        assert _cmd(port, "copy services convergence-services hunt-group support") == \
            "error: copy: expected copy STATEMENT to NEW-NAME"
        out = _cmd(port, "show | compare")
        assert '!  annotate system host-name "the site name";' in out
        assert _cmd(port, "commit") == "commit complete"
        # help in both modes
        out = _cmd(port, "help")
        assert out.startswith("Commands of configuration mode:")
        for word in ("annotate", "deactivate", "load merge", "rename", "copy", "rollback"):
            assert "\n" + word + " " in out
        assert _cmd(port, "help xyz") == "error: help: no configuration command starts with 'xyz'"
        _cmd(port, "exit")
        out = _cmd(port, "help show sys")
        assert "show system uptime" in out and "Show time since boot" in out
        # every operational command has help text
        for line in _cmd(port, "help | no-more").split("\n")[1:]:
            assert len(line.split("  ", 1)) == 2 and line.split("  ", 1)[1].strip(), line
        # after a restart the marks are still there (flash keeps them)
    with Booted(state, console="pty") as app:
        port = _open(app)
        out = _cmd(port, "show configuration")
        assert "/* the site name */" in out and "inactive: hunt-group support2 {" in out


def test_on_a_piped_console_exit_ends_the_session_and_end_of_input_shuts_down(tmp_path):
    app = Booted.pipes(state=str(tmp_path / "state"))
    try:
        app.send("exit")
        assert app.output().strip() == "Session ended."
        assert "Firmware:" in app.command("show version")      # a new session
        app.proc.stdin.close()                                 # end of input
        assert app.proc.wait(10) == 0
        assert b"shut down: end of console input" in app.out + app.proc.stdout.read()
    finally:
        app.stop()
