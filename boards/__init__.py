"""Board descriptions as data (Zephyr devicetree style).  load(name) -> dict.

Keys of a board dict:
  name, description, country, law ('ulaw'|'alaw')
  spi:  {bus_id: {"bus": n, "mode": 3, "speed_hz": hz, "cs_pins": (gpio, ...)}}
  i2c:  {bus_id: {"bus": n, "freq": hz}}
  pcm:  {"kind": "sim"|"file"|"bcm2835"|"tdm", "channels": n, ...}
        file: "rx"/"tx" FIFO path patterns; tdm: "device" (a TDM character
        device, interleaved timeslots); bcm2835: "alsa" (ALSA device of the
        Pi's PCM block, driven through arecord/aplay from alsa-utils)
  fxs:  ({"port": n, "chip": "si3215"|"si3210", "spi": bus_id, "cs": n,
          "pcm_chan": n, "timeslot": n, "chain": n}, ...)
        chain: position on a daisy chain sharing cs (channel-select byte 1 << n,
        after the driver turns daisy-chain mode on: reg 0 bit 7)
        dtmf: "auto" (chip decoder on the Si3210, software on the Si3215),
        "chip" or "soft"; vmwi: "fsk" (MDMF on-hook) or "neon" (lamp);
        dcdc_pwm / dcdc_engage: regs 92 / 93 (default 0xFF / 0x19, DAHDI's;
        the low bits depend on the board's DC-DC parts: check the datasheet);
        loop_current_ma: reg 71 (20 + 3 n mA; default 23)
  fxo:  ({"port": n, "chip": "si3050", "spi": bus_id, "cs": n, "cid": n,
          "pcm_chan": n, "supervision": (...), "answer_polarity": bool,
          "cs_per_byte": bool, "polarity_debounce_ms": ms, "loop_settle_ms": ms}, ...)
        cs_per_byte: True (default, DAHDI: CS rises after every byte) or False
        (one CS frame for the three bytes: unverified, check the datasheet);
        polarity_debounce_ms: 64 (DAHDI) or 200 (xpp); loop_settle_ms: 650
  poe:  ({"chip": "tps23861", "i2c": bus_id, "addr": 0x30, "ports": (1, 2, 3, 4),
          "budget_w": w, "priorities": (p0, p1, p2, p3), "mode": "semi-auto",
          "shunt_mohm": 255, "device_id": 1}, ...)
        shunt_mohm: the board's current-sense shunt, 255 (default) or 250: the
        driver sets 0x17 b0 from it (as Linux does) and scales the currents;
        device_id: expected 0x43 bits 7:5 (default 1: unverified, check the
        TPS23861 datasheet before trusting a rejection on real hardware)
  leds: {"power": gpio, "status": gpio, "survivability": gpio, "fxs1": gpio, ...}
"""

BOARDS = ("sim", "srx210", "srx240", "rpi_oak8x", "rpi_poe")


class UnknownBoard(ValueError):
    pass


def load(name):
    if name not in BOARDS:
        raise UnknownBoard("unknown board %r; available boards: %s" % (name, ", ".join(BOARDS)))
    mod = __import__("boards." + name, None, None, ["BOARD"])
    return mod.BOARD


def available():
    return BOARDS
