"""SRX240-class branch router profile: 4 FXS + 4 FXO, PoE on 16 ports.

What this file describes: the port layout and telephony chips of an
SRX240-class branch box (FXS SLICs, FXO DAAs, PoE controllers and LEDs on SPI,
I2C and a TDM bus), so that the appliance can be built, simulated (board sim
models the same chips) and brought up on ARM hardware wired the same way.
It is not a port to the real Juniper SRX240: that box is built around a MIPS64
Cavium Octeon SoC, and this firmware does not run on it.  The firmware image
runs on arm64 and armhf Linux boards of the Raspberry Pi class with CPython
3.11 (arm64 is tested under qemu-system-aarch64 -M virt, tests/qemu; armhf
gets the same pure-Python payload, untested), and on MicroPython boards with
the .mpy image.

ASSUMPTION: bus numbers, chip selects, timeslots, addresses and GPIOs are
ours, not the vendor's; verify on the real hardware.
"""

BOARD = {
    "name": "srx240",
    "description": "SRX240-class: 4 FXS, 4 FXO, 16 PoE ports (pin/bus numbers assumed)",
    "country": "US",
    "law": "ulaw",
    "spi": {0: {"bus": 0, "mode": 3, "speed_hz": 2000000},
            1: {"bus": 1, "mode": 3, "speed_hz": 2000000}},
    "i2c": {0: {"bus": 0, "freq": 100000}},
    "pcm": {"kind": "tdm", "channels": 8},
    "fxs": tuple({"port": i + 1, "chip": "si3215", "spi": 0, "cs": i, "pcm_chan": i}
                 for i in range(4)),
    "fxo": tuple({"port": i + 1, "chip": "si3050", "spi": 1, "cs": i, "cid": 0,
                  "pcm_chan": 4 + i} for i in range(4)),
    "poe": tuple({"chip": "tps23861", "i2c": 0, "addr": 0x20 + n,
                  "ports": tuple(range(4 * n + 1, 4 * n + 5)),
                  "budget_w": 62, "priorities": (0, 1, 2, 3)} for n in range(4)),
    "leds": {"power": 10, "status": 11, "survivability": 12, "poe": 13},
}
