"""Test commands (`test voice port`, `test voice call`) and the simulated
board's phones and lines (`request sim phone|line`), loaded on the first
such command (firmware/hardware.py registers them).
"""
from firmware.compat import const
from firmware.hardware import STATE_READY, _LINEFEEDS


TEST_TONE_MS = const(10000)     # a test tone plays this long unless stopped
TEST_RING_BURSTS = const(3)     # a test ring rings this many times unless answered
TEST_DIAL_DELAY_MS = const(600)  # test voice call: off-hook, then dial after the dial tone
_TEST_TONES = ("dial", "busy", "ringback")


def _cid_datetime(app):
    """MMDDHHMM for caller ID: the local time once synchronised, else 01010000."""
    t = getattr(app, "time", None)
    now = t.now() if t is not None else None
    if now is None:
        return "01010000"
    s = t.local(now, zone=False)    # YYYY-MM-DD HH:MM:SS
    return s[5:7] + s[8:10] + s[11:13] + s[14:16]


def _port_arg(app, words, usage):
    from firmware.commands import CommandError
    if not words or not words[0].isdigit():
        raise CommandError("expected a port number: %s" % usage)
    hws = app.hardware
    port = int(words[0])
    if hws is None or port not in hws.hw.fxs:
        ports = " ".join(str(p) for p in sorted(hws.hw.fxs)) if hws is not None else ""
        raise CommandError("no FXS port %d on this board (FXS ports: %s)" % (port, ports or "none"))
    if hws.port_state.get(("fxs", port)) != STATE_READY:
        raise CommandError("FXS port %d is not ready (%s)" % (
            port, hws.port_fault.get(("fxs", port)) or hws.port_state.get(("fxs", port))))
    return port, hws.hw.fxs[port]


_PORT_USAGE = "test voice port N ring [caller-id NUMBER] | tone dial|busy|ringback | loop | stop"


def test_port(app, args):
    """test voice port N ring|tone NAME|loop|stop: the SLIC of an FXS port,
    bounded in time (TEST_RING_BURSTS rings, TEST_TONE_MS of tone)."""
    from firmware.commands import CommandError
    words = [a for a in args if not a.startswith("|")]
    port, drv = _port_arg(app, words, _PORT_USAGE)
    if len(words) < 2:
        raise CommandError("missing action: %s" % _PORT_USAGE)
    action, rest = words[1], words[2:]
    now = app.clock.now()
    if action == "loop":
        _no_more(rest, "test voice port N loop")
        return _loop_report(port, drv)
    if action == "stop":
        _no_more(rest, "test voice port N stop")
        drv.stop_ring(now)
        drv.stop_tone()
        return "FXS port %d: test stopped" % port
    if action == "ring":
        number = "0"
        if rest:
            if rest[0] != "caller-id" or len(rest) != 2 or not rest[1].isdigit() or len(rest[1]) > 20:
                raise CommandError("expected: test voice port N ring [caller-id NUMBER] (digits, "
                                   "up to 20), not '%s'" % " ".join(rest))
            number = rest[1]
        if drv.off_hook:
            raise CommandError("FXS port %d is off-hook: hang up first" % port)
        if drv.ringing:
            raise CommandError("FXS port %d is already ringing" % port)
        drv.ring(now, caller_id={"datetime": _cid_datetime(app), "number": number,
                                 "name": "TEST PORT %d" % port}, count=TEST_RING_BURSTS)
        app.log.info("test: ringing FXS port %d (caller ID %s, %d rings)" % (port, number, TEST_RING_BURSTS))
        return "FXS port %d: ringing %d times with caller ID %s (test voice port %d stop ends it)" % (
            port, TEST_RING_BURSTS, number, port)
    if action == "tone":
        if len(rest) != 1 or rest[0] not in _TEST_TONES:
            raise CommandError("expected: test voice port N tone dial|busy|ringback")
        if drv.ringing:
            raise CommandError("FXS port %d is ringing: test voice port %d stop first" % (port, port))
        drv.play_tone(rest[0], now)
        app.sched.spawn(_stop_tone_later(app, drv, rest[0]), "test tone")
        return "FXS port %d: %s tone for %d s (test voice port %d stop ends it)" % (
            port, rest[0], TEST_TONE_MS // 1000, port)
    raise CommandError("unknown action '%s': %s" % (action, _PORT_USAGE))


async def _stop_tone_later(app, drv, name):
    await app.sched.sleep(TEST_TONE_MS)
    if drv.tone is not None:
        drv.stop_tone()


def _no_more(words, usage):
    from firmware.commands import CommandError
    if words:
        raise CommandError("syntax error: unexpected word '%s' after '%s'" % (words[0], usage))


def _loop_report(port, drv):
    """What the SLIC tells about the line: loop closure, linefeed, battery.
    VBAT is register 82 at 376 mV per step (as DAHDI's wctdm reads it); the
    loop current and tip/ring voltage registers are not read: their scaling
    is not verified against a datasheet (docs/hardware-fidelity.md)."""
    lines = ["FXS port %d (%s) line test:" % (port, getattr(drv, "product", None) or drv.name)]
    lines.append("  Loop: %s" % ("closed (off-hook)" if drv.off_hook else "open (on-hook)"))
    lines.append("  Linefeed: %s" % _LINEFEEDS.get(drv.linefeed, str(drv.linefeed)))
    lines.append("  Ringing: %s, tone: %s" % ("yes" if drv.ringing else "no",
                                               "none" if drv.tone is None else
                                               "+".join(str(f) for f in drv.tone) + " Hz"))
    try:
        v = drv.read(82)
        mv = v * 376
        lines.append("  Battery (VBAT, reg 82 = 0x%02x): -%d.%d V" % (v, mv // 1000, mv % 1000 // 100))
    except OSError as e:
        lines.append("  Battery: unreadable (%s)" % e)
    lines.append("  Loop current, tip/ring voltage: not measured (register scaling unverified)")
    return "\n".join(lines)


def _station(app, word):
    """A station by name or extension (the committed configuration)."""
    from firmware.commands import CommandError
    s = getattr(app, "gateway_settings", None)
    for st in (s.stations if s is not None else ()):
        if word in (st.name, st.extension):
            return st
    raise CommandError("no station named or numbered %s" % word)


def test_call(app, args):
    """test voice call FROM TO: FROM's phone goes off-hook and dials TO's
    extension (the simulated board's phones; on hardware a person must)."""
    from firmware.commands import CommandError
    words = [a for a in args if not a.startswith("|")]
    if len(words) != 2:
        raise CommandError("expected: test voice call FROM TO (station names or extensions)")
    src = _station(app, words[0])
    dst = _station(app, words[1]) if not words[1].isdigit() else None
    number = dst.extension if dst is not None else words[1]
    if src.fxs_port is None:
        raise CommandError("station %s is a SIP phone: only an analog station's phone can be "
                           "taken off-hook from here" % src.name)
    sim = getattr(app.hardware, "sim", None) if app.hardware is not None else None
    if sim is None:
        raise CommandError("test voice call drives the simulated board's phones; on this board "
                           "lift the phone on FXS port %d and dial %s" % (src.fxs_port, number))
    phone = sim.phones.get(src.fxs_port)
    port, drv = _port_arg(app, [str(src.fxs_port)], "test voice call FROM TO")
    if drv.off_hook:
        raise CommandError("station %s (FXS port %d) is already off-hook" % (src.name, port))
    phone.off_hook()
    _SIM_OFFHOOK[port] = app.clock.now()
    app.sched.spawn(_dial_later(app, phone, number), "test call")
    app.log.info("test: call from %s (FXS port %d) to %s" % (src.name, port, number))
    return "Calling %s from %s (FXS port %d): off-hook, dialling %s; show calls, show ports" % (
        number, src.name, port, number)


async def _dial_later(app, phone, number):
    await app.sched.sleep(TEST_DIAL_DELAY_MS)
    phone.dial_dtmf(number + "#")


# --- the simulated board: a person's hands on its phones and lines ----------------

_SIM_PHONE_USAGE = "request sim phone N off-hook|on-hook|flash|dial DIGITS"
_SIM_LINE_USAGE = "request sim line N ring [caller-id NUMBER [NAME]] | stop"
_DIGITS = "0123456789*#ABCD"


def _sim_port(app, words, kind, usage):
    from firmware.commands import CommandError
    sim = getattr(app.hardware, "sim", None) if app.hardware is not None else None
    if sim is None:
        raise CommandError("no simulated board: request sim works with --board sim")
    table = sim.phones if kind == "phone" else sim.lines
    if not words or not words[0].isdigit():
        raise CommandError("expected a port number: %s" % usage)
    n = int(words[0])
    if n not in table:
        raise CommandError("no simulated %s on port %d (ports: %s)" % (
            kind, n, " ".join(str(p) for p in sorted(table)) or "none"))
    return n, table[n]


def sim_phone(app, args):
    from firmware.commands import CommandError
    words = [a for a in args if not a.startswith("|")]
    n, phone = _sim_port(app, words, "phone", _SIM_PHONE_USAGE)
    if len(words) < 2:
        raise CommandError("missing action: %s" % _SIM_PHONE_USAGE)
    action, rest = words[1], words[2:]
    if action == "dial":
        if len(rest) != 1 or not rest[0] or len(rest[0]) > 32 or \
                [c for c in rest[0] if c not in _DIGITS]:
            raise CommandError("expected: request sim phone N dial DIGITS (0-9 * # A-D, up to 32)")
        if not phone.hook:
            raise CommandError("phone %d is on-hook: request sim phone %d off-hook first" % (n, n))
        # a person waits for the dial tone: keys typed with the off-hook wait for it too
        since = _SIM_OFFHOOK.get(n)
        wait = 0 if since is None else since + SIM_DIAL_SETTLE_MS - app.clock.now()
        if wait > 0:
            app.sched.spawn(_dial_after(app, phone, rest[0], wait), "sim dial")
        else:
            try:
                phone.dial_dtmf(rest[0])
            except OverflowError as e:
                raise CommandError("phone %d: %s" % (n, e))
        return "phone %d: dialling %s" % (n, rest[0])
    _no_more(rest, "request sim phone N " + action)
    if action == "off-hook":
        if not phone.hook:
            _SIM_OFFHOOK[n] = app.clock.now()
        phone.off_hook()
    elif action == "on-hook":
        phone.on_hook()
        _SIM_OFFHOOK.pop(n, None)
    elif action == "flash":
        if not phone.hook:
            raise CommandError("phone %d is on-hook: a flash needs the phone off-hook" % n)
        try:
            phone.flash()
        except OverflowError as e:
            raise CommandError("phone %d: %s" % (n, e))
    else:
        raise CommandError("unknown action '%s': %s" % (action, _SIM_PHONE_USAGE))
    return "phone %d: %s" % (n, action)


_SIM_OFFHOOK = {}                 # phone port -> when it went off-hook
SIM_DIAL_SETTLE_MS = const(600)   # keys wait this long after the off-hook (dial tone)


async def _dial_after(app, phone, digits, wait):
    await app.sched.sleep(wait)
    if phone.hook:
        try:
            phone.dial_dtmf(digits)
        except OverflowError as e:
            app.log.write("warning", "request sim phone: %s" % e)


def sim_line(app, args):
    from firmware.commands import CommandError
    words = [a for a in args if not a.startswith("|")]
    n, line = _sim_port(app, words, "line", _SIM_LINE_USAGE)
    if len(words) < 2:
        raise CommandError("missing action: %s" % _SIM_LINE_USAGE)
    action, rest = words[1], words[2:]
    if action == "stop":
        _no_more(rest, "request sim line N stop")
        line.stop_ring()
        return "line %d: ringing stopped" % n
    if action != "ring":
        raise CommandError("unknown action '%s': %s" % (action, _SIM_LINE_USAGE))
    cid = None
    if rest:
        if rest[0] != "caller-id" or not 2 <= len(rest) <= 3 or not rest[1].isdigit() \
                or len(rest[1]) > 20 or (len(rest) == 3 and len(rest[2]) > 15):
            raise CommandError("expected: request sim line N ring [caller-id NUMBER [NAME]] "
                               "(NUMBER digits up to 20, NAME up to 15 characters)")
        cid = (rest[1], rest[2] if len(rest) == 3 else "", _cid_datetime(app))
    line.ring(caller_id=cid)
    return "line %d: ringing%s" % (n, " with caller ID %s" % " ".join(rest[1:]) if cid else "")
