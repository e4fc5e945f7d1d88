# portable: micropython
from tests.portable import raises
from hal.sim.bus import SimPin
from hal.drivers.led import Leds


def test_patterns():
    pins = {"power": SimPin(1), "status": SimPin(2), "surv": SimPin(3), "p1": SimPin(4)}
    leds = Leds(pins)
    leds.set("power", "on")
    leds.set("status", "blink")
    leds.set("surv", "fast")
    seen = {"status": [], "surv": []}
    for t in range(0, 2000, 25):
        leds.tick(t)
        seen["status"].append(pins["status"].level)
        seen["surv"].append(pins["surv"].level)
    assert pins["power"].level == 1 and pins["p1"].level == 0
    assert seen["status"][0] == 1 and seen["status"][20] == 0 and seen["status"][40] == 1
    assert seen["surv"][0] == 1 and seen["surv"][5] == 0 and seen["surv"][10] == 1
    # writes only on change
    assert pins["power"].writes == 1


def test_pulse_and_active_low():
    pins = {"p1": SimPin(4)}
    leds = Leds(pins, active_low=True)
    leds.tick(0)
    assert pins["p1"].level == 1        # off, active low
    leds.pulse("p1", 10)
    leds.tick(20)
    assert pins["p1"].level == 0
    leds.tick(100)
    assert pins["p1"].level == 1


def test_bad_names():
    leds = Leds({"a": SimPin(1)})
    raises(KeyError, leds.set, "b", "on")
    raises(ValueError, leds.set, "a", "strobe")
