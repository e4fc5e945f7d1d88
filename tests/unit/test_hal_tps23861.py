# portable: micropython
"""TPS23861 driver against the simulated PSE with powered devices."""
from tests.portable import raises
from hal.sim.bus import SimClock, SimI2C
from hal.sim.tps23861 import Tps23861Model, PoweredDevice
from hal.drivers import tps23861
from hal.drivers.tps23861 import TPS23861
from hal import sim


def make(budget_w=60, priorities=(0, 1, 2, 3), mode="semi-auto", shunt_mohm=255, **kw):
    clock = SimClock()
    i2c = SimI2C(clock)
    m = Tps23861Model(clock, shunt_mohm=shunt_mohm, **kw)
    i2c.add(0x30, m)
    d = TPS23861(i2c, 0x30, budget_w=budget_w, priorities=priorities, mode=mode,
                 shunt_mohm=shunt_mohm)
    d.init(clock.t)
    return clock, m, d


def run(clock, d, ms, step=10):
    return sim.run(d, ms, step, now=clock)


def test_init_registers():
    clock, m, d = make()
    w = m.history.writes()
    assert (0x1A, 0x80) in w and (0x14, 0xFF) in w and (0x18, 0xFF) in w
    assert (0x12, 0xAA) in w        # semi-auto on all ports
    assert d.device_id == 0x22


def test_absent_chip():
    clock = SimClock()
    i2c = SimI2C(clock)
    d = TPS23861(i2c, 0x30)
    e = raises(tps23861.NotDetected, d.init, 0)
    assert "0x30" in str(e)
    m = Tps23861Model(clock, dev_id=0xFF)
    i2c.add(0x30, m)
    raises(tps23861.NotDetected, d.init, 0)


def test_detect_classify_power_and_readings():
    clock, m, d = make()
    m.attach(1, PoweredDevice(cls=2, draw_mw=5000))
    evs = run(clock, d, 300)
    assert ("detected", (2, "valid")) in evs
    assert ("classified", (2, 2)) in evs
    assert ("power_on", (2, 7000)) in evs
    assert d.powered[1] and d.allocated_mw() == 7000
    assert m.powered[1]
    mv = d.port_voltage_mv(1)
    ua = d.port_current_ua(1)
    assert 47900 <= mv <= 48100
    assert 103000 <= ua <= 105000            # 5 W / 48 V
    assert 4900 <= d.port_power_mw(1) <= 5100
    assert 51900 <= d.input_voltage_mv() <= 52100
    assert 44000 <= d.temperature_mc() <= 46000
    # event registers were cleared on read / by 0x1A
    assert m.regs[0x05] == 0 and m.regs[0x00] == 0


def test_class_zero_and_four_allocations():
    clock, m, d = make(budget_w=100)
    m.attach(0, PoweredDevice(cls=0))
    m.attach(3, PoweredDevice(cls=4))
    run(clock, d, 300)
    assert d.alloc_mw[0] == 15400 and d.alloc_mw[3] == 30000


def test_overcurrent_shutdown():
    clock, m, d = make()
    pd = m.attach(0, PoweredDevice(cls=3))
    run(clock, d, 300)
    assert d.powered[0]
    pd.overcurrent()
    evs = run(clock, d, 20)
    assert ("overcurrent", (1, None)) in evs
    assert ("power_off", (1, "overcurrent")) in evs
    assert not d.powered[0] and d.allocated_mw() == 0


def test_disconnect_event():
    clock, m, d = make()
    pd = m.attach(2, PoweredDevice(cls=1))
    run(clock, d, 300)
    pd.unplug()
    evs = run(clock, d, 20)
    assert ("disconnect", (3, None)) in evs and not d.powered[2]


def test_budget_refuses_lower_priority():
    # budget 40 W: port 1 (prio 0) class 4 = 30 W; port 4 (prio 3) class 3 = 15.4 W refused
    clock, m, d = make(budget_w=40)
    m.attach(0, PoweredDevice(cls=4))
    run(clock, d, 300)
    m.attach(3, PoweredDevice(cls=3))
    evs = run(clock, d, 300)
    assert ("denied", (4, 15400)) in evs
    assert d.powered[0] and not d.powered[3] and not m.powered[3]
    assert d.allocated_mw() <= 40000


def test_budget_sheds_lowest_priority_for_higher():
    clock, m, d = make(budget_w=40)
    m.attach(3, PoweredDevice(cls=3))     # prio 3
    m.attach(2, PoweredDevice(cls=3))     # prio 2
    run(clock, d, 300)
    assert d.powered[2] and d.powered[3]
    m.attach(0, PoweredDevice(cls=4))     # prio 0 needs 30 W
    evs = run(clock, d, 300)
    assert ("shed", (4, 3)) in evs and ("shed", (3, 2)) in evs
    assert d.powered[0] and not d.powered[2] and not d.powered[3]
    assert not m.powered[3]
    # freeing budget retries the denied ports by priority
    d.disable_port(0)
    run(clock, d, 20)
    assert d.powered[2] and d.powered[3]


def test_auto_mode_sheds_after_the_fact():
    clock, m, d = make(budget_w=20, mode="auto")
    m.attach(0, PoweredDevice(cls=3))
    run(clock, d, 300)
    m.attach(1, PoweredDevice(cls=3))
    evs = run(clock, d, 300)
    assert ("denied", (2, 15400)) in evs
    assert m.powered[0] and not m.powered[1]


def test_enable_restart_register():
    clock, m, d = make()
    d.disable_port(1)
    m.history.clear()
    d.enable_port(1)
    assert (0x18, 0x22) in m.history.writes()


# ---- event registers 0x03, 0x09, 0x0B; shunt select; device ID (HARDWARE.md,
# TI's TPS23861 register header, Linux drivers/hwmon/tps23861.c)

def _two_ports_one_denied():
    # budget 20 W: port 1 class 3 (15.4 W) powered, port 2 class 2 (7 W) denied
    clock, m, d = make(budget_w=20, priorities=(0, 1, 2, 3))
    m.attach(0, PoweredDevice(cls=3))
    run(clock, d, 300)
    m.attach(1, PoweredDevice(cls=2))
    evs = run(clock, d, 300)
    assert ("denied", (2, 7000)) in evs and d.powered[0] and not d.powered[1]
    return clock, m, d


def test_ilim_shutdown_frees_the_budget_and_a_denied_port_gets_power():
    clock, m, d = _two_ports_one_denied()
    m.pds[0].current_limit()
    evs = run(clock, d, 100)
    assert ("current_limit", (1, None)) in evs and ("power_off", (1, "current_limit")) in evs
    assert not d.powered[0] and ("power_on", (2, 7000)) in evs and m.powered[1]
    assert d.allocated_mw() == 7000


def test_thermal_shutdown_turns_every_port_off_in_the_books_too():
    clock, m, d = make()
    m.attach(0, PoweredDevice(cls=1))
    m.attach(2, PoweredDevice(cls=2))
    run(clock, d, 300)
    assert d.allocated_mw() == 11000
    m.thermal_shutdown()
    evs = run(clock, d, 50)
    assert ("supply", (1, "thermal")) in evs
    assert ("power_off", (1, "chip")) in evs and ("power_off", (3, "chip")) in evs
    assert d.allocated_mw() == 0 and not any(d.powered) and not any(m.powered)


def test_chip_reset_to_defaults_is_configured_again():
    clock, m, d = make(shunt_mohm=250)
    m.attach(1, PoweredDevice(cls=2))
    run(clock, d, 300)
    assert m.powered[1]
    m.power_on_reset()
    assert m.regs[0x12] == 0 and not m.powered[1]
    evs = run(clock, d, 400)
    assert ("supply", (1, "reset")) in evs and ("power_off", (2, "reset")) in evs
    # operating mode, enables and the shunt select are back, and the PD is powered again
    assert m.regs[0x12] == 0xAA and m.regs[0x14] == 0xFF and m.regs[0x17] & 1
    assert ("power_on", (2, 7000)) in evs and m.powered[1] and d.allocated_mw() == 7000
    assert d.resets_seen == 1


def test_power_event_without_a_fault_reconciles_the_budget():
    clock, m, d = make()
    m.attach(3, PoweredDevice(cls=2))
    run(clock, d, 300)
    m._power(3, False)            # the chip drops the port on its own (power-good lost)
    evs = run(clock, d, 50)
    assert ("power_off", (4, "chip")) in evs and d.allocated_mw() == 0


def test_shunt_select_written_from_the_board():
    for shunt, bit in ((255, 0), (250, 1)):
        clock = SimClock()
        i2c = SimI2C(clock)
        m = Tps23861Model(clock, shunt_mohm=shunt)
        i2c.add(0x30, m)
        d = TPS23861(i2c, 0x30, shunt_mohm=shunt)
        d.init(clock.t)
        assert m.regs[0x17] & 1 == bit
        m.attach(0, PoweredDevice(cls=1))
        run(clock, d, 300)
        assert m.powered[0] and m.shunt_mismatch == 0, shunt
    # Linux tps23861.c: CURRENT_LSB_255 61.039 uA, CURRENT_LSB_250 62.260 uA
    assert d.current_lsb_nA == 62260
    raises(ValueError, TPS23861, i2c, 0x30, shunt_mohm=100)


def test_device_id_field_checked():
    clock = SimClock()
    i2c = SimI2C(clock)
    i2c.add(0x30, Tps23861Model(clock, dev_id=0x42))       # device ID 2, revision 2
    e = raises(tps23861.NotDetected, TPS23861(i2c, 0x30).init, 0)
    assert "device ID 2" in str(e)
    assert TPS23861(i2c, 0x30, device_id=2).init(0)       # a board that expects it
