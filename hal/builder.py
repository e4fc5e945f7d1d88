"""The one builder: board description (boards/*.py data) + backend -> Hardware.

    hw = build("sim")                                 # virtual clock made for you
    hw = build(board_dict, "linux", now=clock_ms, sleep_ms=sleep)
    hw = build("srx210", "mpy", now=ticks, sleep_ms=time.sleep_ms)

Backends are imported lazily by name: 'sim' | 'linux' | 'mpy', so CPython never
imports machine and MicroPython never imports spidev.  A port whose chip is
missing or broken does not stop the build: its message goes to hw.faults
(e.g. "fxs 2: Si3215 not detected (reg 0 = 0x00)") and the rest works.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hal.drivers.si3210 import Si3210, SlicError
from hal.drivers.si3050 import Si3050, DaaError
from hal.drivers.tps23861 import TPS23861, PseError
from hal.drivers.led import Leds

MAX_FAULTS = const(32)     # recorded fault messages; further ones are counted only
BACKENDS = ("sim", "linux", "mpy")


class Hardware:
    """fxs / fxo: dict port -> driver; poe: list of TPS23861 drivers; leds: Leds;
    faults: readable messages for ports that failed; sim: the sim World or None."""

    def __init__(self, board, backend):
        self.board = board
        self.backend = backend
        self.fxs = {}
        self.fxo = {}
        self.poe = []
        self.leds = None
        self.pcm = None
        self.faults = []
        self.faults_dropped = 0
        self.bus_errors = 0
        self.sim = None
        self.clock = None

    def fault(self, msg):
        if len(self.faults) >= MAX_FAULTS:
            self.faults_dropped += 1
        else:
            self.faults.append(msg)

    def poe_port(self, port):
        """Global PoE port number -> (driver, index on the chip)."""
        for drv in self.poe:
            if port in drv.port_numbers:
                return drv, drv.port_numbers.index(port)
        raise KeyError("no PoE port %r" % (port,))

    def poll(self, now, ready=None):
        """Poll every port; returns a list of (kind, port, event).  Bus errors are
        counted in bus_errors and never raised.  ready(kind, port), when given,
        selects the FXS/FXO ports to poll (e.g. those whose bring-up finished)."""
        out = []
        for kind, ports in (("fxs", self.fxs), ("fxo", self.fxo)):
            for port, drv in ports.items():
                if ready is not None and not ready(kind, port):
                    continue
                try:
                    for ev in drv.poll(now):
                        out.append((kind, port, ev))
                except OSError:
                    self.bus_errors += 1
        for drv in self.poe:
            try:
                for ev in drv.poll(now):
                    out.append(("poe", ev[1][0], ev))
            except OSError:
                self.bus_errors += 1
        if self.leds is not None:
            self.leds.tick(now)
        return out


def _backend(name, board, now, options):
    if name == "sim":
        from hal.sim import Backend
        return Backend(board, now, options)
    if name == "linux":
        from hal.linux import Backend
        return Backend(board)
    if name == "mpy":
        from hal.mpy import Backend
        return Backend(board)
    raise ValueError("unknown backend %r (have %s)" % (name, ", ".join(BACKENDS)))


def _msg(label, e):
    s = str(e)
    if isinstance(e, OSError):
        return "%s: bus error (%s)" % (label, s)
    if s.startswith(label):
        return s
    return "%s: %s" % (label, s)


def build(board, backend="sim", now=None, sleep_ms=None, init=True, sim_options=None,
          country=None, law=None):
    """Build a Hardware object.

    board: a board dict or a board name (boards.load).  now: callable -> ms;
    sleep_ms: callable(ms) used only by the blocking bring-up (init=True).  For
    'sim' both default to a fresh SimClock.  sim_options: {"fxs 2": {...model
    kwargs or spi_broken/spi_fail_next...}, "fxo 1": {...}, "poe 1": {...}}.
    """
    if isinstance(board, str):
        import boards
        board = boards.load(board)
    if backend == "sim" and now is None:
        from hal.sim.bus import SimClock
        now = SimClock()
    if backend == "sim" and sleep_ms is None and hasattr(now, "sleep"):
        sleep_ms = now.sleep
    if now is None or (init and sleep_ms is None):
        raise ValueError("backend %r needs now= and sleep_ms= callables" % backend)
    be = _backend(backend, board, now, sim_options)
    hw = Hardware(board, backend)
    hw.clock = now
    country = country or board.get("country", "US")
    law = law or board.get("law", "ulaw")
    pcm_spec = board.get("pcm")
    if pcm_spec:
        try:
            hw.pcm = be.pcm(pcm_spec)
        except (NotImplementedError, OSError) as e:
            hw.fault("pcm: %s" % e)
    if backend == "sim":
        hw.sim = be.world

    chains = {}       # (spi bus, cs) -> state shared by daisy-chained modules
    sim_spis = {}
    if backend == "sim":
        # every chip exists before the first bring-up (a daisy chain's modules
        # all hear the broadcast that turns daisy-chain mode on)
        for spec in board.get("fxs", ()):
            sim_spis[spec["port"]] = be.slic("fxs %d" % spec["port"], spec["port"], spec,
                                             law, country)
    for spec in board.get("fxs", ()):
        port = spec["port"]
        label = "fxs %d" % port
        chip = "Si3215" if spec.get("chip", "si3215").lower() == "si3215" else "Si3210"
        try:
            if backend == "sim":
                spi = sim_spis[port]
            else:
                spi = be.spi(spec.get("spi", 0), spec["cs"], True)
            group = None
            if spec.get("chain") is not None:
                group = chains.setdefault((spec.get("spi", 0), spec["cs"]), {})
            drv = Si3210(spi, hw.pcm, spec["pcm_chan"], spec.get("timeslot"), country, law,
                         name=label, chip=chip, chain=spec.get("chain"), chain_group=group,
                         dtmf=spec.get("dtmf", "auto"), vmwi=spec.get("vmwi", "fsk"),
                         dcdc_pwm=spec.get("dcdc_pwm", 0xFF),
                         dcdc_engage=spec.get("dcdc_engage", 0x19),
                         loop_current_ma=spec.get("loop_current_ma", 23))
            if init:
                drv.init(now, sleep_ms)
            hw.fxs[port] = drv
        except (SlicError, OSError) as e:
            hw.fault(_msg(label, e))

    for spec in board.get("fxo", ()):
        port = spec["port"]
        label = "fxo %d" % port
        try:
            if backend == "sim":
                spi = be.daa(label, port, spec, law, country)
            else:
                spi = be.spi(spec.get("spi", 0), spec["cs"], spec.get("cs_per_byte", True))
            drv = Si3050(spi, spec.get("cid", 0), hw.pcm, spec["pcm_chan"], spec.get("timeslot"),
                         country, law, name=label,
                         supervision=spec.get("supervision", ("battery", "loop", "busy")),
                         answer_polarity=spec.get("answer_polarity", False),
                         polarity_debounce_ms=spec.get("polarity_debounce_ms", 64),
                         loop_settle_ms=spec.get("loop_settle_ms", 650))
            if init:
                drv.init(now, sleep_ms)
            hw.fxo[port] = drv
        except (DaaError, OSError) as e:
            hw.fault(_msg(label, e))

    for i, spec in enumerate(board.get("poe", ())):
        label = "poe %d" % (i + 1)
        try:
            if backend == "sim":
                i2c = be.pse(label, spec)
            else:
                i2c = be.i2c(spec["i2c"])
            drv = TPS23861(i2c, spec["addr"], name=label, mode=spec.get("mode", "semi-auto"),
                           budget_w=spec.get("budget_w", 60),
                           priorities=spec.get("priorities", (0, 1, 2, 3)),
                           port_numbers=tuple(spec["ports"]),
                           shunt_mohm=spec.get("shunt_mohm", 255),
                           device_id=spec.get("device_id", 1))
            if init:
                drv.init(now())
            hw.poe.append(drv)
        except (PseError, OSError) as e:
            hw.fault(_msg(label, e))

    leds = board.get("leds")
    if leds:
        pins = {}
        for name, num in leds.items():
            try:
                pins[name] = be.pin(num, True)
            except (OSError, ValueError) as e:
                hw.fault(_msg("led %s" % name, e))
        hw.leds = Leds(pins, board.get("leds_active_low", False))
    return hw
