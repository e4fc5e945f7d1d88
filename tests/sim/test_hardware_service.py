"""The hardware service on the simulated board, on the virtual clock: chip
bring-up from the scheduler, fault reporting, show commands and PoE."""
from hal.sim.tps23861 import PoweredDevice
from tests.sim.appliance import simulated


def _run(app, ms):
    app.sched.run(until=app.clock.now() + ms)


def test_every_port_comes_up_without_blocking_the_console(tmp_path):
    app = simulated(tmp_path)
    try:
        assert "initializing" in app.commands.execute(app, "show ports")
        _run(app, 3000)
        table = app.commands.execute(app, "show ports")
        assert table.count("ready") == 6, table
        assert "fxs 1" in table and "fxo 2" in table
        assert "on-hook" in table and "forward-active" in table
        assert app.hardware.hw.leds is not None
    finally:
        app.close()


def test_a_chip_that_never_calibrates_is_reported_and_the_rest_works(tmp_path):
    app = simulated(tmp_path, sim_options={"fxs 2": {"never_calibrates": True},
                                           "fxo 1": {"present": False}})
    try:
        _run(app, 5000)
        table = app.commands.execute(app, "show ports")
        assert table.count("ready") == 4, table
        assert "calibration timeout" in table
        assert "fxo 1" in table and "not detected" in table
        log = app.commands.execute(app, "show log")
        assert "fxs 2" in log and "calibration" in log
        # the phone on a healthy port still works
        phone = app.hardware.sim.phones[3]
        events = []
        app.hardware.listen("fxs", 3, lambda ev, v, now: events.append(ev))
        phone.off_hook()
        _run(app, 200)
        assert "hook_off" in events
    finally:
        app.close()


def test_poe_device_is_classified_powered_and_overcurrent_shuts_its_port(tmp_path):
    app = simulated(tmp_path)
    try:
        pse = app.hardware.sim.pses[0]
        pd = PoweredDevice(cls=2)
        pse.attach(0, pd)
        _run(app, 2000)
        out = app.commands.execute(app, "show poe")
        row = [l for l in out.split("\n") if l.startswith("1 ")][0]
        assert "powered" in row and " 2 " in row, out
        pd.overcurrent()
        _run(app, 500)
        out = app.commands.execute(app, "show poe")
        row = [l for l in out.split("\n") if l.startswith("1 ")][0]
        assert "powered" not in row and "overcurrent" in row, out
        assert "poe port 1: overcurrent" in app.commands.execute(app, "show log")
    finally:
        app.close()


def test_poe_budget_is_enforced_by_priority_and_ports_can_be_disabled(tmp_path):
    app = simulated(tmp_path)
    try:
        drv = app.hardware.hw.poe[0]
        pse = app.hardware.sim.pses[0]
        budget_w = drv.budget_mw // 1000
        # class 4 devices take 30 W each: with a 60 W budget only two fit
        for port in range(4):
            pse.attach(port, PoweredDevice(cls=4))
        _run(app, 3000)
        assert drv.allocated_mw() <= drv.budget_mw
        powered = [i for i in range(4) if drv.powered[i]]
        assert len(powered) == budget_w // 30, (powered, budget_w)
        # disabling a powered port frees budget for a denied one
        victim = powered[0]
        out = app.commands.execute(app, "request poe port %d disable" % (victim + 1))
        assert out == "poe port %d disabled" % (victim + 1)
        _run(app, 1000)
        assert not drv.powered[victim]
        assert len([i for i in range(4) if drv.powered[i]]) == budget_w // 30
        assert app.commands.execute(app, "request poe port 9 enable") == "error: no PoE port 9"
    finally:
        app.close()


def test_port_leds_follow_the_line_state(tmp_path):
    app = simulated(tmp_path, sim_options={"fxs 4": {"never_calibrates": True}})
    try:
        _run(app, 5000)
        leds = app.hardware.hw.leds
        assert leds.pattern["power"] == "on"
        assert leds.pattern["status"] == "fast"        # a port failed bring-up
        assert leds.pattern["fxs4"] == "fast"
        assert leds.pattern["fxs1"] == "off"
        app.hardware.sim.phones[1].off_hook()
        _run(app, 300)
        assert leds.pattern["fxs1"] == "on"
        app.hardware.hw.fxs[2].ring(app.clock.now())
        _run(app, 300)
        assert leds.pattern["fxs2"] == "blink"
        pin = app.hardware.sim.pins[111]
        seen = set()
        for _ in range(20):
            _run(app, 100)
            seen.add(pin.value())
        assert seen == {0, 1}                          # the GPIO really blinks
    finally:
        app.close()
