"""TPS23861 PSE model with powered devices on its four ports.

Side effects: 0x05/0x07/0x09 clear on read; 0x1A b7 clears the interrupt and
all event registers; 0x18 restarts detection/classification (port n: bit n);
0x19 b0-3 power on, b4-7 power off; 0x12 operating mode (auto powers a valid,
classified port by itself).  Detection completes DETECT_MS after a PD is
attached (or a restart), classification CLASS_MS later.

Event registers after HARDWARE.md (TI's register header, Linux tps23861.c):
0x03 power events (b0-3 power-enable change, b4-7 power-good change; clear
on read, 0x02 its read-only copy), 0x09 start faults (b0-3) and ILIM
current-limit shutdowns (b4-7), 0x0B supply events (b4 VPUV 55 V
undervoltage, b5 VDUV: the 3.3 V supply dipped and the chip came back with
its reset defaults, b7 TSD thermal shutdown: every port off).  0x17 b0 is
the current-sense select; powering a port while it disagrees with the
board's shunt (shunt_mohm) counts in shunt_mismatch (the chip's current
limits are then about 2 % off).

Fault hooks: PoweredDevice.overcurrent(), current_limit(), unplug();
thermal_shutdown(), power_on_reset(), vpwr_undervoltage(); present=False
(I2C NACK: the bus raises OSError) or dev_id=0xFF; the bus's fail_next/broken.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

from hal.sim.bus import History

DETECT_MS = const(100)
CLASS_MS = const(50)
DEV_ID = const(0x22)
PORT_MV = const(48000)
VIN_MV = const(52000)
TEMP_C = const(45)
_CLASS_CODE = {0: 6, 1: 1, 2: 2, 3: 3, 4: 4}


class PoweredDevice:
    def __init__(self, cls=2, draw_mw=None, signature="valid"):
        self.cls = cls
        self.draw_mw = draw_mw if draw_mw is not None else (3000, 3000, 5000, 10000, 20000)[cls]
        self.signature = signature
        self.port = None
        self.model = None

    def overcurrent(self):
        self.model._overcurrent(self.port)

    def current_limit(self):
        """The PD draws beyond ILIM: the chip shuts the port off (0x09 b4-7)."""
        self.model._ilim(self.port)

    def unplug(self):
        self.model.detach(self.port)


class Tps23861Model:
    def __init__(self, now=None, present=True, dev_id=DEV_ID, detect_ms=DETECT_MS,
                 shunt_mohm=255):
        self.now = now
        self.t = now() if now else 0
        self.present = present
        self.history = History()
        self.regs = bytearray(256)
        self.regs[0x43] = dev_id
        self.dev_id = dev_id
        self.shunt_mohm = shunt_mohm
        self.shunt_mismatch = 0
        self.resets = 0
        self.detect_ms = detect_ms
        self.pds = [None] * 4
        self._det_at = [None] * 4    # time detection completes
        self._cls_at = [None] * 4
        self.powered = [False] * 4

    def attach(self, port, pd):
        pd.port = port
        pd.model = self
        self.pds[port] = pd
        self._start(port)
        return pd

    def detach(self, port):
        self.pds[port] = None
        if self.powered[port]:
            self._power(port, False)
            self.regs[0x07] |= 1 << (port + 4)
            self.regs[0x00] |= 0x04
        self.regs[0x0C + port] = 0
        self._det_at[port] = self._cls_at[port] = None

    def _mode(self, p):
        return (self.regs[0x12] >> (2 * p)) & 3

    def _start(self, p):
        if self._mode(p) and self.regs[0x14] & (1 << p) and self.pds[p] is not None:
            self._det_at[p] = self.t + self.detect_ms
            self._cls_at[p] = None

    def _power(self, p, on):
        r = self.regs
        self.powered[p] = on
        if on:
            r[0x10] |= (1 << p) | (1 << (p + 4))
            if (r[0x17] & 1) != (1 if self.shunt_mohm == 250 else 0):
                self.shunt_mismatch += 1
        else:
            r[0x10] &= ~((1 << p) | (1 << (p + 4))) & 0xFF
        ev = (1 << p) | (1 << (p + 4))
        r[0x03] |= ev
        r[0x02] |= ev
        r[0x00] |= 0x03

    def _ilim(self, p):
        if self.powered[p]:
            self._power(p, False)
            self.regs[0x09] |= 1 << (p + 4)
            self.regs[0x00] |= 0x20

    def thermal_shutdown(self):
        """TSD: every port off, 0x0B b7."""
        for p in range(4):
            if self.powered[p]:
                self._power(p, False)
        self.regs[0x0B] |= 0x80
        self.regs[0x00] |= 0x80

    def vpwr_undervoltage(self):
        """VPUV: the 55 V supply sagged; ports lose power, 0x0B b4."""
        for p in range(4):
            if self.powered[p]:
                self._power(p, False)
        self.regs[0x0B] |= 0x10
        self.regs[0x00] |= 0x80

    def power_on_reset(self):
        """VDUV: the 3.3 V supply dipped; the chip restarts with its reset
        defaults (every register 0: ports off, operating mode off) and
        reports 0x0B b5."""
        r = self.regs
        for i in range(len(r)):
            r[i] = 0
        r[0x43] = self.dev_id
        for p in range(4):
            self.powered[p] = False
            self._det_at[p] = self._cls_at[p] = None
        r[0x0B] = 0x20
        r[0x00] = 0x80
        self.resets += 1

    def _overcurrent(self, p):
        if self.powered[p]:
            self._power(p, False)
            self.regs[0x07] |= 1 << p
            self.regs[0x00] |= 0x20

    def advance(self, now):
        if now < self.t:
            return
        self.t = now
        r = self.regs
        for p in range(4):
            pd = self.pds[p]
            if self._det_at[p] is not None and now >= self._det_at[p]:
                self._det_at[p] = None
                det = 4 if pd is not None and pd.signature == "valid" else 6
                r[0x0C + p] = (r[0x0C + p] & 0xF0) | det
                r[0x05] |= 1 << p
                r[0x00] |= 0x08
                if det == 4:
                    self._cls_at[p] = now + CLASS_MS
            if self._cls_at[p] is not None and now >= self._cls_at[p]:
                self._cls_at[p] = None
                if pd is not None:
                    r[0x0C + p] = (_CLASS_CODE[pd.cls] << 4) | (r[0x0C + p] & 0x0F)
                    r[0x05] |= 1 << (p + 4)
                    r[0x00] |= 0x10
                    if self._mode(p) == 3:
                        self._power(p, True)

    def _reg(self, reg):
        r = self.regs
        if 0x30 <= reg < 0x40:
            p = (reg - 0x30) // 4
            off = (reg - 0x30) % 4
            raw = 0
            if self.powered[p] and self.pds[p] is not None:
                if off < 2:
                    ua = self.pds[p].draw_mw * 1000000 // PORT_MV
                    raw = ua * 1000 // 61039
                else:
                    raw = PORT_MV * 1000 // 3662
            return (raw >> 8) & 0x3F if off in (1, 3) else raw & 0xFF
        if reg in (0x2E, 0x2F):
            raw = VIN_MV * 1000 // 3662
            return raw & 0xFF if reg == 0x2E else (raw >> 8) & 0x3F
        if reg == 0x2C:
            return (TEMP_C + 20) * 1000 // 652
        v = r[reg]
        if reg in (0x03, 0x05, 0x07, 0x09, 0x0B):
            r[reg] = 0
        return v

    def i2c_read(self, reg, n):
        if not self.present:
            raise OSError(19, "NACK")
        out = bytearray(n)
        for i in range(n):
            out[i] = self._reg((reg + i) & 0xFF)
        self.history.add(("r", reg, bytes(out)))
        return bytes(out)

    def i2c_write(self, reg, data):
        if not self.present:
            raise OSError(19, "NACK")
        for i in range(len(data)):
            rg = (reg + i) & 0xFF
            v = data[i]
            self.history.add(("w", rg, v))
            self._write(rg, v)

    def _write(self, reg, v):
        r = self.regs
        if reg == 0x1A:
            if v & 0x80:
                r[0x00] = 0
                r[0x02] = r[0x03] = r[0x05] = r[0x07] = r[0x09] = r[0x0B] = 0
            return
        if reg == 0x18:
            for p in range(4):
                if v & (1 << p):
                    self._start(p)
            return
        if reg == 0x19:
            for p in range(4):
                if v & (1 << (p + 4)) and self.powered[p]:
                    self._power(p, False)
                if v & (1 << p) and not self.powered[p] and self.pds[p] is not None \
                        and (r[0x0C + p] & 0x0F) == 4:
                    self._power(p, True)
            return
        if reg in (0x02, 0x43, 0x0C, 0x0D, 0x0E, 0x0F, 0x10):
            return
        r[reg] = v
        if reg == 0x12:
            for p in range(4):
                if self._mode(p) == 0 and self.powered[p]:
                    self._power(p, False)
