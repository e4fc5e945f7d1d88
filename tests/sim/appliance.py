"""Build a whole appliance in-process on the virtual clock, for simulation tests."""
from firmware import cli
from firmware.app import Appliance
from firmware.compat import Random
from firmware.sched import VirtualClock


def simulated(tmp_dir, seed=1, sim_options=None, args=()):
    """A booted, started Appliance on the sim board with a VirtualClock and a
    seeded random source; SIP binds an ephemeral loopback port."""
    opts = cli.parse(["--board", "sim", "--state", str(tmp_dir), "--console", "none",
                      "--sip-host", "127.0.0.1", "--sip-port", "0", "--seed", str(seed)] + list(args))
    app = Appliance(opts, clock=VirtualClock(), rng=Random(seed), sim_options=sim_options)
    app.boot()
    app.start()
    return app


class SimWorld:
    """Drives a simulated appliance (self.app, self.seed) on its virtual clock;
    the analog and call-server test worlds build on it."""

    def now(self):
        return self.app.clock.now()

    def run(self, ms):
        self.app.sched.run(until=self.app.clock.now() + ms)

    def run_until(self, cond, limit_ms, step=20):
        end = self.now() + limit_ms
        while self.now() < end:
            if cond():
                return self.now()
            self.run(step)
        assert cond(), "condition not met within %d ms (seed %d)" % (limit_ms, self.seed)
        return self.now()
