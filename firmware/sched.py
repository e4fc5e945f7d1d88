"""The appliance's compact cooperative scheduler.

Why our own loop and not asyncio/uasyncio: a whole-appliance simulation must be
exactly reproducible from a seed on CPython *and* MicroPython.  asyncio and
uasyncio read their own clocks and order wake-ups differently; here one
injected clock owns time, ready tasks run in strict FIFO order, timers fire in
(deadline, sequence) order, and the virtual clock jumps straight to the next
deadline when every task waits.  The cost is small: tasks are plain `async def`
coroutines that await the objects below, and the whole loop is `run()`.

    sched = Scheduler(VirtualClock())          # or RealClock()
    t = sched.spawn(worker(), "worker")        # coroutine, or factory + RESTART
    await sched.sleep(500)                     # ms on the injected clock
    await sched.readable(sock)                 # select.poll readiness
    await t.join()   /   t.cancel()            # CancelledError inside the task
    await sched.wait_for(coro, 1000)           # TimeoutError after 1000 ms

Bounds: at most MAX_TASKS tasks (spawn raises TaskTableFull), Queue(maxsize)
raises QueueFull on overflow, a restarting task is ended when it crashes more
than MAX_RESTARTS times within RESTART_WINDOW_MS (a crash loop); crashes
further apart never add up, so a task that meets one bad input a day is
restarted every time, for ever.  A task that raises is logged by name and restarted or
ended by its policy; the loop itself never sees the exception.  A task step
that runs longer than `hog_ms` on the scheduler's clock is reported to the
watchdog hook `on_hog(task_name, ms)`.
"""
import select
import heapq

from firmware.compat import const, MonotonicMs, sleep_ms

MAX_TASKS = const(64)
MAX_RESTARTS = const(5)          # restarts allowed within RESTART_WINDOW_MS
RESTART_WINDOW_MS = const(60000)  # crashes older than this no longer count
RESTART_BACKOFF_MS = const(1000)
DEFAULT_HOG_MS = const(100)
_POLL_MAX_MS = const(1000)  # real clock: wake at least this often

END = const(0)      # policy: a task that raises is ended
RESTART = const(1)  # policy: re-created from its factory after a backoff

_NEW, _READY, _WAITING, _DONE = 0, 1, 2, 3


class CancelledError(Exception):
    pass


class TimeoutError(Exception):  # noqa: A001 - MicroPython has no builtin one
    """A wait's deadline passed; import it from here on both interpreters."""


class TaskTableFull(Exception):
    pass


class QueueFull(Exception):
    pass


# --- clocks ---------------------------------------------------------------

class RealClock:
    """Monotonic ms from ticks_ms (MicroPython) or monotonic_ns (CPython)."""

    virtual = False

    def __init__(self):
        self.now = MonotonicMs()


class VirtualClock:
    """Time that moves only when told: by the scheduler when all tasks wait,
    or by `burn(ms)`, which stands for CPU time spent inside a task step."""

    virtual = True

    def __init__(self, start=0):
        self._ms = start

    def now(self):
        return self._ms

    def advance_to(self, t):
        # whole milliseconds, like ticks_ms: a float deadline (a test's
        # run(until=now + 0.5 * x)) must not turn every later time into a float
        if t > self._ms:
            i = int(t)
            self._ms = i if i == t else i + 1     # ceil: never before a deadline

    def burn(self, ms):
        self._ms += int(ms)


# --- awaitables -------------------------------------------------------------

class _Suspend:
    """Yielded to the loop by every awaitable; says what the task waits for."""

    __slots__ = ("kind", "arg", "deadline")

    def __init__(self, kind, arg, deadline):
        self.kind = kind
        self.arg = arg
        self.deadline = deadline

    def __await__(self):
        return (yield self)

    __iter__ = __await__  # MicroPython's await goes through __iter__


class Task:
    __slots__ = ("name", "coro", "factory", "policy", "state", "result", "error",
                 "restarts", "_crashes", "_token", "_kind", "_joiners", "_send", "_throw",
                 "_io", "sched", "id")

    def __init__(self, sched, coro, name, factory, policy, tid):
        self.sched = sched
        self.coro = coro
        self.name = name
        self.factory = factory
        self.policy = policy
        self.id = tid
        self.state = _NEW
        self.result = None
        self.error = None
        self.restarts = 0    # restarts in all (for views)
        self._crashes = []   # clock times of its recent crashes, at most MAX_RESTARTS
        self._token = 0      # bumps on every wake, so stale timers and waits are ignored
        self._kind = None    # what the task waits for
        self._joiners = []   # (task, token) awaiting this task's end
        self._send = None
        self._throw = None
        self._io = None

    def done(self):
        return self.state == _DONE

    def cancel(self):
        """Raise CancelledError inside the task at its next resume."""
        if self.state != _DONE:
            self.sched._wake(self, None, CancelledError())

    def join(self, timeout_ms=None):
        """Await the task's end: its result, or its exception raised again."""
        return _Suspend(_WAIT_JOIN, self, self.sched._deadline(timeout_ms))

    def __repr__(self):
        return "<Task %s %s>" % (self.name, ("new", "ready", "waiting", "done")[self.state])


class Event:
    """A flag tasks can wait on; set() wakes every waiter."""

    def __init__(self, sched):
        self.sched = sched
        self.flag = False
        self._waiters = []  # (task, token)

    def set(self):
        self.flag = True
        waiters, self._waiters = self._waiters, []
        for task, token in waiters:
            self.sched._wake_if(task, token, True)

    def clear(self):
        self.flag = False

    def wait(self, timeout_ms=None):
        return _Suspend(_WAIT_EVENT, self, self.sched._deadline(timeout_ms))


class Queue:
    """A bounded FIFO; put_nowait raises QueueFull when maxsize items wait."""

    def __init__(self, sched, maxsize):
        self.maxsize = maxsize
        self._items = []
        self._event = Event(sched)
        self.dropped = 0

    def __len__(self):
        return len(self._items)

    def put_nowait(self, item):
        if len(self._items) >= self.maxsize:
            self.dropped += 1
            raise QueueFull("queue full (%d)" % self.maxsize)
        self._items.append(item)
        self._event.set()

    async def get(self, timeout_ms=None):
        while not self._items:
            self._event.clear()
            await self._event.wait(timeout_ms)
        return self._items.pop(0)


# --- the scheduler -----------------------------------------------------------

class Scheduler:
    def __init__(self, clock=None, log=None, hog_ms=DEFAULT_HOG_MS, max_tasks=MAX_TASKS):
        self.clock = clock or RealClock()
        self.log = log or _print_log
        self.hog_ms = hog_ms
        self.on_hog = None          # watchdog hook: on_hog(task_name, ms)
        self.max_tasks = max_tasks
        self.tasks = []             # live tasks, in spawn order
        self._ready = []            # FIFO of (task, token)
        self._timers = []           # heap of (deadline, seq, task, token)
        self._seq = 0
        self._next_id = 0
        self._poll = select.poll()
        self._io = {}               # fd -> [fd, reader (task, token), writer (task, token)]
        self._stopping = False
        self.current = None
        self.crashes = 0

    # -- task table
    def spawn(self, coro_or_factory, name, policy=END):
        """Start a task from a coroutine, or from a zero-argument factory that
        returns one (the RESTART policy needs the factory)."""
        if len(self.tasks) >= self.max_tasks:
            raise TaskTableFull("task table full (%d): cannot start %s" % (self.max_tasks, name))
        factory = None
        coro = coro_or_factory
        if callable(coro_or_factory):
            factory = coro_or_factory
            coro = factory()
        elif policy == RESTART:
            raise ValueError("RESTART policy needs a factory, not a coroutine")
        self._next_id += 1
        task = Task(self, coro, name, factory, policy, self._next_id)
        self.tasks.append(task)
        self._wake(task, None)
        return task

    def find(self, name):
        for t in self.tasks:
            if t.name == name:
                return t
        return None

    # -- awaitables
    def _deadline(self, timeout_ms):
        return None if timeout_ms is None else self.clock.now() + max(0, timeout_ms)

    def sleep(self, ms):
        return _Suspend(_WAIT_TIMER, None, self.clock.now() + max(0, ms))

    def sleep_until(self, deadline):
        return _Suspend(_WAIT_TIMER, None, deadline)

    def readable(self, obj, timeout_ms=None):
        """Await POLLIN on a socket, stream or fd; TimeoutError after timeout_ms."""
        return _Suspend(_WAIT_READ, obj, self._deadline(timeout_ms))

    def writable(self, obj, timeout_ms=None):
        return _Suspend(_WAIT_WRITE, obj, self._deadline(timeout_ms))

    async def wait_for(self, coro, timeout_ms, name="wait_for"):
        """Run coro as a child task; cancel it and raise TimeoutError if it has
        not finished within timeout_ms."""
        child = self.spawn(coro, name)
        try:
            return await child.join(timeout_ms)
        except TimeoutError:
            child.cancel()
            raise

    def stop(self):
        self._stopping = True

    # -- waking
    def _wake(self, task, value, error=None):
        if task.state == _DONE:
            return
        self._release_io(task)
        task._token += 1
        task._send = value
        task._throw = error
        task.state = _READY
        self._ready.append((task, task._token))

    def _wake_if(self, task, token, value, error=None):
        if task._token == token and task.state == _WAITING:
            self._wake(task, value, error)

    def _suspend(self, task, s):
        task.state = _WAITING
        task._kind = kind = s.kind
        token = task._token
        if s.deadline is not None:
            self._seq += 1
            heapq.heappush(self._timers, (s.deadline, self._seq, task, token))
        if kind == _WAIT_READ or kind == _WAIT_WRITE:
            obj = s.arg
            fd = obj if isinstance(obj, int) else obj.fileno()
            ent = self._io.get(fd)
            if ent is None:
                ent = self._io[fd] = [fd, None, None]  # poll by fd: works for any object on both
                self._poll.register(fd, 0)
            slot = 1 if kind == _WAIT_READ else 2
            if ent[slot] is not None and ent[slot][0] is not task:
                self._wake(task, None, OSError("another task already waits on fd %d" % fd))
                return
            ent[slot] = (task, token)
            task._io = (fd, slot)
            self._io_mask(ent)
        elif kind == _WAIT_JOIN:
            target = s.arg
            if target.state == _DONE:
                self._wake(task, target.result, target.error)
            else:
                target._joiners.append((task, token))
        elif kind == _WAIT_EVENT:
            if s.arg.flag:
                self._wake(task, True)
            else:
                # Drop waits that ended by timeout (stale token) first: a task
                # polling an event that is rarely set would otherwise grow the
                # list without bound.  Live entries are at most one per task.
                ev = s.arg
                if ev._waiters:
                    ev._waiters = [w for w in ev._waiters if w[0]._token == w[1]]
                ev._waiters.append((task, token))
        elif kind != _WAIT_TIMER:
            self._wake(task, None, TypeError("bad wait %r" % kind))

    def _io_mask(self, ent):
        self._poll.modify(ent[0], (select.POLLIN if ent[1] else 0) | (select.POLLOUT if ent[2] else 0))

    def _release_io(self, task):
        if task._io is None:
            return
        fd, slot = task._io
        task._io = None
        ent = self._io.get(fd)
        if ent is None:
            return
        ent[slot] = None
        if ent[1] is None and ent[2] is None:
            del self._io[fd]
            self._poll.unregister(ent[0])
        else:
            self._io_mask(ent)

    def _poll_io(self, wait_ms):
        for fd, ev in self._poll.poll(wait_ms):
            ent = self._io.get(fd)
            if ent is None:
                continue
            if ev & _IN_EVENTS and ent[1]:
                self._wake_if(ent[1][0], ent[1][1], True)
            if ev & _OUT_EVENTS and ent[2]:
                self._wake_if(ent[2][0], ent[2][1], True)

    # -- ending and crashing
    def _finish(self, task, result, error):
        task.state = _DONE
        task.result = result
        task.error = error
        self._release_io(task)
        if task in self.tasks:
            self.tasks.remove(task)
        joiners, task._joiners = task._joiners, []
        for j, token in joiners:
            self._wake_if(j, token, result, error)

    def _crashed(self, task, e):
        self.crashes += 1
        now = self.clock.now()
        recent = task._crashes
        while recent and now - recent[0] >= RESTART_WINDOW_MS:
            recent.pop(0)
        if task.policy == RESTART and len(recent) < MAX_RESTARTS:
            recent.append(now)
            task.restarts += 1
            self.log("error", "task %s crashed: %s; restart %d/%d within %d s in %d ms" % (
                task.name, _describe(e), len(recent), MAX_RESTARTS, RESTART_WINDOW_MS // 1000,
                RESTART_BACKOFF_MS))
            try:
                task.coro = task.factory()
            except Exception as e2:
                self.log("error", "task %s cannot restart: %s; ended" % (task.name, _describe(e2)))
                self._finish(task, None, e2)
                return
            self._suspend(task, _Suspend(_WAIT_TIMER, None, self.clock.now() + RESTART_BACKOFF_MS))
            return
        self.log("error", "task %s crashed: %s; ended" % (task.name, _describe(e)))
        self._finish(task, None, e)

    def _step(self, task):
        send, err = task._send, task._throw
        task._send = task._throw = None
        self.current = task
        started = self.clock.now()
        s = None
        try:
            s = task.coro.throw(err) if err is not None else task.coro.send(send)
        except StopIteration as e:
            self._finish(task, e.value, None)
        except CancelledError as e:
            self._finish(task, None, e)
        except Exception as e:  # isolation: a task's bug never reaches the loop
            self._crashed(task, e)
        self.current = None
        ran = self.clock.now() - started
        if ran > self.hog_ms and self.on_hog is not None:
            self.on_hog(task.name, ran)
        if s is not None:
            if isinstance(s, _Suspend):
                self._suspend(task, s)
            else:
                self._wake(task, None, TypeError("task %s awaited %r, not a scheduler awaitable" % (task.name, s)))

    # -- the loop
    def run(self, until=None):
        """Run until no task is left, stop() is called, or (when idle) the
        clock has reached `until` ms.  Returns the clock's time."""
        clock = self.clock
        timers = self._timers
        self._stopping = False
        while self.tasks and not self._stopping:
            now = clock.now()
            while timers and timers[0][0] <= now:  # due timers, in (deadline, seq) order
                _, _, task, token = heapq.heappop(timers)
                if task._kind == _WAIT_TIMER:
                    self._wake_if(task, token, None)
                else:
                    self._wake_if(task, token, None, TimeoutError())
            if self._ready:
                if self._io:
                    self._poll_io(0)
                batch, self._ready = self._ready, []
                for task, token in batch:
                    if task._token == token and task.state == _READY:
                        self._step(task)
                if until is not None and clock.now() > until:
                    break
                continue
            nxt = timers[0][0] if timers else None  # idle: everyone waits
            if until is not None and (nxt is None or nxt > until):
                if clock.virtual or now >= until:
                    clock.advance_to(until) if clock.virtual else None
                    break
                nxt = until
            if nxt is None and not self._io:
                self.log("error", "deadlock: %s wait on nothing that can happen" % (
                    ", ".join(t.name for t in self.tasks)))
                break
            if clock.virtual:
                if self._io:
                    self._poll_io(0 if nxt is not None else _POLL_MAX_MS)
                if not self._ready and nxt is not None:
                    clock.advance_to(nxt)  # jump straight to the next deadline
            else:
                wait = _POLL_MAX_MS if nxt is None else max(0, min(nxt - now, _POLL_MAX_MS))
                if self._io:
                    self._poll_io(wait)
                else:
                    sleep_ms(wait)
        return clock.now()


_WAIT_TIMER, _WAIT_READ, _WAIT_WRITE, _WAIT_JOIN, _WAIT_EVENT = 1, 2, 3, 4, 5
_IN_EVENTS = select.POLLIN | select.POLLHUP | select.POLLERR
_OUT_EVENTS = select.POLLOUT | select.POLLHUP | select.POLLERR


def _describe(e):
    return "%s: %s" % (type(e).__name__, e)


def _print_log(level, msg):
    print("[%s] %s" % (level, msg))
