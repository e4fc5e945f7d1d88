# portable: micropython
"""Every board description loads and builds on the sim backend."""
from tests.portable import raises
import boards
from hal.builder import build


def test_unknown_board_lists_available():
    e = raises(ValueError, boards.load, "wrt54g")
    for name in boards.BOARDS:
        assert name in str(e)


def test_each_board_loads_and_builds_on_sim():
    for name in boards.BOARDS:
        b = boards.load(name)
        assert b["name"] == name
        hw = build(b, "sim")
        assert hw.faults == [], (name, hw.faults)
        assert len(hw.fxs) == len(b.get("fxs", ()))
        assert len(hw.fxo) == len(b.get("fxo", ()))
        assert len(hw.poe) == len(b.get("poe", ()))


def test_board_shapes():
    assert len(boards.load("srx210")["fxs"]) == 2 and len(boards.load("srx210")["fxo"]) == 2
    assert sum(len(p["ports"]) for p in boards.load("srx210")["poe"]) == 8
    assert sum(len(p["ports"]) for p in boards.load("srx240")["poe"]) == 16
    assert len(boards.load("rpi_oak8x")["fxs"]) + len(boards.load("rpi_oak8x")["fxo"]) == 8
    assert boards.load("rpi_poe")["poe"][0]["addr"] == 0x30
    sim = boards.load("sim")
    assert [s["chip"] for s in sim["fxs"]] == ["si3215"] * 4
