"""SRX240-class branch router profile: 4 FXS + 4 FXO, PoE on 16 ports.

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
