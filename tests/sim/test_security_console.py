"""Security statements through the real configuration engine of a booted
appliance (commit, precise errors, `show configuration`), and the security
console commands with the console's pipes and completion."""
import pytest

from firmware.sipstack.security import Security, MAX_BLOCKED
from firmware.commands import complete
from firmware.config.schema import ConfigError
from tests.sim.appliance import simulated

SEC = "set services convergence-services security "


@pytest.fixture
def app(tmp_path):
    a = simulated(tmp_path)
    a.sched.run(until=a.clock.now() + 10)      # let the started tasks reach their first wait
    if getattr(a, "security", None) is None:   # built by the SIP service once it is wired
        a.security = Security(a.log)
        a.security.configure(a.security_settings)
    yield a
    a.close()


def test_security_statements_commit_and_reach_the_running_security(app):
    s = app.security_settings
    assert (s.allow_list, s.threshold, s.fail_window, s.block_time, s.response) == \
        ((), 5, 60, 300, "silent")
    assert (s.rate_requests, s.rate_window) == (200, 2)
    app.config.load_file("sec.conf", "\n".join((
        SEC + "allow-list 127.0.0.0/8",
        SEC + "allow-list 10.1.0.0/16",
        SEC + "allow-list 192.0.2.7",
        SEC + "failed-registration threshold 3",
        SEC + "failed-registration window 120",
        SEC + "failed-registration block-time 600",
        SEC + "failed-registration response reject",
        SEC + "rate-limit requests 50",
        SEC + "rate-limit window 1")))
    s = app.security_settings
    assert s.allow_list == ("127.0.0.0/8", "10.1.0.0/16", "192.0.2.7/32")
    assert (s.threshold, s.fail_window, s.block_time, s.response) == (3, 120, 600, "reject")
    assert (s.rate_requests, s.rate_window) == (50, 1)
    sec = app.security
    assert sec.settings is s
    now = app.clock.now()
    assert sec.gate("192.0.2.7", 5060, "REGISTER", now) is None
    assert sec.gate("192.0.2.8", 5060, "REGISTER", now) == "drop"
    shown = app.commands.execute(app, "show configuration services convergence-services security")
    assert "allow-list [ 127.0.0.0/8 10.1.0.0/16 192.0.2.7/32 ];" in shown
    assert "response reject;" in shown


@pytest.mark.parametrize("line, error", [
    ("failed-registration threshold 0", "threshold 0: value out of range 1..100"),
    ("failed-registration window 3601", "window 3601: value out of range 1..3600"),
    ("failed-registration block-time 86401", "block-time 86401: value out of range 1..86400"),
    ("failed-registration response maybe", "expected one of: silent, reject"),
    ("rate-limit requests 0", "requests 0: value out of range 1..100000"),
    ("rate-limit window 61", "window 61: value out of range 1..60"),
    ("allow-list 10.1.2.3/16", "host bits set beyond /16"),
    ("allow-list 10.1.2/24", "not an IPv4 address"),
])
def test_bad_values_are_refused_with_a_precise_error(app, line, error):
    with pytest.raises(ConfigError) as e:
        app.config.load_file("bad.conf", SEC + line)
    assert error in str(e.value)
    assert app.security_settings.threshold == 5


def test_the_allow_list_is_bounded(app):
    lines = [SEC + "allow-list 10.0.%d.0/24" % i for i in range(33)]
    with pytest.raises(ConfigError) as e:
        app.config.load_file("big.conf", "\n".join(lines))
    assert "too many values (max 32)" in str(e.value) and "line 33" in str(e.value)


def test_console_commands_on_the_appliance(app):
    app.config.load_file("sec.conf", SEC + "failed-registration threshold 2")
    sec = app.security
    t = app.clock.now()
    sec.auth_failed("10.0.0.9", 5062, "1001", "registration: wrong credentials", t)
    sec.auth_failed("10.0.0.9", 5062, "1001", "registration: wrong credentials", t)
    sec.record("10.0.0.4", 5060, "1002", "registration: licence limit 100 reached", t)
    out = app.commands.execute(app, "sh sec acc | match licence")   # abbreviations and pipes
    assert "10.0.0.4:5060" in out and "1002" in out and "10.0.0.9" not in out
    out = app.commands.execute(app, "show security blocked")
    assert out.split("\n")[0] == \
        "Blocked sources: 1 (at most %d); block-time 300 s, response silent" % MAX_BLOCKED
    assert out.split("\n")[2].split() == ["10.0.0.9", "5m00s", "2"]
    words = [w for w, _ in complete(app.commands, app, "show security ")]
    assert words[:2] == ["access-log", "blocked"]
    assert "10.0.0.9" in [w for w, _ in complete(app.commands, app, "request security unblock 10.")]
    assert app.commands.execute(app, "request security unblock 10.0.0.9") == "Unblocked 10.0.0.9"
    assert app.commands.execute(app, "show security blocked | count") == "Count: 1 line"
