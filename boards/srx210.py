"""SRX210-class branch router profile: 2 FXS + 2 FXO, PoE on 8 ports.

What this file describes: the port layout and telephony chips of an
SRX210-class branch box (FXS SLICs, FXO DAAs, PoE controllers and LEDs on SPI,
I2C and a TDM bus), so that the appliance can be built, simulated (board sim
models the same chips) and brought up on ARM hardware wired the same way.
It is not a port to the real Juniper SRX210: that box is built around a MIPS64
Cavium Octeon SoC, and this firmware does not run on it.  The firmware image
runs on arm64 and armhf Linux boards of the Raspberry Pi class with CPython
3.11 (arm64 is tested under qemu-system-aarch64 -M virt, tests/qemu; armhf
gets the same pure-Python payload, untested), and on MicroPython boards with
the .mpy image.

ASSUMPTION: the SPI/I2C bus numbers, chip selects, PCM timeslots, I2C
addresses and GPIO numbers below are ours, not taken from the vendor's
hardware documentation; correct them against the real board before use.
"""

BOARD = {
    "name": "srx210",
    "description": "SRX210-class: 2 FXS, 2 FXO, 8 PoE ports (pin/bus numbers assumed)",
    "country": "US",
    "law": "ulaw",
    "spi": {0: {"bus": 0, "mode": 3, "speed_hz": 2000000}},
    "i2c": {0: {"bus": 0, "freq": 100000}},
    "pcm": {"kind": "tdm", "channels": 4},
    "fxs": (
        {"port": 1, "chip": "si3215", "spi": 0, "cs": 0, "pcm_chan": 0},
        {"port": 2, "chip": "si3215", "spi": 0, "cs": 1, "pcm_chan": 1},
    ),
    "fxo": (
        {"port": 1, "chip": "si3050", "spi": 0, "cs": 2, "cid": 0, "pcm_chan": 2},
        {"port": 2, "chip": "si3050", "spi": 0, "cs": 3, "cid": 0, "pcm_chan": 3},
    ),
    "poe": (
        {"chip": "tps23861", "i2c": 0, "addr": 0x20, "ports": (1, 2, 3, 4),
         "budget_w": 50, "priorities": (0, 1, 2, 3)},
        {"chip": "tps23861", "i2c": 0, "addr": 0x21, "ports": (5, 6, 7, 8),
         "budget_w": 50, "priorities": (0, 1, 2, 3)},
    ),
    "leds": {"power": 10, "status": 11, "survivability": 12},
}
