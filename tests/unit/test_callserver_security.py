# portable: micropython
"""SIP access security (firmware/sipstack/security.py) on a fake `now`:
allow list, failed-authentication blocks, rate limit, bounded tables and
access log, the commit hook and the console commands."""
from firmware.config.engine import load_features
load_features()   # the schema in its boot order, whichever test module imports first
from firmware.sipstack import security as sec_mod  # noqa: E402
from firmware.sipstack.security import (  # noqa: E402
    Security, SecuritySettings, apply, parse_prefix, ipv4_halves, register_commands,
    MAX_TRACKED_SOURCES, MAX_FAILURE_SOURCES, MAX_FAILURE_STAMPS, MAX_BLOCKED, MAX_ACCESS_LOG,
    MAX_NOTED)
from firmware.commands import Registry, CommandError, complete  # noqa: E402
from firmware.config import schema as S  # noqa: E402
from firmware.config.tree import Config  # noqa: E402
from firmware.sched import VirtualClock  # noqa: E402
from tests.portable import raises  # noqa: E402

S_ = 1000  # ms per second


def make(allow=(), threshold=5, window=60, block=300, response="silent", requests=200,
         rate_window=2):
    st = SecuritySettings()
    st.allow_list = tuple(allow)
    st.threshold = threshold
    st.fail_window = window
    st.block_time = block
    st.response = response
    st.rate_requests = requests
    st.rate_window = rate_window
    logged = []
    sec = Security(log=lambda level, text: logged.append((level, text)))
    sec.configure(st)
    sec.logged = logged
    return sec


def reasons(sec):
    return [r[3] for r in sec.access_log()]


# --- configuration ---------------------------------------------------------------

def test_schema_declares_the_security_statements_with_defaults_and_ranges():
    base = "services convergence-services security "
    al = S.lookup(base + "allow-list")
    assert al.kind == "leaf-list" and al.max_items == 32
    assert al.type.parse("10.1.2.3") == "10.1.2.3/32"      # a bare address is a /32
    assert raises(ValueError, al.type.parse, "10.1.2.3/16")  # host bits set
    fr = base + "failed-registration "
    assert S.lookup(fr + "threshold").default == 5
    assert raises(ValueError, S.lookup(fr + "threshold").type.parse, "0")
    assert raises(ValueError, S.lookup(fr + "threshold").type.parse, "101")
    assert S.lookup(fr + "window").default == 60
    assert S.lookup(fr + "window").type.parse("3600") == 3600
    assert raises(ValueError, S.lookup(fr + "window").type.parse, "3601")
    assert S.lookup(fr + "block-time").default == 300
    assert raises(ValueError, S.lookup(fr + "block-time").type.parse, "86401")
    assert S.lookup(fr + "response").default == "silent"
    assert S.lookup(fr + "response").type.parse("rej") == "reject"
    assert S.lookup(base + "rate-limit requests").default == 200
    assert raises(ValueError, S.lookup(base + "rate-limit requests").type.parse, "100001")
    assert S.lookup(base + "rate-limit window").default == 2
    assert raises(ValueError, S.lookup(base + "rate-limit window").type.parse, "61")
    for path in ("", "allow-list", "failed-registration", "rate-limit", "rate-limit window"):
        assert S.lookup((base + path).strip()).help, path


def test_settings_from_the_committed_tree_and_the_commit_hook():
    empty = SecuritySettings(Config({}))
    assert empty.allow_list == () and empty.threshold == 5 and empty.fail_window == 60
    assert empty.block_time == 300 and empty.response == "silent"
    assert empty.rate_requests == 200 and empty.rate_window == 2
    tree = {"services": {"convergence-services": {"security": {
        "allow-list": ["10.1.0.0/16", "127.0.0.0/8"],
        "failed-registration": {"threshold": 3, "response": "reject"},
        "rate-limit": {"window": 5}}}}}

    class App:
        pass
    app = App()
    app.security = Security()
    app.clock = VirtualClock()
    app.commands = Registry()
    apply(app, Config({}), Config(tree))
    s = app.security_settings
    assert s.allow_list == ("10.1.0.0/16", "127.0.0.0/8") and s.threshold == 3
    assert s.response == "reject" and s.rate_window == 5 and s.rate_requests == 200
    assert app.security.settings is s
    assert app.security.gate("10.1.9.9", 5060, "REGISTER", 0) is None
    assert app.security.gate("192.0.2.1", 5060, "REGISTER", 0) == "drop"
    assert ("show", "security", "blocked") in app.commands.commands
    # back to the empty configuration: every source allowed again
    apply(app, Config(tree), Config({}))
    assert app.security.gate("192.0.2.1", 5060, "REGISTER", 1) is None
    # without a Security instance the hook only keeps the settings
    bare = App()
    apply(bare, Config({}), Config(tree))
    assert bare.security_settings.threshold == 3


def test_tcp_connection_cap_per_source_is_a_security_statement_pushed_to_the_transport():
    leaf = S.lookup("services convergence-services security tcp max-connections-per-source")
    assert leaf.default == 4 and leaf.help
    assert leaf.type.parse("16") == 16
    assert raises(ValueError, leaf.type.parse, "0")
    assert raises(ValueError, leaf.type.parse, "17")
    assert SecuritySettings(Config({})).tcp_per_source == 4
    tree = {"services": {"convergence-services": {"security": {
        "tcp": {"max-connections-per-source": 2}}}}}

    class App:
        pass

    class Tp:
        max_per_source = 4
    app = App()
    app.security = Security()
    app.sip_transports = Tp()
    apply(app, Config({}), Config(tree))
    assert app.security_settings.tcp_per_source == 2 and app.sip_transports.max_per_source == 2
    apply(app, Config(tree), Config({}))
    assert app.sip_transports.max_per_source == 4


def test_tcp_admit_refuses_disallowed_and_blocked_sources_logging_once_a_minute():
    sec = make(allow=("10.1.0.0/16",), threshold=1, response="reject")
    assert sec.admit("10.1.2.3", 5060, 0) is None
    for i in range(5):
        assert sec.admit("192.0.2.1", 40000 + i, 100 * i) == "not_allowed"
    assert sec.counters["tcp_not_allowed"] == 5 and sec.counters["not_allowed"] == 0
    assert reasons(sec) == ["TCP connection refused: not in allow list"]
    assert sec.admit("192.0.2.1", 40009, 60 * S_) == "not_allowed"     # a minute later
    assert reasons(sec).count("TCP connection refused: not in allow list") == 2
    assert sec.auth_failed("10.1.7.7", 5060, "2001", "wrong password", 61 * S_)
    # a block refuses connections whatever `response` says (no 403 on a connection)
    assert sec.admit("10.1.7.7", 5061, 62 * S_) == "blocked"
    assert sec.admit("10.1.7.7", 5062, 63 * S_) == "blocked"
    assert sec.counters["tcp_blocked"] == 2
    assert reasons(sec).count("TCP connection refused: blocked") == 1
    assert sec.admit("10.1.7.7", 5063, 61 * S_ + 300 * S_) is None     # the block ended
    stats = dict(sec.statistics())
    assert stats["TCP connections refused: not in allow list"] == 6
    assert stats["TCP connections refused: source blocked"] == 2


# --- allow list --------------------------------------------------------------------

def test_prefixes_parse_into_16_bit_halves():
    assert parse_prefix("0.0.0.0/0") == (0, 0, 0, 0)
    assert parse_prefix("10.1.2.3") == (0x0A01, 0x0203, 0xFFFF, 0xFFFF)
    assert parse_prefix("10.128.0.0/9") == (0x0A80, 0, 0xFF80, 0)
    assert parse_prefix("192.168.1.128/25") == (0xC0A8, 0x0180, 0xFFFF, 0xFF80)
    assert raises(ValueError, parse_prefix, "10.1.2/24")
    assert raises(ValueError, parse_prefix, "10.1.2.0/33")
    assert raises(ValueError, parse_prefix, "::1/128")
    assert ipv4_halves("255.255.255.255") == (0xFFFF, 0xFFFF)
    assert ipv4_halves("256.1.1.1") is None and ipv4_halves("host.example") is None
    assert ipv4_halves("::1") == (0x7F00, 1) and ipv4_halves("[::1]") == (0x7F00, 1)
    assert ipv4_halves("::FFFF:10.1.2.3") == (0x0A01, 0x0203)
    assert ipv4_halves("2001:db8::1") is None and ipv4_halves("fe80::1%eth0") is None


def test_allow_list_matches_prefixes_including_slash_0_and_slash_32():
    sec = make(allow=("10.1.0.0/16", "192.0.2.7/32", "10.128.0.0/9", "127.0.0.0/8"))
    for host in ("10.1.0.0", "10.1.255.255", "192.0.2.7", "10.128.0.1", "10.255.255.255",
                 "127.0.0.1", "::1", "::ffff:10.1.2.3"):
        assert sec.allowed(host), host
    for host in ("10.2.0.1", "10.0.255.255", "192.0.2.6", "192.0.2.8", "10.127.255.255",
                 "11.1.0.1", "::ffff:10.2.0.1", "2001:db8::1", "not-an-address"):
        assert not sec.allowed(host), host
    every = make(allow=("0.0.0.0/0",))
    assert every.allowed("1.2.3.4") and every.allowed("255.255.255.255")
    assert every.allowed("::ffff:8.8.8.8") and not every.allowed("2001:db8::1")
    # ::1 is 127.0.0.1: allowed only when loopback is listed
    assert not make(allow=("10.0.0.0/8",)).allowed("::1")
    none = make()
    assert none.allowed("192.0.2.1") and none.allowed("2001:db8::1")


def test_not_allowed_sources_are_dropped_counted_and_logged_once_a_minute_each():
    sec = make(allow=("10.1.0.0/16",))
    for i in range(50):
        assert sec.gate("192.0.2.9", 5060, "OPTIONS", i * 100) == "drop"
    assert sec.gate("10.1.0.5", 5060, "OPTIONS", 100) is None
    assert sec.counters["not_allowed"] == 50
    assert sec.access_log() == [(0, "192.0.2.9:5060", "", "not in allow list")]
    assert sec.gate("192.0.2.9", 5061, "INVITE", 59999) == "drop"
    assert len(sec.access_log()) == 1
    assert sec.gate("192.0.2.9", 5061, "INVITE", 60000) == "drop"
    assert sec.access_log()[-1] == (60000, "192.0.2.9:5061", "", "not in allow list")
    assert sec.gate("2001:db8::5", 5060, "REGISTER", 60001) == "drop"
    assert sec.access_log()[-1][1] == "[2001:db8::5]:5060"


def test_a_scan_from_many_sources_cannot_flush_the_access_log():
    sec = make(allow=("10.1.0.0/16",))
    sec.record("10.1.0.5", 5060, "alice", "registration: licence limit 100 reached", 0)
    for i in range(2000):
        assert sec.gate("198.51.%d.%d" % (i // 250, i % 250), 5060, "OPTIONS", 10 + i) == "drop"
    log = sec.access_log()
    assert len(log) == 1 + MAX_NOTED and log[0][2] == "alice"
    assert sec.counters["not_allowed"] == 2000
    assert sec.counters["access_log_suppressed"] == 2000 - MAX_NOTED
    assert sec.counters["access_log_dropped"] == 0
    # a minute later the budget is back
    assert sec.gate("198.51.200.1", 5060, "OPTIONS", 70000) == "drop"
    assert sec.access_log()[-1][1] == "198.51.200.1:5060"


# --- failed authentication ------------------------------------------------------------

def test_threshold_failures_block_the_source_and_are_logged():
    sec = make(threshold=5, window=60, block=300)
    for i in range(4):
        assert sec.auth_failed("192.0.2.50", 5070, "1001", "registration: wrong credentials",
                               i * S_) is False
        assert sec.gate("192.0.2.50", 5070, "REGISTER", i * S_ + 1) is None
    assert sec.blocked(4 * S_) == []
    assert sec.auth_failed("192.0.2.50", 5070, "1001", "registration: wrong credentials",
                           4 * S_) is True
    assert sec.blocked(4 * S_) == [("192.0.2.50", 300, 5)]
    assert sec.gate("192.0.2.50", 5070, "REGISTER", 5 * S_) == "drop"
    assert sec.gate("192.0.2.50", 5099, "INVITE", 5 * S_) == "drop"   # any port
    assert sec.gate("192.0.2.51", 5070, "REGISTER", 5 * S_) is None   # only that address
    log = sec.access_log()
    assert len(log) == 6
    assert log[0] == (0, "192.0.2.50:5070", "1001", "registration: wrong credentials")
    assert log[5] == (4 * S_, "192.0.2.50:5070", "1001", "blocked for 300 s after 5 failures")
    c = sec.counters
    assert c["auth_failures"] == 5 and c["blocks"] == 1 and c["blocked_dropped"] == 2
    assert sec.logged and sec.logged[-1][0] == "warning" and "192.0.2.50" in sec.logged[-1][1]


def test_failures_count_in_a_sliding_window():
    sec = make(threshold=5, window=60)
    h = "192.0.2.60"
    # four failures at t=0 have slid out exactly 60 s later
    for _ in range(4):
        sec.auth_failed(h, 5060, "u", "wrong", 0)
    assert sec.auth_failed(h, 5060, "u", "wrong", 60 * S_) is False
    # 1 at 61 s, 3 at 90 s, 1 at 125 s: five within 64 s but 4 within (65, 125]
    sec2 = make(threshold=5, window=60)
    sec2.auth_failed(h, 5060, "u", "wrong", 61 * S_)
    for _ in range(3):
        sec2.auth_failed(h, 5060, "u", "wrong", 90 * S_)
    assert sec2.auth_failed(h, 5060, "u", "wrong", 121 * S_) is False   # 61 s slid out
    # the window slides, it does not restart: 90, 90, 90, 121, 140 are five within 60 s
    assert sec2.auth_failed(h, 5060, "u", "wrong", 140 * S_) is True
    assert sec2.blocked(140 * S_) == [(h, 300, 5)]


def test_a_success_does_not_reset_the_failure_count():
    sec = make(threshold=3)
    h = "192.0.2.61"
    sec.auth_failed(h, 5060, "1001", "wrong", 0)
    sec.auth_failed(h, 5060, "1001", "wrong", 1000)
    sec.auth_ok(h, 1500)       # the attacker's own valid account
    assert sec.auth_failed(h, 5060, "1002", "wrong", 2000) is True
    assert sec.counters["auth_successes"] == 1


def test_a_block_expires_on_a_fake_clock_and_the_timer_cleans_up():
    sec = make(threshold=2, block=300)
    h = "192.0.2.70"
    assert sec.next_deadline() is None
    sec.auth_failed(h, 5060, "u", "wrong", 10 * S_)
    sec.auth_failed(h, 5060, "u", "wrong", 20 * S_)
    assert sec.next_deadline() <= 320 * S_
    assert sec.blocked(319 * S_ + 1) == [(h, 1, 2)]
    assert sec.gate(h, 5060, "REGISTER", 320 * S_ - 1) == "drop"
    sec.on_timer(320 * S_ - 1)
    assert sec.blocked(320 * S_ - 1) == [(h, 1, 2)]
    # the timer ends the block (and logs it) at its deadline
    t = sec.next_deadline()
    assert t is not None and t <= 320 * S_
    while sec.next_deadline() is not None and sec.next_deadline() <= 320 * S_:
        sec.on_timer(320 * S_)
    assert sec._blocked == {} and sec.counters["blocks_expired"] == 1
    assert sec.logged[-1] == ("notice", "security: block of 192.0.2.70 ended")
    assert sec.gate(h, 5060, "REGISTER", 320 * S_) is None
    # the failures were used up by the block: one more failure does not re-block
    assert sec.auth_failed(h, 5060, "u", "wrong", 321 * S_) is False
    # without the timer, gate() alone ends a block at its deadline
    sec.auth_failed(h, 5060, "u", "wrong", 322 * S_)
    assert sec.gate(h, 5060, "INVITE", 622 * S_ - 1) == "drop"
    assert sec.gate(h, 5060, "INVITE", 622 * S_) is None
    assert sec.counters["blocks_expired"] == 2
    # once everything has expired the timer has nothing left to do
    sec.on_timer(2000 * S_)
    assert sec.next_deadline() is None
    assert sec._rate == {} and sec._fail == {}


def test_silent_drops_reject_answers_403_and_ack_cancel_bye_pass():
    for response, verdict in (("silent", "drop"), ("reject", (403, "Forbidden"))):
        sec = make(threshold=1, response=response)
        h = "192.0.2.80"
        assert sec.auth_failed(h, 5060, "1001", "wrong", 0) is True
        for method in ("REGISTER", "INVITE", "OPTIONS", "SUBSCRIBE", None):
            assert sec.gate(h, 5060, method, 1000) == verdict, (response, method)
        for method in ("ACK", "CANCEL", "BYE"):
            assert sec.gate(h, 5060, method, 1000) is None, (response, method)
        key = "blocked_dropped" if response == "silent" else "blocked_rejected"
        assert sec.counters[key] == 5


def test_a_blocked_flooder_in_reject_mode_gets_drops_not_403s():
    sec = make(threshold=1, response="reject", requests=3, rate_window=2)
    h = "192.0.2.81"
    sec.auth_failed(h, 5060, "u", "wrong", 0)
    out = [sec.gate(h, 5060, "REGISTER", 100 + i) for i in range(6)]
    assert out == [(403, "Forbidden")] * 3 + ["drop"] * 3
    assert sec.counters["blocked_rejected"] == 3 and sec.counters["rate_limited"] == 3


# --- rate limit ---------------------------------------------------------------------------

def test_rate_limit_drops_beyond_the_limit_and_recovers_after_the_window():
    sec = make(requests=200, rate_window=2)
    h = "192.0.2.90"
    for i in range(200):
        assert sec.gate(h, 5060, "OPTIONS", i) is None
    assert sec.gate(h, 5060, "OPTIONS", 500) == "drop"
    assert sec.gate(h, 5060, "ACK", 600) == "drop"        # every method counts and is dropped
    assert sec.gate("192.0.2.91", 5060, "OPTIONS", 600) is None   # per source
    assert sec.counters["rate_limited"] == 2 and sec.counters["rate_limit_starts"] == 1
    # the next window is still limited (it follows one over the limit)...
    assert sec.gate(h, 5060, "OPTIONS", 2000) == "drop"
    # ...and after a window at or below the limit the source is served again
    assert sec.gate(h, 5060, "OPTIONS", 4000) is None
    assert sec.gate(h, 5060, "OPTIONS", 4001) is None
    recs = [r for r in sec.access_log() if r[1] == "192.0.2.90:5060"]
    assert recs == [(500, "192.0.2.90:5060", "", "rate limit: more than 200 requests in 2 s")]
    # a quiet source is served after any pause of one window
    sec2 = make(requests=3, rate_window=2)
    for i in range(5):
        sec2.gate(h, 5060, "OPTIONS", i)
    assert sec2.gate(h, 5060, "OPTIONS", 3999) == "drop"
    assert sec2.gate(h, 5060, "OPTIONS", 6000) is None


def test_a_steady_flood_stays_limited_with_one_record_per_episode():
    sec = make(requests=10, rate_window=1)
    h = "203.0.113.5"
    passed = 0
    for t in range(0, 10000, 20):          # 50 requests/s for 10 s
        if sec.gate(h, 5060, "INVITE", t) is None:
            passed += 1
    assert passed == 10                    # the first window's share only
    assert sec.counters["rate_limit_starts"] == 1
    assert sec.counters["rate_limited"] == 500 - 10
    assert len(sec.access_log()) == 1
    # it stops for a while, then floods again: a second episode, a second record
    for t in range(20000, 21000, 20):
        sec.gate(h, 5060, "INVITE", t)
    assert sec.counters["rate_limit_starts"] == 2 and len(sec.access_log()) == 2


# --- bounds ---------------------------------------------------------------------------------

def test_access_log_ring_keeps_the_newest_128_and_counts_the_dropped():
    sec = make()
    for i in range(200):
        sec.record("10.0.0.%d" % (i % 250), 5060, "u%d" % i, "registration: licence limit", i)
    log = sec.access_log()
    assert len(log) == MAX_ACCESS_LOG == 128
    assert log[0][0] == 72 and log[-1][0] == 199 and log[-1][2] == "u199"
    assert sec.counters["access_log_dropped"] == 72
    assert sec.counters["access_denied"] == 200


def test_user_names_from_the_wire_are_cut_and_cleaned():
    sec = make()
    sec.auth_failed("10.0.0.1", 5060, "evil\r\nuser\x1b[2J", "wrong", 0)
    sec.auth_failed("10.0.0.1", 5060, "x" * 500, "wrong", 1)
    sec.auth_failed("10.0.0.1", 5060, None, "wrong", 2)
    users = [r[2] for r in sec.access_log()]
    assert users[0] == "evil??user?[2J"
    assert len(users[1]) == 32 and users[1].endswith("~")
    assert users[2] == ""


def test_tracker_tables_stay_bounded_under_a_flood_of_10000_distinct_sources():
    sec = make(requests=3, rate_window=2)
    flooder = "203.0.113.66"
    for i in range(10):
        sec.gate(flooder, 5060, "INVITE", i)       # limited from its 4th request
    assert sec.gate(flooder, 5060, "INVITE", 10) == "drop"
    for i in range(10000):
        host = "10.%d.%d.%d" % (i // 65536, i // 256 % 256, i % 256)
        assert sec.gate(host, 5060, "OPTIONS", 100 + i // 10) is None
        assert len(sec._rate) <= MAX_TRACKED_SOURCES
    assert sec.counters["trackers_evicted"] >= 10000 - MAX_TRACKED_SOURCES
    # the limited flooder kept its tracker (a spoofed churn cannot reset it)
    assert sec.gate(flooder, 5060, "INVITE", 1200) == "drop"
    # failure trackers: one failure each from 1000 sources within the window
    fsec = make(threshold=5, window=3600)
    for i in range(1000):
        fsec.auth_failed("10.9.%d.%d" % (i // 256, i % 256), 5060, "u", "wrong", i)
        assert len(fsec._fail) <= MAX_FAILURE_SOURCES
    assert fsec.counters["failure_trackers_evicted"] >= 1000 - MAX_FAILURE_SOURCES
    assert fsec.blocked(1000) == []
    assert fsec._stamps == sum(len(ts) for ts in fsec._fail.values())


def test_a_full_failure_table_makes_room_for_a_source_whose_failures_slid_out():
    sec = make(threshold=5, window=60)
    sec.auth_failed("10.5.0.1", 5060, "u", "wrong", 0)
    for i in range(MAX_FAILURE_SOURCES - 1):
        sec.auth_failed("10.5.1.%d" % i, 5060, "u", "wrong", 50 * S_ + i)
    assert len(sec._fail) == MAX_FAILURE_SOURCES
    # 10.5.0.1's only failure left the window; the table is full of recent ones
    assert sec.auth_failed("10.5.0.1", 5060, "u", "wrong", 61 * S_) is False
    assert sec._fail["10.5.0.1"] == [61 * S_]
    assert len(sec._fail) <= MAX_FAILURE_SOURCES
    assert sec._stamps == sum(len(ts) for ts in sec._fail.values())


def test_a_high_threshold_cannot_multiply_the_failure_memory():
    sec = make(threshold=100, window=3600)
    for i in range(MAX_FAILURE_SOURCES):
        for k in range(60):
            sec.auth_failed("10.7.%d.%d" % (i // 256, i % 256), 5060, "u", "wrong", i * 60 + k)
            assert sec._stamps <= MAX_FAILURE_STAMPS
    assert sec._stamps == sum(len(ts) for ts in sec._fail.values())
    assert sec.counters["failure_trackers_evicted"] > 0
    # the source being counted keeps its tracker; it blocks at its 100th failure
    h = "10.7.0.%d" % (MAX_FAILURE_SOURCES - 1)
    assert len(sec._fail[h]) == 60
    blocked = [sec.auth_failed(h, 5060, "u", "wrong", 8000 + k) for k in range(40)]
    assert blocked == [False] * 39 + [True]
    assert sec._stamps == sum(len(ts) for ts in sec._fail.values())
    # the source being counted is never the one evicted, even when its last
    # failure is the oldest at the moment the budget runs out
    sec = make(threshold=100, window=3600)
    sec.auth_failed("10.6.0.1", 5060, "u", "wrong", 0)
    t = 1
    for i in range(11):
        for _ in range(99 if i < 10 else MAX_FAILURE_STAMPS - 1 - 990):
            sec.auth_failed("10.6.1.%d" % i, 5060, "u", "wrong", t)
            t += 1
    assert sec._stamps == MAX_FAILURE_STAMPS and sec.counters["failure_trackers_evicted"] == 0
    sec.auth_failed("10.6.0.1", 5060, "u", "wrong", t)
    assert sec._fail["10.6.0.1"] == [0, t]
    assert sec.counters["failure_trackers_evicted"] > 0
    assert sec._stamps == sum(len(ts) for ts in sec._fail.values()) <= MAX_FAILURE_STAMPS
    # everything slides out of the window, and the timer gives the memory back
    sec.on_timer(10 ** 8)
    assert sec._fail == {} and sec._stamps == 0


def test_the_block_table_when_full_lifts_the_block_ending_soonest():
    sec = make(threshold=1, block=300)
    for i in range(MAX_BLOCKED + 10):
        sec.auth_failed("10.8.%d.%d" % (i // 256, i % 256), 5060, "u", "wrong", i * S_)
    rows = sec.blocked((MAX_BLOCKED + 10) * S_)
    assert len(rows) == MAX_BLOCKED and len(sec._blocked) == MAX_BLOCKED
    assert sec.counters["blocks_evicted"] == 10 and sec.counters["blocks"] == MAX_BLOCKED + 10
    hosts = [r[0] for r in rows]
    assert "10.8.0.9" not in hosts and "10.8.0.10" in hosts   # the 10 earliest went
    assert "10.8.0.%d" % (MAX_BLOCKED + 9) in hosts


def test_unblock_lifts_the_block_and_forgets_the_failures():
    sec = make(threshold=2)
    h = "192.0.2.99"
    sec.auth_failed(h, 5060, "u", "wrong", 0)
    sec.auth_failed(h, 5060, "u", "wrong", 1)
    assert sec.unblock(h) is True and sec.unblock(h) is False
    assert sec.gate(h, 5060, "REGISTER", 2) is None
    assert sec.auth_failed(h, 5060, "u", "wrong", 3) is False
    assert sec.counters["unblocks"] == 1
    names = [n for n, _ in sec.statistics()]
    assert "blocks lifted by operator" in names
    assert dict(sec.statistics())["blocks lifted by operator"] == 1


# --- console ---------------------------------------------------------------------------------

class _App:
    def __init__(self, sec):
        self.clock = VirtualClock()
        self.commands = Registry()
        self.security = sec
        register_commands(self)

    def run(self, line):
        try:
            return self.commands.execute(self, line)
        except CommandError as e:
            return "error: %s" % e


def test_console_shows_the_access_log_and_the_blocked_sources_and_unblocks():
    sec = make(threshold=2, block=300)
    app = _App(sec)
    assert app.run("show security access-log") == "Access log: 0 records (at most 128)"
    assert app.run("show security blocked").startswith("Blocked sources: 0 (at most %d)" % MAX_BLOCKED)
    sec.auth_failed("10.0.0.9", 5062, "1001", "registration: wrong credentials", 5000)
    sec.auth_failed("10.0.0.9", 5062, "1001", "registration: wrong credentials", 6000)
    sec.record("10.0.0.4", 5060, "1002", "registration: more than 3 contacts", 7000)
    app.clock.advance_to(72000)
    out = app.run("show security access-log").split("\n")
    assert out[0] == "Access log: 4 records (at most 128)"
    assert out[1].split() == ["Time", "Age", "Source", "User", "Reason"]
    assert out[2].split()[:4] == ["5.000", "1m07s", "ago", "10.0.0.9:5062"]
    assert out[4].endswith("blocked for 300 s after 2 failures")
    assert "1002" in out[5] and "more than 3 contacts" in out[5]
    # the console's pipes work on it
    piped = app.run("show security access-log | match 10.0.0.9")
    assert len(piped.split("\n")) == 3
    assert app.run("show security access-log | count") == "Count: 6 lines"
    out = app.run("show security blocked").split("\n")
    assert out[0] == "Blocked sources: 1 (at most %d); block-time 300 s, response silent" % MAX_BLOCKED
    assert out[1].split() == ["Source", "Time", "left", "Failures"]
    assert out[2].split() == ["10.0.0.9", "3m54s", "2"]
    assert app.run("show security access-log extra") == \
        "error: syntax error: unexpected word 'extra' after 'show security access-log'"
    assert app.run("request security unblock").startswith("error: expected one address")
    assert app.run("request security unblock bogus") == "error: not an IP address: bogus"
    words = [w for w, _ in complete(app.commands, app, "request security unblock ")]
    assert "10.0.0.9" in words and "all" in words
    assert app.run("request security unblock 10.0.0.4") == "10.0.0.4 is not blocked"
    assert app.run("request security unblock 10.0.0.9") == "Unblocked 10.0.0.9"
    assert sec.blocked(app.clock.now()) == []
    sec.auth_failed("10.0.0.7", 5060, "u", "x", 73000)
    sec.auth_failed("10.0.0.7", 5060, "u", "x", 73001)
    assert app.run("request security unblock all") == "Unblocked 1 source"
    # ring overflow is reported in the header
    for i in range(130):
        sec.record("10.0.0.1", 5060, "u", "r", 80000 + i)
    assert "older dropped" in app.run("show security access-log").split("\n")[0]


def test_console_without_a_running_sip_service_says_so():
    app = _App(None)
    assert "not active" in app.run("show security blocked")
    assert "not active" in app.run("show security access-log")
    assert sec_mod.MAX_ACCESS_LOG == 128
