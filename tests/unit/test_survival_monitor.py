"""The survivability monitor's sans-I/O core (firmware/proxy/monitor.py) and
trunk routing (firmware/voice/routing.py), driven by hand on `now`: failure
after the failure timeout, failure codes are not alive, a passive failure
after an interval of silence, failback only after a good window and a good
hold-down, late answers keep a peer alive but do not count for failback,
the best live peer by priority, bounded probes in flight."""
# portable: micropython
from firmware.proxy.monitor import Monitor, Timers, MAX_OUTSTANDING, UP, DOWN, RECOVERING, HOLD
from firmware.voice.routing import trunk_routes

A = ("192.0.2.10", 5060)
B = ("192.0.2.20", 5060)


def _mon(peers=(("hq", 10, [A]),), **kw):
    return Monitor(Timers(**kw), list(peers), 0)


def _step(m, now, answer=None, status=200, delay=50):
    """Run to now: send the due probes; answer(addr) -> answer them after delay."""
    out = []
    for pid, name, addr in m.due(now):
        if answer is not None and answer(addr):
            m.answered(pid, status, now + delay)
    out.extend(m.on_timer(now + delay))
    return out


def _run(m, start, end, answer=None, status=200):
    changes = []
    t = start
    while t < end:
        changes.extend(_step(m, t, answer, status))
        t += 1000
    return changes


def test_failure_after_the_timeout_and_failure_codes_are_not_alive():
    m = _mon()
    assert _run(m, 0, 5000, lambda a: True) == [] and m.best == "hq"
    ch = _run(m, 5000, 9000, lambda a: True, status=503)
    assert len(ch) == 1 and ch[0][0] is None and "nothing alive heard" in ch[0][1], ch
    assert m.peers[0].state == DOWN and m.best is None


def test_passive_failure_after_an_interval_of_silence():
    m = _mon()
    _run(m, 0, 3000, lambda a: True)
    m.failed(A, "passive: transaction timeout", 2500)    # 450 ms after the last answer: no
    assert m.peers[0].state == UP
    m.failed(A, "passive: transaction timeout", 3100)    # 1050 ms after it
    assert m.peers[0].state == DOWN, m.peers[0].state
    assert m.on_timer(3100) == [(None, "peer hq passive: transaction timeout (192.0.2.10:5060)")]


def test_failback_needs_the_window_then_the_hold_down():
    m = _mon(window_ms=16000, hold_down_ms=10000)
    _run(m, 0, 3000, lambda a: True)
    _run(m, 3000, 10000)                                  # silence
    assert m.best is None
    ch = _run(m, 10000, 60000, lambda a: True)
    p = m.peers[0]
    assert len(ch) == 1 and ch[0][0] == "hq" and "failback" in ch[0][1], ch
    assert p.state == UP and 10000 + 16000 + 10000 <= p.since <= 10000 + 16000 + 10000 + 1100, p.since


def test_a_flapping_link_never_passes_the_window():
    m = _mon()
    _run(m, 0, 3000, lambda a: True)
    _run(m, 3000, 10000)
    n = [0]

    def half(a):
        n[0] += 1
        return n[0] % 2 == 0
    ch = _run(m, 10000, 600000, half)
    assert ch == [] and m.best is None and m.peers[0].state in (RECOVERING, HOLD, DOWN), ch


def test_late_answers_keep_alive_but_do_not_count_for_failback():
    m = _mon()
    _run(m, 0, 3000, lambda a: True)
    _run(m, 3000, 10000)
    t = 10000
    while t < 60000:
        for pid, name, addr in m.due(t):
            m.answered(pid, 200, t + 1500)              # answered after a retransmission
        m.on_timer(t + 1500)
        t += 1000
    assert m.best is None and m.peers[0].state in (RECOVERING, HOLD), m.peers[0].state


def test_the_best_live_peer_by_priority():
    m = _mon(peers=(("primary", 10, [A]), ("backup", 20, [B])))
    assert m.best == "primary"
    ch = _run(m, 0, 6000, lambda a: a == B)
    assert ch == [("backup", "peer backup start")], ch
    ch = _run(m, 6000, 12000)
    assert ch and ch[0][0] is None, ch


def test_probes_in_flight_are_bounded():
    m = _mon()
    for i in range(MAX_OUTSTANDING + 5):
        m.due(i * 1000)
    a = m.peers[0].addrs[0]
    assert len(a.inflight) == MAX_OUTSTANDING and a.skipped == 5 and a.sent == MAX_OUTSTANDING


class _T:
    def __init__(self, prefix, replace, priority):
        self.prefix = prefix
        self.replace_prefix = replace
        self.priority = priority


def test_trunk_routes_longest_prefix_priority_and_emergency_as_dialled():
    t9, t91, t9b, t78 = _T("9", "", 100), _T("91", "1", 100), _T("9", "", 50), _T("78", "8", 10)
    ts = [t9, t91, t9b, t78]
    r = trunk_routes(ts, "9155512", ("911", "112"))
    assert r == [(t91, "155512"), (t9b, "155512"), (t9, "155512")], r
    assert trunk_routes(ts, "78555", ("911",)) == [(t78, "8555")]
    r = trunk_routes(ts, "911", ("911", "112"))
    assert r == [(t78, "911"), (t9b, "911"), (t9, "911"), (t91, "911")], r
    assert trunk_routes(ts, "9", ()) == [] and trunk_routes(ts, "", ()) == []
