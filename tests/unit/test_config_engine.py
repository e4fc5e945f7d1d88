# portable: micropython
"""The configuration engine in-process on the virtual clock: configuration
mode, atomic commit with hooks, commit confirmed, rollback, persistence
across reboots, --config loading, pipes, completion."""
from firmware.commands import complete
from firmware.config import schema as S
from firmware.config.schema import ConfigError
from firmware.config.store import MAX_ROLLBACK
from tests.portable import raises
from tests.unit.test_config_support import FakeApp, reboot


def test_factory_default_is_empty_and_needs_no_login():
    app = FakeApp()
    assert app.cli("show configuration") == ""
    assert not app.config.login_required()
    assert app.config.get("system host-name") == "branch"
    assert app.config.get("services convergence-services sip port") == 5060


def test_set_commit_applies_hostname_and_survives_reboot():
    app = FakeApp()
    assert app.cli("configure") == "Entering configuration mode"
    assert app.cli("set sys host-n br1") == ""
    assert app.hostname == "branch"          # candidate only
    assert app.cli("commit") == "commit complete"
    assert app.hostname == "br1"
    app2 = reboot(app)
    assert app2.hostname == "br1"
    assert "host-name br1;" in app2.cli("show configuration")


def test_validation_errors_name_path_value_and_reason():
    app = FakeApp()
    out = app.conf("set services convergence-services sip port 70000")[0]
    assert out == "error: services convergence-services sip port 70000: value out of range 1..65535"
    out = app.conf("set services convergence-services sip service-class gold", "commit")
    assert out[1] == ("error: services convergence-services sip service-class gold: "
                      "service class not defined under services convergence-services service-class")
    assert app.cli("commit check").startswith("error:")
    app.cli("set services convergence-services service-class gold dscp-rtp af41")
    assert app.cli("commit check") == "configuration check succeeds"
    assert app.config.committed.get("services convergence-services sip service-class") is None
    assert app.cli("commit") == "commit complete"
    assert app.voice.dscp_rtp == 34 and app.voice.dscp_sip == 24


def test_a_refusing_apply_hook_makes_the_whole_commit_fail_and_undoes_the_others():
    app = FakeApp()
    seen = []

    def refuse(app_, old, new):
        if new.get("system domain-name") == "bad.example":
            raise ConfigError("system domain-name", "bad.example", "refused by the test hook")
        seen.append(new.get("system host-name"))

    S.on_commit("zz-test", refuse)
    try:
        app.conf("set system host-name one", "commit")
        assert app.hostname == "one"
        out = app.conf("set system host-name two", "set system domain-name bad.example", "commit")[2]
        assert out == "error: system domain-name bad.example: refused by the test hook"
        assert app.hostname == "one"             # system's hook ran, then was undone
        assert app.config.committed.get("system host-name") == "one"
        assert reboot(app).hostname == "one"     # nothing reached the flash
    finally:
        S.HOOKS[:] = [h for h in S.HOOKS if h[0] != "zz-test"]


def test_show_compare_display_set_and_pipes():
    app = FakeApp()
    app.conf("set system host-name br1", "commit", "set system host-name br2",
             "set system syslog level warning")
    assert app.cli("show | compare") == ("[edit system]\n-  host-name br1;\n+  host-name br2;\n"
                                         "[edit system syslog]\n+  level warning;")
    assert app.cli("show | display set") == ("set system host-name br2\n"
                                             "set system syslog level warning")
    assert app.cli("show system syslog") == "level warning;"
    assert app.cli("show | display set | match syslog") == "set system syslog level warning"
    assert app.cli("show | display set | except syslog") == "set system host-name br2"
    assert app.cli("show | display set | count") == "Count: 2 lines"
    assert app.cli("show | display set | last 1") == "set system syslog level warning"
    assert app.cli("run show configuration | display set") == "set system host-name br1"
    assert app.cli("show | bogus").startswith("error: unknown pipe command")
    app.cli("exit", answers=["yes"])
    assert app.config.mode == "operational"
    assert app.cli("show configuration | match host") == "    host-name br1;"


def test_edit_up_top_and_relative_statements():
    app = FakeApp()
    app.conf("edit services convergence-services", "set service-class voice dscp-rtp ef",
             "edit service-class voice", "set dscp-sip cs3")
    assert app.config.edit_path == ["services", "convergence-services", "service-class", "voice"]
    assert app.cli("show") == "dscp-rtp ef;\ndscp-sip cs3;"
    app.cli("up")
    assert app.config.edit_path == ["services", "convergence-services"]
    app.cli("exit")          # from a sub-level: one level up, still configuring
    assert app.config.edit_path == ["services"] and app.config.mode == "configure"
    app.cli("top")
    assert app.config.edit_path == []


def test_delete_and_rollback_and_history_bound():
    app = FakeApp()
    for i in range(MAX_ROLLBACK + 3):
        app.conf("set system host-name h%d" % i, "commit")
    recs = app.config.store.records()
    assert len(recs) == MAX_ROLLBACK + 1
    assert app.cli("rollback 1") == "load complete"
    assert app.config.candidate["system"]["host-name"] == "h%d" % (MAX_ROLLBACK + 1)
    assert app.cli("rollback %d" % MAX_ROLLBACK) == "load complete"
    assert app.cli("rollback %d" % (MAX_ROLLBACK + 1)).startswith("error: rollback %d" % (MAX_ROLLBACK + 1))
    app.cli("rollback 0")
    assert not app.config.dirty()
    app.cli("delete system host-name")
    assert app.cli("show") == ""
    assert app.cli("delete system host-name") == "error: system host-name: statement not found"
    app.cli("commit")
    assert app.hostname == "branch"
    assert len(app.flash.files) == MAX_ROLLBACK + 1   # old generations pruned, no temp files


def test_commit_confirmed_rolls_back_on_the_virtual_clock():
    app = FakeApp()
    app.conf("set system host-name stable", "commit")
    out = app.conf("set system host-name risky", "commit confirmed 2")[1]
    assert "rolled back in 2 minutes" in out and app.hostname == "risky"
    app.sched.run(until=119999)
    assert app.hostname == "risky"
    app.sched.run(until=120001)
    assert app.hostname == "stable"
    assert app.config.committed.get("system host-name") == "stable"
    assert app.config.candidate["system"]["host-name"] == "stable"
    assert "automatic rollback complete" in "\n".join(app.log.lines())
    assert reboot(app).hostname == "stable"


def test_commit_confirmed_is_confirmed_by_a_second_commit():
    app = FakeApp()
    app.conf("set system host-name stable", "commit", "set system host-name risky", "commit confirmed 1")
    assert "pending" in app.cli("status")
    app.sched.run(until=30000)
    assert app.cli("commit") == "commit complete"
    app.sched.run(until=600000)
    assert app.hostname == "risky"
    assert reboot(app).hostname == "risky"


def test_an_unconfirmed_commit_is_rolled_back_at_the_next_boot():
    app = FakeApp()
    app.conf("set system host-name stable", "commit", "set system host-name risky", "commit confirmed 5")
    app2 = reboot(app)             # power lost inside the window
    assert app2.hostname == "stable"
    assert "not confirmed before the restart" in "\n".join(app2.log.lines())
    assert reboot(app2).hostname == "stable"


def test_root_password_is_hashed_and_never_shown():
    app = FakeApp()
    app.config.mode = "configure"
    out, _ = app.config.commands.run(app, "set system root-authentication plain-text-password")
    assert out.question == "New password: " and out.secret
    assert app.cli("set system root-authentication plain-text-password", ["s3cret!", "s3cret!"]) == ""
    app.cli("commit")
    shown = app.cli("show system")
    assert "s3cret!" not in shown and "## SECRET-DATA" in shown and "$pbkdf2-sha256$" in shown
    assert app.config.login_required()
    assert app.config.check_login("root", "s3cret!")
    assert not app.config.check_login("root", "wrong")
    assert not app.config.check_login("admin", "s3cret!")
    for f in app.flash.files.values():
        assert b"s3cret!" not in f
    assert app.cli("set system root-authentication plain-text-password abc").startswith(
        "error: system root-authentication plain-text-password (secret): password must be")
    assert app.cli("set system root-authentication plain-text-password", ["abcdefg", "abcdefX"]) == \
        "error: passwords do not match"


def test_load_file_applies_all_or_nothing():
    app = FakeApp()
    text = "# boot config\nset system host-name fromfile\n\nset system syslog size 50\n"
    app.config.load_file("boot.conf", text)
    assert app.hostname == "fromfile" and app.log.max_entries == 50
    e = raises(ConfigError, app.config.load_file, "bad.conf",
               "set system host-name x\nset services convergence-services sip port 0\n")
    assert str(e) == ("config bad.conf line 2: services convergence-services sip port 0: "
                      "value out of range 1..65535")
    assert app.hostname == "fromfile"
    e = raises(ConfigError, app.config.load_file, "bad.conf", "frob system\n")
    assert "line 1" in str(e)


def test_size_bound_rejects_a_too_large_configuration():
    app = FakeApp()
    app.config.store.max_bytes = 300
    app.conf("set system host-name a", "commit")
    out = app.conf("set system domain-name " + "d" * 60 + ".example", "set services convergence-services sip domain " +
                   "e" * 60 + ".example", "set services convergence-services service-class x dscp-rtp 1",
                   "set services convergence-services service-class y dscp-rtp 2", "commit")[-1]
    assert out.startswith("error: configuration is") and "bytes flash allows" in out
    assert app.config.committed.get("system domain-name") is None


def test_completion_lists_keywords_names_and_values():
    app = FakeApp()
    words = [w for w, _ in complete(app.commands, app, "sh")]
    assert "show" in words
    words = [w for w, _ in complete(app.commands, app, "show ")]
    assert "configuration" in words and "configure" not in words
    app.conf("set services convergence-services service-class voice dscp-rtp ef")
    reg = app.config.commands
    items = complete(reg, app, "set services convergence-services service-class ")
    assert ("voice", "") in items and items[0][0] == "<name>"
    items = dict(complete(reg, app, "set services convergence-services sip port "))
    assert "<1..65535>" in items
    items = dict(complete(reg, app, "set system syslog level "))
    assert "warning" in items
    assert [w for w, _ in complete(reg, app, "set sys host")] == ["host-name"]
    assert [w for w, _ in complete(reg, app, "show | c")] == ["compare", "count"]
    assert [w for w, _ in complete(reg, app, "commit c")] == ["check", "confirmed", "comment"]
    assert "configuration" in [w for w, _ in complete(reg, app, "run show ")]


class _TtyStream:
    is_tty = True
    label = "test"

    def __init__(self):
        self.out = b""

    def write(self, data):
        self.out += data.encode() if isinstance(data, str) else bytes(data)


def test_the_prompt_redrawn_after_an_automatic_rollback_shows_the_restored_host_name():
    from firmware.console import Console
    app = FakeApp()
    stream = _TtyStream()
    app.console = c = Console(app, stream)
    app.conf("set system host-name stable", "commit")
    app.conf("set system host-name risky", "commit confirmed 1")
    app.config.mode = "operational"
    # the console is waiting at its prompt, with half a command typed
    c.editor.start(c.prompt())
    c.editor.feed(b"show ver")
    c._reading = c._at_prompt = True
    c._flush_editor()
    assert stream.out.endswith(b"root@risky> show ver")
    app.sched.run(until=60001)
    tail = stream.out.decode().split("automatic rollback complete")[1]
    assert tail.endswith("root@stable> show ver"), tail


def test_up_takes_a_number_of_levels_and_names_a_bad_word():
    app = FakeApp()
    app.conf("edit services convergence-services sip")
    assert app.config.edit_path == ["services", "convergence-services", "sip"]
    assert app.cli("up 2") == "" and app.config.edit_path == ["services"]
    assert app.cli("up x") == "error: up: expected a number of levels, not 'x'"
    assert app.cli("top now") == "error: syntax error: unexpected word 'now' after 'top'"
