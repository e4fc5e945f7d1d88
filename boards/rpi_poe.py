"""Raspberry Pi with a TPS23861 PoE PSE on I2C bus 1 (address 0x30, as in the
Linux device-tree binding example); four PoE ports, status LEDs on GPIOs.
GPIO numbers are our assumption (BCM numbering).

shunt_mohm 255 is Linux's default (0x17 b0 = 0); device_id 1 is the expected
ID field of register 0x43 (bits 7:5): UNVERIFIED, check the TPS23861
datasheet, and change it here if the chip reports another one."""

BOARD = {
    "name": "rpi_poe",
    "description": "Raspberry Pi + TPS23861 PoE PSE on I2C-1 @0x30",
    "country": "US",
    "law": "ulaw",
    "i2c": {1: {"bus": 1, "freq": 100000}},
    "fxs": (),
    "fxo": (),
    "poe": (
        {"chip": "tps23861", "i2c": 1, "addr": 0x30, "ports": (1, 2, 3, 4),
         "budget_w": 60, "priorities": (0, 1, 2, 3), "mode": "semi-auto",
         "shunt_mohm": 255, "device_id": 1},
    ),
    "leds": {"power": 17, "status": 27, "survivability": 22,
             "poe1": 5, "poe2": 6, "poe3": 13, "poe4": 19},
}
