# portable: micropython
"""The builder on the sim backend: healthy board, broken chips, polling, lazy backends."""
import sys
from tests.portable import raises
from hal.builder import build
from hal.sim import run
from hal.sim.tps23861 import PoweredDevice


def test_sim_board_builds_everything():
    hw = build("sim")
    assert hw.faults == []
    assert sorted(hw.fxs) == [1, 2, 3, 4] and sorted(hw.fxo) == [1, 2]
    assert len(hw.poe) == 1 and hw.leds is not None
    assert hw.fxs[3].ready and hw.fxo[2].ready
    assert "spidev" not in sys.modules and "machine" not in sys.modules


def test_broken_chips_recorded_rest_works():
    hw = build("sim", sim_options={
        "fxs 2": {"present": False, "missing_value": 0x00},
        "fxs 3": {"never_calibrates": True},
        "fxs 4": {"spi_broken": True},
        "fxo 1": {"iso_never_up": True},
        "poe 1": {"absent": True},
    })
    assert "fxs 2: Si3215 not detected (reg 0 = 0x00)" in hw.faults
    assert any(f.startswith("fxs 3: calibration timeout") for f in hw.faults)
    assert any(f.startswith("fxs 4: bus error") for f in hw.faults)
    assert any(f.startswith("fxo 1: ISO-cap link not up") for f in hw.faults)
    assert any(f.startswith("poe 1: TPS23861 not answering") for f in hw.faults)
    assert sorted(hw.fxs) == [1] and sorted(hw.fxo) == [2] and hw.poe == []
    # the working ports still work
    hw.sim.phones[1].off_hook()
    evs = run(hw, 100)
    assert ("fxs", 1, ("hook_off", None)) in evs


def test_poll_all_ports_and_poe():
    hw = build("sim")
    hw.sim.pses[0].attach(0, PoweredDevice(cls=1))
    hw.sim.lines[2].ring()
    hw.sim.phones[4].off_hook()
    hw.leds.set("status", "blink")
    evs = run(hw, 2300)
    assert ("fxs", 4, ("hook_off", None)) in evs
    assert ("fxo", 2, ("ring", 1)) in evs
    assert ("poe", 1, ("power_on", (1, 4000))) in evs
    drv, idx = hw.poe_port(1)
    assert drv.powered[idx]


def test_bus_error_during_poll_is_counted():
    hw = build("sim")
    hw.sim.spis[("fxs", 1)].fail_next(1)
    run(hw, 20)
    assert hw.bus_errors == 1


def test_unknown_backend_and_missing_clock():
    raises(ValueError, build, "sim", "vxworks")
    raises(ValueError, build, "sim", "linux")


def test_no_hazard_in_any_board_bring_up_on_the_sim():
    # every board profile brought up on the simulator, with its FXS chips as Si3210s
    # too (the chip with the Q7 battery switch): no hazard, no calibration fault
    import boards
    for name in boards.available():
        for chip in ("si3215", "si3210"):
            board = dict(boards.load(name))
            board["fxs"] = tuple(dict(s, chip=chip) for s in board.get("fxs", ()))
            board["pcm"] = {"kind": "sim", "channels": 8}
            hw = build(board, "sim")
            for port, m in hw.sim.slics.items():
                assert hw.fxs[port].ready, (name, chip, port, hw.faults)
                assert m.hazards == [] and m.cal_faults == [], (name, chip, port)
                assert not m.loopback and m.regs[64] == 1
