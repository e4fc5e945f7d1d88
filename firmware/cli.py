"""Command-line flags of the appliance, parsed the same way on both interpreters.

    python -m firmware --board sim --state DIR [--config FILE] [--sip-port N]
                       [--console stdio|pty|none|DEVICE]

A hand-written parser: MicroPython's argparse differs from CPython's in help
output and error behaviour, and the flags are few.
"""

FLAGS = (
    # (flag, dest, default, metavar, help)
    ("--board", "board", "sim", "NAME",
     "board description to run on (boards/NAME.py); 'sim' is the simulated board"),
    ("--state", "state", "state", "DIR",
     "directory holding the flash image: configuration, rollbacks, CDRs (created if missing)"),
    ("--config", "config", None, "FILE",
     "file of configuration statements (as typed in configuration mode) committed at boot"),
    ("--sip-port", "sip_port", None, "N",
     "UDP/TCP port for SIP, overriding `sip port` in the configuration (default 5060); "
     "0 picks a free port, which the boot line names"),
    ("--sip-host", "sip_host", "0.0.0.0", "ADDR",
     "address the SIP sockets bind to"),
    ("--domain", "domain", None, "NAME",
     "SIP domain the appliance serves until the configuration sets one "
     "(default: the host name)"),
    ("--console", "console", "stdio", "stdio|pty|none|DEVICE",
     "where the console runs: the terminal, a new pseudo-terminal (its path is printed), "
     "no console, or a serial device path"),
    ("--hal", "hal", None, "sim|linux|mpy",
     "hardware backend; default: sim for board sim, else linux (CPython) or mpy (MicroPython)"),
    ("--seed", "seed", None, "N",
     "accepted for scripts, but a booted appliance ignores it (logged): tags, branches, "
     "nonces and salts always come from os.urandom; only the in-process simulation is seeded"),
    ("--exit-after-boot", "exit_after_boot", False, None,
     "boot, print the boot line and the heap in use, then shut down (used by tools/heap.py)"),
)

USAGE = "usage: python -m firmware [--help] " + " ".join(
    "[%s%s]" % (f[0], " " + f[3] if f[3] else "") for f in FLAGS)


class UsageError(Exception):
    pass


class Options:
    pass


def help_text():
    lines = [USAGE, "", "Boot the branch voice appliance.", "", "options:",
             "  --help                show this help and exit"]
    for flag, _, default, metavar, text in FLAGS:
        left = "  %s%s" % (flag, " " + metavar if metavar else "")
        suffix = "" if default in (None, False) else " (default: %s)" % default
        lines.append(left)
        lines.append("        " + text + suffix)
    return "\n".join(lines)


def parse(argv):
    opts = Options()
    for _, dest, default, _, _ in FLAGS:
        setattr(opts, dest, default)
    opts.help = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            opts.help = True
            i += 1
            continue
        value = None
        if arg.startswith("--") and "=" in arg:
            arg, value = arg.split("=", 1)
        spec = None
        for f in FLAGS:
            if f[0] == arg:
                spec = f
        if spec is None:
            raise UsageError("unknown option %r (see --help)" % argv[i])
        flag, dest, default, metavar, _ = spec
        if metavar is None:
            setattr(opts, dest, True)
            i += 1
            continue
        if value is None:
            if i + 1 >= len(argv):
                raise UsageError("%s needs a value: %s" % (flag, metavar))
            value = argv[i + 1]
            i += 1
        i += 1
        if dest in ("sip_port", "seed"):
            try:
                value = int(value)
            except ValueError:
                raise UsageError("%s takes a number, not %r" % (flag, value))
            if dest == "sip_port" and not 0 <= value <= 65535:
                raise UsageError("--sip-port must be 0..65535, not %d" % value)
        setattr(opts, dest, value)
    return opts
