"""Raspberry Pi + OAK8X-style telephony HAT: up to 8 FXS/FXO modules (Si3215 /
Si3050) on SPI0, audio over the BCM2835 PCM/TDM block.

This profile populates slots 0-3 with FXS and 4-7 with FXO.  ASSUMPTION: one
chip select per slot on SPI0, driven as GPIOs (cs_pins, BCM numbering) because
the Pi has only CE0/CE1; timeslot n carries slot n.  Check the HAT schematic.

Settings below that are unverified without the datasheets, written out with
the reference's value (see docs/hardware-fidelity.md):
- FXS (Si3215): dcdc_pwm 0xFF / dcdc_engage 0x19 are DAHDI's register 92/93
  values; their low bits depend on the module's DC-DC parts.  The Si3215 has no
  DTMF decoder: dtmf "auto" decodes in software.
- FXO (Si3050): cs_per_byte True is DAHDI's framing (CS after every byte);
  polarity_debounce_ms 64 is DAHDI's (xpp uses 200).
"""

_CS = (8, 7, 5, 6, 12, 13, 16, 26)

BOARD = {
    "name": "rpi_oak8x",
    "description": "Raspberry Pi + OAK8X-style HAT: 4 FXS + 4 FXO modules on SPI0, BCM2835 PCM",
    "country": "US",
    "law": "ulaw",
    "spi": {0: {"bus": 0, "mode": 3, "speed_hz": 1000000, "cs_pins": _CS}},
    "i2c": {1: {"bus": 1, "freq": 100000}},
    "pcm": {"kind": "bcm2835", "channels": 8},
    "fxs": tuple({"port": i + 1, "chip": "si3215", "spi": 0, "cs": i, "pcm_chan": i,
                  "dtmf": "auto", "dcdc_pwm": 0xFF, "dcdc_engage": 0x19}
                 for i in range(4)),
    "fxo": tuple({"port": i + 1, "chip": "si3050", "spi": 0, "cs": 4 + i, "cid": 0,
                  "pcm_chan": 4 + i, "cs_per_byte": True, "polarity_debounce_ms": 64}
                 for i in range(4)),
    "poe": (),
    "leds": {"power": 17, "status": 27, "survivability": 22},
}
