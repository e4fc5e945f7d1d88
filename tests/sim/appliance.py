"""Build a whole appliance in-process on the virtual clock and a simulated
network (tests/sim/simnet.py), for simulation tests: no sockets, and the run
replays from its seed."""
from firmware import cli
from firmware.app import Appliance
from firmware.compat import Random
from firmware.sched import VirtualClock
from tests.sim.simnet import SimNetwork

APPLIANCE_HOST = "127.0.0.1"   # the appliance's address on the simulated network (a label)
SIP_PORT = 5060


def network(seed, trace=0):
    """The SimNetwork of a world: the appliance is host "appliance" at
    APPLIANCE_HOST; other hosts join when they bind (named by address)."""
    net = SimNetwork(seed, trace=trace)
    net.add_host("appliance", APPLIANCE_HOST)
    return net


def simulated(tmp_dir, seed=1, sim_options=None, args=(), net=None, sockets=False):
    """A booted, started Appliance on the sim board with a VirtualClock, a
    seeded random source and a SimNetwork (`net`, or a new one; app.network):
    SIP binds APPLIANCE_HOST:SIP_PORT on it.  sockets=True: no network, real
    loopback sockets on an ephemeral port (for tests/system, which mean to
    exercise them)."""
    if net is None and not sockets:
        net = network(seed)
    opts = cli.parse(["--board", "sim", "--state", str(tmp_dir), "--console", "none",
                      "--sip-host", APPLIANCE_HOST, "--sip-port", "0" if sockets else str(SIP_PORT),
                      "--seed", str(seed)] + list(args))
    app = Appliance(opts, clock=VirtualClock(), rng=Random(seed), sim_options=sim_options,
                    network=net)
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
