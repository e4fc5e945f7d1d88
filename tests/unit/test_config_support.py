# portable: micropython
"""Shared fixtures for the config tests (no tests here): an in-memory flash
that can lose power after any byte or operation, and a small appliance stand-in
on the virtual clock with a real scheduler, log, random source and registry."""
from firmware.commands import Registry, CommandError, Prompt
from firmware.compat import Random
from firmware.config.engine import ConfigEngine
from firmware.config.schema import ConfigError
from firmware.log import Log
from firmware.sched import Scheduler, VirtualClock


class PowerCut(Exception):
    pass


class MemFlash:
    """The store's file API in memory.  budget = units left before the power
    goes: each written byte is one unit, each rename/remove/sync one more.  A
    write cut part-way leaves the bytes written so far."""

    def __init__(self, files=None, budget=None):
        self.files = dict(files or {})
        self.budget = budget
        self.dead = False
        self.used = 0

    def _alive(self):
        if self.dead:
            raise PowerCut("power is off")

    def _op(self):
        self._alive()
        if self.budget is not None:
            if self.budget <= 0:
                self.dead = True
                raise PowerCut("cut before an operation")
            self.budget -= 1
        self.used += 1

    def listdir(self):
        self._alive()
        return list(self.files.keys())

    def read(self, name, limit):
        self._alive()
        d = self.files.get(name)
        return None if d is None else d[:limit + 1]

    def write(self, name, data):
        self._alive()
        if self.budget is not None and self.budget < len(data):
            self.files[name] = bytes(data[:self.budget])
            self.used += self.budget
            self.budget = 0
            self.dead = True
            raise PowerCut("cut inside a write")
        self.files[name] = bytes(data)
        self.used += len(data)
        if self.budget is not None:
            self.budget -= len(data)

    def rename(self, old, new):
        self._op()
        self.files[new] = self.files.pop(old)

    def remove(self, name):
        self._op()
        self.files.pop(name, None)

    def sync(self):
        self._op()


class FakeApp:
    def __init__(self, flash=None, seed=1, clock=None):
        self.clock = clock or VirtualClock()
        self.log = Log(self.clock)
        self.sched = Scheduler(self.clock, log=self.log.write)
        self.rng = Random(seed)
        self.commands = Registry()
        self.user = "root"
        self.hostname = "branch"
        self.state_dir = None
        self.console = None
        self.flash = flash if flash is not None else MemFlash()
        self.config = ConfigEngine(self, flash=self.flash)
        self.config.boot()

    def cli(self, line, answers=()):
        """Run one console line in the current mode; errors come back as text."""
        reg = self.config.commands if self.config.mode == "configure" else self.commands
        answers = list(answers)
        try:
            out, _ = reg.run(self, line)
            while isinstance(out, Prompt):
                out = out.then(answers.pop(0) if answers else out.default)
        except (CommandError, ConfigError) as e:
            return "error: %s" % e
        return out

    def conf(self, *lines):
        """configure, run lines, return the list of outputs (mode left as is)."""
        self.config.mode = "configure"
        return [self.cli(l) for l in lines]


def reboot(app, flash=None):
    """A new appliance on the same flash contents (power stays on)."""
    return FakeApp(MemFlash(dict((flash or app.flash).files)), clock=app.clock)
