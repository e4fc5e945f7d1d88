"""TI TPS23861 quad PoE PSE (I2C) driver.

Register facts: HARDWARE.md and Linux drivers/hwmon/tps23861.c (operating mode
0x12 two bits per port, detect/class restart 0x18 writes BIT(n)|BIT(n+4),
power enable 0x19 b0-3 on / b4-7 off, 14-bit little-endian readings, 3.662 mV
and 61.039 uA (255 mOhm shunt) per LSB, temperature raw*0.652-20 C, power
status 0x10: b0-3 power enabled, b4-7 power good).

Event registers (HARDWARE.md): 0x03 (clear on read) b0-3 power-enable change,
b4-7 power-good change; 0x05 (clear on read) b0-3 detect done, b4-7 class
done; 0x07 (clear on read) b0-3 overcurrent (ICUT), b4-7 disconnect; 0x09
(clear on read) b0-3 start fault, b4-7 ILIM current-limit shutdown; 0x0B
(clear on read) supply events: b4 VPUV, b5 VDUV (the chip reset to its
defaults: the driver configures it again), b7 thermal shutdown.  0x1A b7
clears all.  After any power event the driver reconciles its budget with
the chip's power status (0x10), so an allocation never outlives the power.
0x17 b0 (current-sense select) is written from the board's shunt, as Linux
does (0 = 255 mOhm, 1 = 250 mOhm).  0x43 bits 7:5 must be the expected
device ID (board setting device_id; 1 by default: UNVERIFIED, check the
datasheet), bits 4:0 are the silicon revision.

Power budget (per chip): each powered port holds an allocation by class
(class 0 and 3: 15.4 W, 1: 4 W, 2: 7 W, 4: 30 W).  Priority 0 is the most
important.  The driver runs the chip in semi-auto mode by default, so it
decides before power flows:
  - a newly classified port that fits in the remaining budget is powered;
  - otherwise, if powered ports of strictly lower priority (higher number)
    together free enough, they are shed (lowest priority first, then highest
    port index) and the new port is powered;
  - otherwise the new port is refused (event 'denied'); it is retried when
    budget is freed (a port disconnects, faults, is shut down or disabled).
In 'auto' mode the chip powers ports itself; the same rule then sheds after
the fact.  Events from poll(now): (kind, (port, value)) with kind in
detected, classified, power_on, power_off, denied, shed, overcurrent,
disconnect, start_fault, current_limit; chip-wide supply events carry the
chip's first port number: supply ('thermal' | 'vpuv' | 'reset').
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_REG_IRQ = const(0x00)
_REG_IRQ_EN = const(0x01)
_REG_POWER_EVENT = const(0x03)
_REG_DET_EVENT = const(0x05)
_REG_FAULT_EVENT = const(0x07)
_REG_START_EVENT = const(0x09)
_REG_SUPPLY_EVENT = const(0x0B)
_REG_PORT_STATUS = const(0x0C)
_REG_POWER_STATUS = const(0x10)
_REG_MODE = const(0x12)
_REG_DISC_EN = const(0x13)
_REG_DETCLS_EN = const(0x14)
_REG_GENERAL_MASK = const(0x17)
_SHUNT_250 = const(0x01)
_REG_RESTART = const(0x18)
_REG_POWER_EN = const(0x19)
_REG_RESET = const(0x1A)
_REG_TEMP = const(0x2C)
_REG_VIN = const(0x2E)
_REG_I_BASE = const(0x30)
_REG_V_BASE = const(0x32)
_REG_DEVID = const(0x43)

_CLEAR_ALL = const(0x80)
_IRQ_POWER = const(0x03)
_IRQ_FAULT = const(0x60)        # b5 ICUT/ILIM, b6 start fault
_IRQ_SUPPLY = const(0x80)
_SUP_VPUV = const(0x10)
_SUP_VDUV = const(0x20)
_SUP_TSD = const(0x80)
DEVICE_ID = const(1)            # 0x43 bits 7:5 expected by default (unverified)
_MASK14 = const(0x3FFF)
NUM_PORTS = const(4)

MODE_OFF = const(0)
MODE_MANUAL = const(1)
MODE_SEMI = const(2)
MODE_AUTO = const(3)
_MODES = {"off": MODE_OFF, "manual": MODE_MANUAL, "semi-auto": MODE_SEMI,
          "semi": MODE_SEMI, "auto": MODE_AUTO}

DETECT_VALID = const(4)
DETECT_NAMES = {0: "unknown", 1: "short", 3: "r-low", 4: "valid", 5: "r-high",
                6: "open", 8: "mosfet-fault"}
# status class code -> PoE class
CLASS_CODES = {1: 1, 2: 2, 3: 3, 4: 4, 6: 0}
CLASS_MW = (15400, 4000, 7000, 15400, 30000)   # allocation by class 0..4
MAX_EVENTS = const(32)                          # full -> drop oldest, count

EV_DETECTED = "detected"
EV_CLASSIFIED = "classified"
EV_POWER_ON = "power_on"
EV_POWER_OFF = "power_off"
EV_DENIED = "denied"
EV_SHED = "shed"
EV_OVERCURRENT = "overcurrent"
EV_DISCONNECT = "disconnect"
EV_START_FAULT = "start_fault"
EV_CURRENT_LIMIT = "current_limit"
EV_SUPPLY = "supply"

_NO_EVENTS = ()


class PseError(Exception):
    pass


class NotDetected(PseError):
    pass


def _u14(b):
    return (b[0] | (b[1] << 8)) & _MASK14


class TPS23861:
    def __init__(self, i2c, addr=0x30, name="poe", mode="semi-auto", budget_w=60,
                 priorities=(0, 1, 2, 3), shunt_mohm=255, port_numbers=None,
                 device_id=DEVICE_ID):
        if mode not in _MODES:
            raise ValueError("mode must be one of %s" % ", ".join(sorted(_MODES)))
        self.i2c = i2c
        self.addr = addr
        self.name = name
        self.mode = _MODES[mode]
        self.budget_mw = int(budget_w * 1000)
        self.priorities = list(priorities)
        if shunt_mohm not in (250, 255):
            raise ValueError("shunt_mohm must be 250 or 255")
        self.shunt_mohm = shunt_mohm
        self.current_lsb_nA = 61039 if shunt_mohm == 255 else 62260
        self.expected_id = device_id
        self.resets_seen = 0
        self.port_numbers = port_numbers or tuple(range(1, NUM_PORTS + 1))
        self.enabled = [True] * NUM_PORTS
        self.port_class = [None] * NUM_PORTS
        self.powered = [False] * NUM_PORTS
        self.alloc_mw = [0] * NUM_PORTS
        self.denied = [False] * NUM_PORTS
        self.device_id = None
        self._events = []
        self.events_dropped = 0

    # ---- I2C helpers ----------------------------------------------------------------
    def read(self, reg, n=1):
        b = self.i2c.read_reg(self.addr, reg, n)
        return b[0] if n == 1 else b

    def write(self, reg, value):
        self.i2c.write_reg(self.addr, reg, bytes((value & 0xFF,)))

    # ---- bring-up --------------------------------------------------------------------
    def init(self, now=0):
        try:
            dev = self.read(_REG_DEVID)
        except OSError as e:
            raise NotDetected("%s: TPS23861 not answering at I2C 0x%02x (%s)" % (self.name, self.addr, e))
        if dev in (0x00, 0xFF) or (dev >> 5) != self.expected_id:
            raise NotDetected("%s: TPS23861 not detected (reg 0x43 = 0x%02x, device ID %d, want %d)"
                              % (self.name, dev, dev >> 5, self.expected_id))
        self.device_id = dev
        self.write(_REG_RESET, _CLEAR_ALL)
        self._configure()
        return True

    def _configure(self):
        """Everything a chip reset undoes: shunt select, interrupts, enables,
        operating mode, then detection restarted on the enabled ports."""
        g = self.read(_REG_GENERAL_MASK)
        g = (g | _SHUNT_250) if self.shunt_mohm == 250 else (g & ~_SHUNT_250 & 0xFF)
        self.write(_REG_GENERAL_MASK, g)
        self.write(_REG_IRQ_EN, 0xFF)
        self.write(_REG_DISC_EN, 0x0F)
        self.write(_REG_DETCLS_EN, 0xFF)
        self.set_mode_all(self.mode)
        v = 0
        for p in range(NUM_PORTS):
            if self.enabled[p]:
                v |= (1 << p) | (1 << (p + 4))
        self.write(_REG_RESTART, v)

    def set_mode_all(self, mode):
        v = 0
        for p in range(NUM_PORTS):
            m = mode if self.enabled[p] else MODE_OFF
            v |= m << (2 * p)
        self.write(_REG_MODE, v)

    def set_mode(self, mode):
        self.mode = _MODES[mode] if isinstance(mode, str) else mode
        self.set_mode_all(self.mode)

    # ---- per-port control -------------------------------------------------------------
    def enable_port(self, p):
        """Start detection and classification on port index p (0-3)."""
        self.enabled[p] = True
        self.set_mode_all(self.mode)
        self.write(_REG_RESTART, (1 << p) | (1 << (p + 4)))

    def disable_port(self, p):
        self.enabled[p] = False
        self.write(_REG_POWER_EN, 1 << (p + 4))
        self.set_mode_all(self.mode)
        was = self.powered[p]
        self._off(p)
        self.denied[p] = False
        if was:
            self._emit(EV_POWER_OFF, p, "disabled")
            self._retry_denied()

    def _power_on(self, p):
        self.write(_REG_POWER_EN, 1 << p)
        self.powered[p] = True
        self.alloc_mw[p] = CLASS_MW[self.port_class[p] or 0]
        self.denied[p] = False
        self._emit(EV_POWER_ON, p, self.alloc_mw[p])

    def _off(self, p):
        self.powered[p] = False
        self.alloc_mw[p] = 0

    def allocated_mw(self):
        return sum(self.alloc_mw)

    # ---- budget -----------------------------------------------------------------------
    def _admit(self, p):
        """Apply the budget rule to newly classified port p."""
        need = CLASS_MW[self.port_class[p] or 0]
        if self.powered[p]:
            # auto mode: the chip already powered it; count it, then shed if over budget
            self.alloc_mw[p] = need
            self._emit(EV_POWER_ON, p, need)
            over = self.allocated_mw() - self.budget_mw
            if over > 0:
                victims = self._victims(p, over)
                if victims is None:
                    self.write(_REG_POWER_EN, 1 << (p + 4))
                    self._off(p)
                    self.denied[p] = True
                    self._emit(EV_DENIED, p, need)
                else:
                    for v in victims:
                        self._shed(v)
            return
        free = self.budget_mw - self.allocated_mw()
        if need <= free:
            self._power_on(p)
            return
        victims = self._victims(p, need - free)
        if victims is None:
            self.denied[p] = True
            self._emit(EV_DENIED, p, need)
            return
        for v in victims:
            self._shed(v)
        self._power_on(p)

    def _victims(self, p, over):
        prio = self.priorities[p]
        cands = [q for q in range(NUM_PORTS)
                 if q != p and self.powered[q] and self.priorities[q] > prio]
        cands.sort(key=lambda q: (-self.priorities[q], -q))
        got = 0
        out = []
        for q in cands:
            out.append(q)
            got += self.alloc_mw[q]
            if got >= over:
                return out
        return None

    def _shed(self, q):
        self.write(_REG_POWER_EN, 1 << (q + 4))
        self._off(q)
        self.denied[q] = True
        self._emit(EV_SHED, q, self.priorities[q])

    def _retry_denied(self):
        order = [q for q in range(NUM_PORTS) if self.denied[q] and self.enabled[q]]
        order.sort(key=lambda q: (self.priorities[q], q))
        for q in order:
            need = CLASS_MW[self.port_class[q] or 0]
            if need <= self.budget_mw - self.allocated_mw():
                self._power_on(q)

    # ---- events -------------------------------------------------------------------------
    def _emit(self, kind, p, value=None):
        ev = self._events
        if len(ev) >= MAX_EVENTS:
            ev.pop(0)
            self.events_dropped += 1
        ev.append((kind, (self.port_numbers[p], value)))

    def port_status(self, p):
        """(detect_code, class or None, raw class code) from reg 0x0C + p."""
        s = self.read(_REG_PORT_STATUS + p)
        return s & 0x0F, CLASS_CODES.get(s >> 4), s >> 4

    def poll(self, now=0):
        irq = self.read(_REG_IRQ)
        if irq:
            freed = False
            if irq & _IRQ_SUPPLY:
                freed = self._supply(self.read(_REG_SUPPLY_EVENT))    # clear on read
            pev = self.read(_REG_POWER_EVENT) if irq & _IRQ_POWER else 0   # clear on read
            det = self.read(_REG_DET_EVENT)        # clear on read
            flt = self.read(_REG_FAULT_EVENT)      # clear on read
            st = self.read(_REG_START_EVENT) if irq & _IRQ_FAULT else 0
            for p in range(NUM_PORTS):
                if st & (1 << (p + 4)):
                    self._fault(p, EV_CURRENT_LIMIT)
                    freed = True
                bit = 1 << p
                if flt & bit:
                    self._fault(p, EV_OVERCURRENT)
                    freed = True
                if flt & (bit << 4):
                    self._fault(p, EV_DISCONNECT)
                    freed = True
                if st & bit:
                    self._fault(p, EV_START_FAULT)
                    freed = True
                if det & (bit | (bit << 4)):
                    detect, cls, code = self.port_status(p)
                    if det & bit:
                        self._emit(EV_DETECTED, p, DETECT_NAMES.get(detect, detect))
                    if det & (bit << 4) and detect == DETECT_VALID and cls is not None:
                        self.port_class[p] = cls
                        self._emit(EV_CLASSIFIED, p, cls)
                        if self.enabled[p]:
                            if self.mode == MODE_AUTO:
                                self.powered[p] = bool(self.read(_REG_POWER_STATUS) & bit)
                            if self.mode in (MODE_AUTO, MODE_SEMI):
                                self._admit(p)
                    elif det & (bit << 4) and code == 7:
                        self._emit(EV_OVERCURRENT, p, "class")
            if pev and self._reconcile():
                freed = True
            self.write(_REG_RESET, _CLEAR_ALL)
            if freed:
                self._retry_denied()
        if not self._events:
            return _NO_EVENTS
        out = tuple(self._events)
        self._events = []
        return out

    def _supply(self, sup):
        """Supply events (0x0B); True when ports lost their power."""
        freed = False
        if sup & _SUP_VDUV:
            # the chip came back with its reset defaults: every port is off
            self.resets_seen += 1
            for p in range(NUM_PORTS):
                if self.powered[p]:
                    self._off(p)
                    self._emit(EV_POWER_OFF, p, "reset")
                    freed = True
                self.denied[p] = False
            self._emit(EV_SUPPLY, 0, "reset")
            self._configure()
        if sup & _SUP_TSD:
            self._emit(EV_SUPPLY, 0, "thermal")
        if sup & _SUP_VPUV:
            self._emit(EV_SUPPLY, 0, "vpuv")
        if sup & (_SUP_TSD | _SUP_VPUV) and self._reconcile():
            freed = True
        return freed

    def _reconcile(self):
        """Ports the chip no longer powers (0x10 b0-3) give their budget back."""
        st = self.read(_REG_POWER_STATUS)
        freed = False
        for p in range(NUM_PORTS):
            if self.powered[p] and not st & (1 << p):
                self._off(p)
                self._emit(EV_POWER_OFF, p, "chip")
                freed = True
        return freed

    def _fault(self, p, kind):
        was = self.powered[p]
        self._off(p)
        self.port_class[p] = None if kind == EV_DISCONNECT else self.port_class[p]
        self.denied[p] = False
        self._emit(kind, p)
        if was:
            self._emit(EV_POWER_OFF, p, kind)

    # ---- readings (integers: mV, uA, mW, milli-degC) -----------------------------------
    def port_voltage_mv(self, p):
        return _u14(self.read(_REG_V_BASE + 4 * p, 2)) * 3662 // 1000

    def port_current_ua(self, p):
        return _u14(self.read(_REG_I_BASE + 4 * p, 2)) * self.current_lsb_nA // 1000

    def port_power_mw(self, p):
        return self.port_voltage_mv(p) * self.port_current_ua(p) // 1000000

    def input_voltage_mv(self):
        return _u14(self.read(_REG_VIN, 2)) * 3662 // 1000

    def temperature_mc(self):
        return self.read(_REG_TEMP) * 652 - 20000

    def power_status(self):
        return self.read(_REG_POWER_STATUS)
