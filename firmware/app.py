"""The appliance: one object that owns the clock, scheduler, log, random
source, state directory, hardware and services, and boots them in order.

Tests build it in-process with a VirtualClock and a seed; `python -m firmware`
builds it with the real clock.
"""
import gc

from firmware import version
from firmware.compat import Random, wall_time
from firmware.commands import Registry
from firmware.log import Log
from firmware.sched import Scheduler, RealClock, RESTART


class Appliance:
    def __init__(self, opts, clock=None, rng=None, out=None):
        self.opts = opts
        self.clock = clock or RealClock()
        self.log = Log(self.clock)
        self.sched = Scheduler(self.clock, log=self.log.write)
        self.sched.on_hog = self._hog
        self.rng = rng or Random(opts.seed)
        self.out = out or print       # boot messages
        self.commands = Registry()
        self.hostname = "branch"
        self.user = "root"
        self.stopping = False
        self.stop_reason = None
        self.booted_at = None
        self.boot_wall = None
        self.console = None
        self.console_stream = None
        self.sip_port = None
        self.board = None
        self.hardware = None
        self.state_dir = opts.state
        _register_core_commands(self.commands)

    def _hog(self, name, ms):
        self.log.write("warning", "watchdog: task %s held the loop for %d ms" % (name, ms))

    def boot(self):
        """Bring everything up; returns the boot line.  Raises BootError with a
        message a user can act on."""
        import boards
        _ensure_dir(self.state_dir)
        try:
            self.board = boards.load(self.opts.board)
        except ValueError as e:
            raise BootError(str(e))
        self.booted_at = self.clock.now()
        self.boot_wall = wall_time()
        self._bind_sip()
        if self.opts.config:
            self.load_config_file(self.opts.config)
        console = self.opts.console
        if console != "none":
            from firmware.term import open_console
            try:
                self.console_stream = open_console(console)
            except OSError as e:
                raise BootError("cannot open console %s: %s" % (console, e))
            from firmware.console import Console
            self.console = Console(self, self.console_stream)
        label = self.console_stream.label if self.console_stream else "none"
        line = "%s %s booted on board %s: SIP port %d, console %s" % (
            version.PRODUCT, version.VERSION, self.opts.board, self.sip_port, label)
        self.log.info(line)
        return line

    def _bind_sip(self):
        import socket
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(socket.getaddrinfo(self.opts.sip_host, self.opts.sip_port)[0][-1])
        except OSError as e:
            raise BootError("cannot bind SIP port %s:%d: %s" % (
                self.opts.sip_host, self.opts.sip_port, e))
        self.sip_socket = s
        self.sip_port = _bound_port(s, self.opts.sip_port)

    def load_config_file(self, path):
        try:
            with open(path) as f:
                lines = f.read().split("\n")
        except OSError as e:
            raise BootError("cannot read config file %s: %s" % (path, e))
        for n, line in enumerate(lines, 1):
            text = line.strip()
            if text and not text.startswith("#"):
                raise BootError("config file %s line %d: cannot apply %r: "
                                "the configuration engine is not part of this build" % (path, n, text))

    def start(self):
        """Start the long-running tasks; call after boot()."""
        if self.console is not None:
            self.sched.spawn(self.console.run, "console", RESTART)

    def run(self):
        self.start()
        self.sched.run()
        self.close()

    def shutdown(self, reason):
        self.log.info("shutdown: %s" % reason)
        self.stopping = True
        self.stop_reason = reason
        self.sched.stop()

    def close(self):
        if self.console_stream is not None:
            self.console_stream.close()
        if getattr(self, "sip_socket", None) is not None:
            self.sip_socket.close()
            self.sip_socket = None

    def uptime_ms(self):
        return self.clock.now() - (self.booted_at or 0)


class BootError(Exception):
    pass


def _ensure_dir(path):
    import os
    try:
        os.stat(path)
    except OSError:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p:
                try:
                    os.mkdir(p)
                except OSError:
                    pass


def _bound_port(sock, requested):
    if requested:
        return requested
    try:
        return sock.getsockname()[1]
    except AttributeError:  # MicroPython has no getsockname
        raise BootError("--sip-port 0 needs getsockname; give a port number")


def _fmt_duration(ms):
    s = ms // 1000
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    out = "%d:%02d:%02d" % (h, m, s)
    return ("%d day%s, " % (d, "" if d == 1 else "s") + out) if d else out


def _show_version(app, args):
    import sys
    impl = sys.implementation
    return "\n".join((
        "Hostname: %s" % app.hostname,
        "Model: %s (board %s)" % (version.PRODUCT, app.opts.board),
        "Firmware: %s %s" % (version.PRODUCT, version.VERSION),
        "Runtime: %s %s" % (impl.name, ".".join(str(x) for x in impl.version[:3])),
    ))


def _show_uptime(app, args):
    return "System booted: %s ago\nCurrent time: %d ms on the system clock" % (
        _fmt_duration(app.uptime_ms()), app.clock.now())


def _show_memory(app, args):
    gc.collect()
    try:
        free, used = gc.mem_free(), gc.mem_alloc()
        return "Heap: %d bytes used, %d bytes free, %d total" % (used, free, used + free)
    except AttributeError:
        import resource
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return "Process peak resident memory: %d KiB" % rss


def _show_log(app, args):
    lines = app.log.lines()
    if app.log.dropped:
        lines.insert(0, "(%d older entries dropped)" % app.log.dropped)
    return "\n".join(lines)


def _reboot(app, args):
    app.shutdown("request system reboot")
    return "Rebooting"


def _register_core_commands(reg):
    reg.register("show version", _show_version, "Show firmware version and runtime")
    reg.register("show system uptime", _show_uptime, "Show time since boot")
    reg.register("show system memory", _show_memory, "Show heap or process memory use")
    reg.register("show log", _show_log, "Show the system log")
    reg.register("request system reboot", _reboot, "Reboot the appliance")
    reg.register("exit", lambda app, args: app.shutdown("exit") or "", "Leave the console")
