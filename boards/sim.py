"""Simulated appliance: 4 FXS (Si3215), 2 FXO (Si3050), 4 PoE ports on one
TPS23861 at I2C 0x30, LEDs.  Used by tests and the whole-appliance simulation."""

BOARD = {
    "name": "sim",
    "description": "simulated branch appliance: 4 FXS, 2 FXO, 4 PoE",
    "country": "US",
    "law": "ulaw",
    "spi": {0: {"bus": 0, "mode": 3, "speed_hz": 1000000}},
    "i2c": {1: {"bus": 1, "freq": 100000}},
    "pcm": {"kind": "sim", "channels": 8},
    "fxs": (
        {"port": 1, "chip": "si3215", "spi": 0, "cs": 0, "pcm_chan": 0},
        {"port": 2, "chip": "si3215", "spi": 0, "cs": 1, "pcm_chan": 1},
        {"port": 3, "chip": "si3215", "spi": 0, "cs": 2, "pcm_chan": 2},
        {"port": 4, "chip": "si3215", "spi": 0, "cs": 3, "pcm_chan": 3},
    ),
    "fxo": (
        {"port": 1, "chip": "si3050", "spi": 0, "cs": 4, "cid": 0, "pcm_chan": 4},
        {"port": 2, "chip": "si3050", "spi": 0, "cs": 5, "cid": 0, "pcm_chan": 5},
    ),
    "poe": (
        {"chip": "tps23861", "i2c": 1, "addr": 0x30, "ports": (1, 2, 3, 4),
         "budget_w": 60, "priorities": (0, 1, 2, 3), "mode": "semi-auto"},
    ),
    "leds": {"power": 100, "status": 101, "survivability": 102,
             "fxs1": 110, "fxs2": 111, "fxs3": 112, "fxs4": 113,
             "fxo1": 120, "fxo2": 121},
}
