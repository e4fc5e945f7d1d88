"""Simulation backend: buses routed to register-level chip models (Zephyr-emulator
style).  The real drivers run unchanged on top.  See hal/sim/bus.py for the
buses and fault hooks, and the per-chip modules for the models."""
from hal.sim.bus import SimClock, SimSPI, SimI2C, SimPin, SimPCM


class World:
    """Everything the simulation made, for tests to drive and inspect.

    phones[port] / lines[port]: VirtualPhone / VirtualLine by FXS / FXO port;
    slics[port] / daas[port] / pses[i]: chip models; spis[(kind, port)]: buses;
    i2c[bus_id]; pins[num]; pcm.
    """

    def __init__(self, clock):
        self.clock = clock
        self.phones = {}
        self.lines = {}
        self.slics = {}
        self.daas = {}
        self.pses = []
        self.spis = {}
        self.chains = {}          # (spi bus, cs) -> DaisyChain of the modules sharing it
        self.i2c = {}
        self.pins = {}
        self.pcm = None


class Backend:
    name = "sim"

    def __init__(self, board, now, options=None):
        self.board = board
        self.now = now
        self.options = options or {}
        self.world = World(now)

    def _opts(self, label):
        return dict(self.options.get(label, {}))

    def _chip_opts(self, label):
        """(model options, SPI fault options) of a chip's sim_options entry."""
        opts = self._opts(label)
        return opts, {"spi_broken": opts.pop("spi_broken", False),
                      "spi_fail_next": opts.pop("spi_fail_next", 0)}

    def _bus_faults(self, spi, bus_opts):
        if bus_opts["spi_broken"]:
            spi.broken = True
        if bus_opts["spi_fail_next"]:
            spi.fail_next(bus_opts["spi_fail_next"])

    def slic(self, label, port, spec, law, country):
        from hal.sim.si3210 import Si3210Model
        opts, bus_opts = self._chip_opts(label)
        product = "Si3215" if spec.get("chip", "si3215").lower() == "si3215" else "Si3210"
        m = Si3210Model(self.now, product=product, pcm=self.world.pcm,
                        pcm_chan=spec["pcm_chan"], law=law, country=country, **opts)
        target = m
        if spec.get("chain") is not None:
            # daisy-chained modules on one chip select share one bus model
            from hal.sim.si3210 import DaisyChain
            key = (spec.get("spi", 0), spec["cs"])
            chain = self.world.chains.get(key)
            if chain is None:
                chain = self.world.chains[key] = DaisyChain()
            chain.add(spec["chain"], m)
            target = chain
        spi = SimSPI(target, self.now, cs_per_byte=True)
        self._bus_faults(spi, bus_opts)
        w = self.world
        w.slics[port] = m
        w.phones[port] = m.phone
        w.spis[("fxs", port)] = spi
        return spi

    def daa(self, label, port, spec, law, country):
        from hal.sim.si3050 import Si3050Model
        opts, bus_opts = self._chip_opts(label)
        m = Si3050Model(self.now, cid=spec.get("cid", 0), pcm=self.world.pcm,
                        pcm_chan=spec["pcm_chan"], law=law, country=country, **opts)
        # DAHDI raises CS after every byte for the DAA too; one frame for the
        # three bytes is the board setting cs_per_byte=False (the model takes both)
        spi = SimSPI(m, self.now, cs_per_byte=spec.get("cs_per_byte", True))
        self._bus_faults(spi, bus_opts)
        w = self.world
        w.daas[port] = m
        w.lines[port] = m.line
        w.spis[("fxo", port)] = spi
        return spi

    def i2c(self, bus_id):
        w = self.world
        if bus_id not in w.i2c:
            w.i2c[bus_id] = SimI2C(self.now)
        return w.i2c[bus_id]

    def pse(self, label, spec):
        from hal.sim.tps23861 import Tps23861Model
        opts = self._opts(label)
        i2c = self.i2c(spec["i2c"])
        if opts.pop("absent", False):
            self.world.pses.append(None)
            return i2c
        m = Tps23861Model(self.now, **opts)
        i2c.add(spec["addr"], m)
        self.world.pses.append(m)
        return i2c

    def pin(self, num, out=True):
        p = SimPin(num)
        self.world.pins[num] = p
        return p

    def pcm(self, spec):
        p = SimPCM(spec.get("channels", 8))
        self.world.pcm = p
        return p


def run(hw, ms, step=10, now=None):
    """Advance the sim clock by ms in steps, polling hw (a Hardware or a driver)
    after each step; returns every event seen.  For tests and simulations."""
    clock = now or hw.clock
    out = []
    end = clock.t + ms
    while clock.t < end:
        clock.t += step
        out.extend(hw.poll(clock.t))
    return out
