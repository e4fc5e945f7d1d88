"""LEDs on GPIO pins with patterns computed from `now` in tick(now).

Patterns: 'off', 'on', 'blink' (500/500 ms), 'fast' (125/125 ms), and pulse()
for short activity flashes.  tick(now) writes a pin only when its level changes.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

BLINK_HALF_MS = const(500)
FAST_HALF_MS = const(125)
PULSE_MS = const(50)
MAX_LEDS = const(32)

PATTERNS = ("off", "on", "blink", "fast")


class Leds:
    def __init__(self, pins, active_low=False):
        """pins: dict name -> Pin-like object (value(v))."""
        if len(pins) > MAX_LEDS:
            raise ValueError("more than %d LEDs" % MAX_LEDS)
        self.pins = pins
        self.active_low = active_low
        self.pattern = {}
        self.level = {}
        self._pulse_until = {}
        for name in pins:
            self.pattern[name] = "off"
            self.level[name] = None

    def names(self):
        return list(self.pins)

    def set(self, name, pattern):
        if name not in self.pins:
            raise KeyError("no LED %r (have %s)" % (name, ", ".join(sorted(self.pins))))
        if pattern not in PATTERNS:
            raise ValueError("pattern must be one of %s" % ", ".join(PATTERNS))
        self.pattern[name] = pattern

    def pulse(self, name, now, ms=PULSE_MS):
        """Activity flash: invert the LED for ms from now."""
        if name in self.pins:
            self._pulse_until[name] = now + ms

    def _want(self, name, now):
        p = self.pattern[name]
        if p == "on":
            v = 1
        elif p == "blink":
            v = 1 if (now // BLINK_HALF_MS) % 2 == 0 else 0
        elif p == "fast":
            v = 1 if (now // FAST_HALF_MS) % 2 == 0 else 0
        else:
            v = 0
        until = self._pulse_until.get(name)
        if until is not None:
            if now < until:
                v ^= 1
            else:
                del self._pulse_until[name]
        return v

    def tick(self, now):
        for name, pin in self.pins.items():
            v = self._want(name, now)
            if v != self.level[name]:
                self.level[name] = v
                pin.value(v ^ 1 if self.active_low else v)
