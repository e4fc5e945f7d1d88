"""The hardware service: builds the board's drivers, brings the chips up on the
scheduler, polls them, and hands their events to whoever listens.

Bring-up is non-blocking (each driver's start_init/poll_init runs from a
task), so the console is usable at once and a chip that never calibrates only
costs its own port: the failure lands in `faults`, in the log and on the
console (`show ports`), and every other port works.

Events go to listeners registered per (kind, port): the analog line agents
subscribe to their FXS/FXO port; `listen(kind, port, fn)` with fn(event,
value, now).  LED patterns are ticked from the same poll task (no threads).
"""
from firmware.compat import const
from firmware.textfmt import table as _table

POLL_MS = const(10)          # hook debounce, pulse dialling and DTMF need 10 ms sampling
PORT_LED_MS = const(100)     # how often the per-port activity LEDs follow the line state
INIT_POLL_MS = const(20)     # bring-up state machines (VBAT ramp, calibration, ISO link)
MAX_LISTENERS = const(32)

STATE_INIT, STATE_READY, STATE_FAULT = "initializing", "ready", "fault"


class HardwareService:
    def __init__(self, app, backend="sim", sim_options=None):
        from hal.builder import build
        self.app = app
        self.backend = backend
        clock = app.clock
        self.hw = build(app.board, backend, now=clock.now, sleep_ms=_no_blocking_sleep,
                        init=False, sim_options=sim_options)
        self.sim = self.hw.sim            # the simulated world (phones, lines, PoE devices) or None
        self.port_state = {}              # ("fxs", 1) -> initializing | ready | fault
        self.port_fault = {}
        self.listeners = {}               # (kind, port) -> [fn]
        self.last_event = {}              # (kind, port) -> (event, value, ms)
        self.poe_faults = {}              # PoE port -> last fault, for show poe
        for kind, ports in (("fxs", self.hw.fxs), ("fxo", self.hw.fxo)):
            for port in ports:
                self.port_state[(kind, port)] = STATE_INIT
        for msg in self.hw.faults:
            app.log.error("hardware: %s" % msg)
            self._mark_build_fault(msg)
        for drv in self.hw.poe:
            try:
                drv.init(clock.now())
            except Exception as e:  # an I2C error or an absent chip: report, keep booting
                self.fault("%s: %s" % (drv.name, e))
        leds = self.hw.leds
        if leds is not None:
            _try_led(leds, "power", "on")
            _try_led(leds, "status", "blink")

    def _mark_build_fault(self, msg):
        parts = msg.split(":", 1)[0].split()
        if len(parts) == 2 and parts[0] in ("fxs", "fxo") and parts[1].isdigit():
            key = (parts[0], int(parts[1]))
            self.port_state[key] = STATE_FAULT
            self.port_fault[key] = msg

    def fault(self, msg):
        self.hw.fault(msg)
        self.app.log.error("hardware: %s" % msg)

    def listen(self, kind, port, fn):
        n = sum(len(v) for v in self.listeners.values())
        if n >= MAX_LISTENERS:
            raise ValueError("too many hardware listeners (%d)" % MAX_LISTENERS)
        self.listeners.setdefault((kind, port), []).append(fn)

    def start(self):
        sched = self.app.sched
        from firmware.sched import RESTART
        for kind, ports in (("fxs", self.hw.fxs), ("fxo", self.hw.fxo)):
            for port, drv in ports.items():
                sched.spawn(self._bring_up(kind, port, drv), "init %s %d" % (kind, port))
        sched.spawn(self._poll_loop, "hardware", RESTART)

    async def _bring_up(self, kind, port, drv):
        key = (kind, port)
        sched = self.app.sched
        try:
            drv.start_init(self.app.clock.now())
            while not drv.poll_init(self.app.clock.now()):
                await sched.sleep(INIT_POLL_MS)
        except Exception as e:  # typed driver errors and bus errors alike
            self.port_state[key] = STATE_FAULT
            self.port_fault[key] = "%s %d: %s" % (kind, port, e) if not str(e).startswith(kind) else str(e)
            self.fault(self.port_fault[key])
            self._update_status_led()
            return
        self.port_state[key] = STATE_READY
        self.app.log.info("hardware: %s %d ready (%s)" % (kind, port, getattr(drv, "product", None) or drv.name))
        self._update_status_led()

    def _update_status_led(self):
        leds = self.hw.leds
        if leds is None or STATE_INIT in self.port_state.values():
            return
        _try_led(leds, "status", "fast" if STATE_FAULT in self.port_state.values() else "on")

    async def _poll_loop(self):
        sched = self.app.sched
        clock = self.app.clock
        hw = self.hw
        next_leds = 0
        while True:
            await sched.sleep(POLL_MS)
            now = clock.now()
            if hw.leds is not None and now >= next_leds:
                self._port_leds()
                next_leds = now + PORT_LED_MS
            for kind, port, ev in hw.poll(now, self._is_ready):  # also ticks the LEDs
                event, value = ev
                if kind == "poe":
                    self._poe_event(port, event, value)
                self.last_event[(kind, port)] = (event, value, now)
                for fn in self.listeners.get((kind, port), ()):
                    fn(event, value, now)

    def _port_leds(self):
        """Per-port activity LEDs: blink while ringing, on while off-hook or
        seized, off when idle; fast blink for a port that failed bring-up."""
        leds = self.hw.leds
        for (kind, port), state in self.port_state.items():
            name = "%s%d" % (kind, port)
            if name not in leds.pins:
                continue
            drv = (self.hw.fxs if kind == "fxs" else self.hw.fxo).get(port)
            if state == STATE_FAULT or drv is None:
                pattern = "fast" if state == STATE_FAULT else "off"
            elif state != STATE_READY:
                pattern = "off"
            elif kind == "fxs":
                pattern = "blink" if drv.ringing else "on" if drv.off_hook else "off"
            else:
                pattern = "on" if drv.off_hook else "blink" if self._fxo_ringing(port) else "off"
            leds.set(name, pattern)

    def _fxo_ringing(self, port):
        last = self.last_event.get(("fxo", port))
        return last is not None and last[0] == "ring" and self.app.clock.now() - last[2] < 6000

    def _poe_event(self, port, event, value):
        value = value[1]
        if event in ("overcurrent", "disconnect", "start_fault", "denied", "shed"):
            self.poe_faults[port] = event
            self.app.log.write("warning", "poe port %d: %s" % (port, event))
        elif event == "power_on":
            self.app.log.info("poe port %d: powered, %d mW allocated" % (port, value or 0))
        if self.hw.leds is not None and event == "power_on":
            _try_led(self.hw.leds, "poe%d" % port, "on")
        elif self.hw.leds is not None and event == "power_off":
            _try_led(self.hw.leds, "poe%d" % port, "off")

    def _is_ready(self, kind, port):
        return self.port_state.get((kind, port)) == STATE_READY

    # -- views for show commands
    def ports_table(self):
        rows = [("Port", "Type", "Chip", "State", "Hook", "Line", "Call", "Caller ID", "Last event")]
        gw = getattr(self.app, "gateway", None)
        hw = self.hw
        for kind, ports in (("fxs", hw.fxs), ("fxo", hw.fxo)):
            for port in sorted(ports):
                drv = ports[port]
                key = (kind, port)
                state = self.port_state.get(key, STATE_INIT)
                hook = line = "-"
                if state == STATE_READY:
                    if kind == "fxs":
                        hook = "off-hook" if drv.off_hook else "on-hook"
                        line = "ringing" if drv.ringing else _LINEFEEDS.get(drv.linefeed, str(drv.linefeed))
                    else:
                        hook = "seized" if drv.off_hook else "idle"
                        line = "-"
                last = self.last_event.get(key)
                call, cid = gw.port_status(kind, port) if gw is not None else ("-", "-")
                rows.append(("%s %d" % (kind, port), kind.upper(), getattr(drv, "product", None) or drv.chip
                             if kind == "fxs" else "Si3050", state, hook, line, call, _short(cid),
                             "%s %s" % (last[0], _short(last[1])) if last else "-"))
        for key, msg in sorted(self.port_fault.items()):
            if key[1] not in (hw.fxs if key[0] == "fxs" else hw.fxo):
                rows.append(("%s %d" % key, key[0].upper(), "-", STATE_FAULT, "-", "-", "-", "-", "-"))
        text = _table(rows)
        faults = [m for m in hw.faults]
        if faults:
            text += "\nFaults:\n" + "\n".join("  " + m for m in faults)
        return text


_LINEFEEDS = {0: "open", 1: "forward-active", 2: "forward-oht", 3: "tip-open", 4: "ringing",
              5: "reverse-active", 6: "reverse-oht", 7: "ring-open"}


def _short(v):
    if v is None:
        return ""
    if isinstance(v, dict):     # a decoded caller ID: what a person reads, never a repr
        v = " ".join(str(v[k]) for k in ("number", "name") if v.get(k)) or "(no number)"
    elif isinstance(v, (tuple, list)):
        v = " ".join(str(x) for x in v)
    s = str(v)
    return s if len(s) <= 24 else s[:21] + "..."


def _try_led(leds, name, pattern):
    try:
        leds.set(name, pattern)
    except (KeyError, ValueError):
        pass  # the board has no such LED


def _no_blocking_sleep(ms):
    raise RuntimeError("blocking bring-up is not used on the scheduler")


# --- console commands ------------------------------------------------------------

def _show_ports(app, args):
    if app.hardware is None:
        return "no hardware on this board"
    return app.hardware.ports_table()


def _show_poe(app, args):
    hws = app.hardware
    if hws is None or not hws.hw.poe:
        return "no PoE controller on this board"
    rows = [("Port", "Admin", "Class", "State", "Alloc W", "Power W", "Current mA", "Voltage V", "Last fault")]
    lines = []
    for drv in hws.hw.poe:
        for i, port in enumerate(drv.port_numbers):
            state = ("powered" if drv.powered[i] else "denied" if drv.denied[i]
                     else "searching" if drv.enabled[i] else "off")
            try:
                mw = drv.port_power_mw(i) if drv.powered[i] else 0
                ma = drv.port_current_ua(i) // 1000 if drv.powered[i] else 0
                mv = drv.port_voltage_mv(i) if drv.powered[i] else 0
            except OSError:
                mw = ma = mv = 0
                state += " (bus error)"
            cls = drv.port_class[i]
            last = hws.poe_faults.get(port, "-")
            rows.append((str(port), "enabled" if drv.enabled[i] else "disabled",
                         "-" if cls is None else str(cls), state, "%.1f" % (drv.alloc_mw[i] / 1000),
                         "%.1f" % (mw / 1000), str(ma), "%.1f" % (mv / 1000), last))
        try:
            t = drv.temperature_mc() / 1000
            temp = "%.1f C" % t
        except OSError:
            temp = "unreadable"
        lines.append("%s: budget %.1f W, allocated %.1f W, temperature %s" % (
            drv.name, drv.budget_mw / 1000, drv.allocated_mw() / 1000, temp))
    return _table(rows) + "\n" + "\n".join(lines)


def _request_poe(app, args):
    hws = app.hardware
    if len(args) != 2 or args[1] not in ("enable", "disable"):
        return "error: usage: request poe port N enable|disable"
    try:
        port = int(args[0])
        drv, idx = hws.hw.poe_port(port)
    except (ValueError, KeyError, AttributeError):
        return "error: no PoE port %s" % args[0]
    action = args[1]
    try:
        if action == "enable":
            drv.enable_port(idx)
        else:
            drv.disable_port(idx)
    except OSError as e:
        return "error: poe port %d: bus error (%s)" % (port, e)
    app.log.info("poe port %d %sd from the console" % (port, action))
    return "poe port %d %sd" % (port, action)


def _lazy(name):
    """A test or sim command of firmware/testcmds.py, loaded on first use."""
    def run(app, args):
        from firmware import testcmds
        return getattr(testcmds, name)(app, args)
    return run


def _args(choices):
    """A completer: a port number, then one of choices (word, help)."""
    def fn(app, args, partial):
        if not args:
            return [("<port>", "Port number")]
        if len(args) == 1:
            return [c for c in choices if c[0].startswith(partial)]
        return []
    return fn


def register_commands(reg):
    reg.register("show ports", _show_ports, "Show FXS/FXO ports: state, hook, line, last event")
    reg.register("show poe", _show_poe, "Show PoE ports: class, power, current, faults")
    reg.register("request poe port", _request_poe, "Enable or disable a PoE port: request poe port N enable|disable",
                 args=_poe_args)
    reg.register("test voice port", _lazy("test_port"),
                 "Test an FXS port: ring, tone dial|busy|ringback, loop (line measurements), stop",
                 args=_args((("ring", "Ring the phone with a caller ID"),
                             ("tone", "Play dial, busy or ringback tone"),
                             ("loop", "The SLIC's line measurements"),
                             ("stop", "End a test ring or tone"))))
    reg.register("test voice call", _lazy("test_call"),
                 "Place a call from an analog station to a station or number (simulated board)",
                 args=lambda app, a, p: [("<from>", "Analog station name or extension")] if not a
                 else [("<to>", "Station name, extension or number")] if len(a) == 1 else [])


def register_sim_commands(reg):
    """The simulated board's phones and lines, for a person at the console."""
    reg.register("request sim phone", _lazy("sim_phone"),
                 "Act on a simulated phone: off-hook, on-hook, flash, dial DIGITS",
                 args=_args((("off-hook", "Lift the handset"), ("on-hook", "Hang up"),
                             ("flash", "Hook flash"), ("dial", "Key DTMF digits"))))
    reg.register("request sim line", _lazy("sim_line"),
                 "Act on a simulated PSTN line: ring [caller-id NUMBER [NAME]], stop",
                 args=_args((("ring", "Ring the FXO port, with a caller ID"),
                             ("stop", "Stop ringing"))))


def _poe_args(app, args, partial):
    if not args:
        return [("<port>", "PoE port number")]
    if len(args) == 1:
        return [(w, h) for w, h in (("enable", "Turn the port's power on"),
                                    ("disable", "Turn the port's power off")) if w.startswith(partial)]
    return []
