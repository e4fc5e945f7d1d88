# portable: micropython
"""The cooperative scheduler on the virtual clock: ordering, cancellation,
timeouts, exception isolation, restarts, the watchdog and determinism."""
from firmware import sched as S
from firmware import compat
from firmware.compat import Random
from tests.portable import raises


def _new(**kw):
    logs = []
    s = S.Scheduler(S.VirtualClock(), log=lambda lvl, msg: logs.append((lvl, msg)), **kw)
    return s, logs


def test_ready_tasks_run_in_spawn_order_and_sleeps_in_deadline_order():
    s, _ = _new()
    out = []

    async def sleeper(name, ms):
        out.append(("start", name, s.clock.now()))
        await s.sleep(ms)
        out.append(("wake", name, s.clock.now()))

    s.spawn(sleeper("a", 300), "a")
    s.spawn(sleeper("b", 100), "b")
    s.spawn(sleeper("c", 100), "c")
    s.run()
    assert out == [("start", "a", 0), ("start", "b", 0), ("start", "c", 0),
                   ("wake", "b", 100), ("wake", "c", 100), ("wake", "a", 300)]


def test_virtual_clock_jumps_when_everyone_waits():
    s, _ = _new()

    async def long_sleep():
        await s.sleep(24 * 3600 * 1000)
        return "done"

    t = s.spawn(long_sleep(), "long")
    assert s.run() == 24 * 3600 * 1000
    assert t.done() and t.result == "done"


def test_run_until_stops_at_the_limit_and_resumes():
    s, _ = _new()
    ticks = []

    async def ticker():
        while True:
            await s.sleep(1000)
            ticks.append(s.clock.now())

    s.spawn(ticker(), "ticker")
    s.run(until=3500)
    assert ticks == [1000, 2000, 3000]
    assert s.clock.now() == 3500
    s.run(until=5000)
    assert ticks == [1000, 2000, 3000, 4000, 5000]


def test_join_returns_the_result_and_reraises_the_error():
    s, _ = _new()
    seen = []

    async def child(v):
        await s.sleep(10)
        if v == "boom":
            raise ValueError("boom")
        return v * 2

    async def parent():
        seen.append(await s.spawn(child(21), "ok").join())
        try:
            await s.spawn(child("boom"), "bad").join()
        except ValueError as e:
            seen.append(str(e))

    s.spawn(parent(), "parent")
    s.run()
    assert seen == [42, "boom"]


def test_cancel_raises_inside_the_task_and_runs_its_cleanup():
    s, _ = _new()
    events = []

    async def worker():
        try:
            await s.sleep(10000)
            events.append("not reached")
        except S.CancelledError:
            events.append(("cancelled at", s.clock.now()))
            raise

    async def boss(t):
        await s.sleep(50)
        t.cancel()

    t = s.spawn(worker(), "worker")
    s.spawn(boss(t), "boss")
    assert s.run() == 50
    assert events == [("cancelled at", 50)]
    assert isinstance(t.error, S.CancelledError)
    assert s.tasks == []


def test_wait_for_times_out_and_cancels_the_child():
    s, _ = _new()
    out = []

    async def slow():
        try:
            await s.sleep(5000)
        except S.CancelledError:
            out.append("child cancelled")
            raise

    async def fast():
        await s.sleep(10)
        return "fast"

    async def main():
        out.append(await s.wait_for(fast(), 100))
        try:
            await s.wait_for(slow(), 100)
        except S.TimeoutError:
            out.append(("timeout", s.clock.now()))

    s.spawn(main(), "main")
    s.run()
    # the child's cancellation runs at its next step, after main has handled the timeout
    assert out == ["fast", ("timeout", 110), "child cancelled"]


def test_event_wait_with_timeout_and_set():
    s, _ = _new()
    ev = S.Event(s)
    out = []

    async def waiter():
        try:
            await ev.wait(100)
        except S.TimeoutError:
            out.append(("timeout", s.clock.now()))
        await ev.wait()
        out.append(("set", s.clock.now()))

    async def setter():
        await s.sleep(500)
        ev.set()

    s.spawn(waiter(), "waiter")
    s.spawn(setter(), "setter")
    s.run()
    assert out == [("timeout", 100), ("set", 500)]


def test_timed_out_waits_do_not_pile_up_on_an_event_that_is_never_set():
    s, _ = _new()
    ev = S.Event(s)
    timeouts = [0]

    async def poller():
        for _ in range(1000):
            try:
                await ev.wait(10)
            except S.TimeoutError:
                timeouts[0] += 1

    s.spawn(poller(), "poller")
    s.run()
    assert timeouts[0] == 1000
    assert len(ev._waiters) <= 1, len(ev._waiters)


def test_the_virtual_clock_stays_in_whole_milliseconds():
    s, _ = _new()
    seen = []

    async def sleeper():
        await s.sleep(10)
        seen.append(s.clock.now())

    s.spawn(sleeper(), "sleeper")
    s.run(until=2.5)
    assert s.clock.now() == 3 and isinstance(s.clock.now(), int)
    s.run()
    assert seen == [10] and isinstance(seen[0], int)


def test_a_crashing_task_is_logged_and_ended_without_stopping_others():
    s, logs = _new()
    out = []

    async def bad():
        await s.sleep(5)
        raise KeyError("oops")

    async def good():
        await s.sleep(10)
        out.append("good finished")

    t = s.spawn(bad(), "bad-task")
    s.spawn(good(), "good")
    s.run()
    assert out == ["good finished"]
    assert isinstance(t.error, KeyError)
    assert len(logs) == 1 and "bad-task" in logs[0][1] and "ended" in logs[0][1]


def test_restart_policy_recreates_the_task_with_backoff_then_gives_up():
    s, logs = _new()
    starts = []

    def factory():
        async def flaky():
            starts.append(s.clock.now())
            raise RuntimeError("flaky")
        return flaky()

    t = s.spawn(factory, "flaky", policy=S.RESTART)
    s.run()
    assert len(starts) == S.MAX_RESTARTS + 1
    assert starts[1] - starts[0] == S.RESTART_BACKOFF_MS
    assert t.done() and isinstance(t.error, RuntimeError)
    assert "restart 1/" in logs[0][1] and "ended" in logs[-1][1]


def test_restarts_count_crashes_within_a_window_not_crashes_ever():
    # issue 12 item 7: a task that crashes now and then is restarted every time
    s, logs = _new()
    starts = []

    def factory():
        async def rare():
            starts.append(s.clock.now())
            await s.sleep(S.RESTART_WINDOW_MS // 4)
            raise RuntimeError("rare")
        return rare()

    t = s.spawn(factory, "rare", policy=S.RESTART)
    s.run(until=S.RESTART_WINDOW_MS * 10)
    assert len(starts) >= 4 * S.MAX_RESTARTS, len(starts)   # far more crashes than MAX_RESTARTS
    assert not t.done() and t.restarts == len(starts) - 1
    assert not [m for _, m in logs if m.endswith("ended")], logs[-1]
    t.cancel()
    s.run()


def test_a_crash_loop_inside_the_window_still_ends_the_task():
    s, logs = _new()
    starts = []

    def factory():
        async def loop():
            starts.append(s.clock.now())
            if len(starts) == 3:
                await s.sleep(S.RESTART_WINDOW_MS)   # a quiet spell: earlier crashes age out
            raise RuntimeError("loop")
        return loop()

    t = s.spawn(factory, "loop", policy=S.RESTART)
    s.run()
    assert t.done() and isinstance(t.error, RuntimeError)
    # 2 crashes, a quiet minute, then MAX_RESTARTS restarts and the last crash ends it
    assert len(starts) == 2 + S.MAX_RESTARTS + 1, starts
    assert "ended" in logs[-1][1]


def test_task_table_is_bounded():
    s, _ = _new(max_tasks=3)

    async def idle():
        await s.sleep(1)

    for i in range(3):
        s.spawn(idle(), "t%d" % i)
    e = raises(S.TaskTableFull, s.spawn, idle(), "one-too-many")
    assert "one-too-many" in str(e)
    s.run()
    s.spawn(idle(), "fits-again")  # ended tasks free their slot
    s.run()


def test_queue_is_bounded_and_wakes_its_reader():
    s, _ = _new()
    q = S.Queue(s, 2)
    got = []

    async def reader():
        for _ in range(2):
            got.append(await q.get())

    async def writer():
        await s.sleep(10)
        q.put_nowait("a")
        q.put_nowait("b")
        raises(S.QueueFull, q.put_nowait, "c")

    s.spawn(reader(), "reader")
    s.spawn(writer(), "writer")
    s.run()
    assert got == ["a", "b"] and q.dropped == 1


def test_watchdog_reports_a_task_that_hogs_the_loop():
    s, _ = _new(hog_ms=50)
    hogs = []
    s.on_hog = lambda name, ms: hogs.append((name, ms))

    async def hog():
        s.clock.burn(250)  # stands for 250 ms of CPU inside one step
        await s.sleep(1)

    async def polite():
        await s.sleep(1)

    s.spawn(hog(), "hog")
    s.spawn(polite(), "polite")
    s.run()
    assert hogs == [("hog", 250)]


def test_awaiting_something_foreign_is_an_error_in_that_task_only():
    s, logs = _new()

    class Foreign:
        def __await__(self):
            yield "not a scheduler awaitable"

        __iter__ = __await__

    async def confused():
        await Foreign()

    t = s.spawn(confused(), "confused")
    s.run()
    assert isinstance(t.error, TypeError)


def test_deadlock_is_reported_instead_of_hanging():
    s, logs = _new()
    ev = S.Event(s)

    async def forever():
        await ev.wait()

    s.spawn(forever(), "forever")
    s.run()
    assert "deadlock" in logs[-1][1] and "forever" in logs[-1][1]


def _random_workload(seed):
    """A seeded mix of sleeps and spawns; returns (steps, digest of the trace).
    The trace is hashed as it goes, to keep the MicroPython heap small."""
    s, _ = _new()
    rng = Random(seed)
    h = compat.sha256()
    steps = [0]
    ids = [0]

    async def worker(n):
        for i in range(20):
            await s.sleep(rng.randbelow(500))
            h.update(b"%d,%d,%d;" % (s.clock.now(), n, i))
            steps[0] += 1
            if rng.randbelow(10) == 0 and ids[0] < 60:  # bounded total work
                ids[0] += 1
                s.spawn(worker(ids[0]), "w%d" % ids[0])

    for n in range(5):
        ids[0] += 1
        s.spawn(worker(ids[0]), "w%d" % ids[0])
    s.run()
    return steps[0], h.digest()


def test_runs_are_deterministic_for_a_seed():
    a = _random_workload(1234)
    b = _random_workload(1234)
    c = _random_workload(4321)
    assert a == b
    assert a[1] != c[1]
    assert a[0] >= 100
