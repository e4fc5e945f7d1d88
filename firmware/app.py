"""The appliance: one object that owns the clock, scheduler, log, random
source, state directory, hardware and services, and boots them in order.

Tests build it in-process with a VirtualClock and a seeded Random (the
simulation's injection point: `rng=`); `python -m firmware` builds it with the
real clock and the operating system's cryptographic source (SystemRandom),
whatever --seed says: tags, branches, Call-IDs, nonces, salts and SSRCs are
seen by outsiders and must not be predictable from a seed.
"""
import gc

from firmware import version, textfmt
from firmware.compat import SystemRandom, wall_time, tune_gc, mkdirs, MICROPYTHON
from firmware.commands import Registry
from firmware.log import Log
from firmware.sched import Scheduler, RealClock, RESTART


class Appliance:
    def __init__(self, opts, clock=None, rng=None, out=None, sim_options=None, network=None):
        self.opts = opts
        self.sim_options = sim_options  # fault injection for the simulated board (tests)
        self.network = network          # simulation: an in-memory network instead of sockets
        self.clock = clock or RealClock()
        self.log = Log(self.clock)
        from firmware.timeofday import TimeOfDay
        self.time = TimeOfDay(self.clock, self.log.write)   # the one "wall time now"
        self.log.time = self.time
        self.ntp = None         # firmware/ntp.py, once `system ntp server` is configured
        self.syslog = None      # firmware/syslog.py, once `system syslog host` is
        self.sched = Scheduler(self.clock, log=self.log.write)
        self.sched.on_hog = self._hog
        # only the in-process simulation injects a (seeded) generator; see the docstring
        self.rng = rng if rng is not None else SystemRandom()
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
        self.identity = None      # firmware/sipstack/identity.py, once SIP is bound
        self._domain = None       # `sip domain` committed before SIP is bound
        from firmware.voice.control import Control
        self.control = Control(self)   # who is in control of calls: the one owner
        from firmware.cdr.stream import CallEvents
        self.calls = CallEvents(self)  # the one call-event stream (docs/cdr.md)
        self.board = None
        self.hardware = None
        self.state_dir = opts.state
        _register_core_commands(self.commands)
        from firmware.config.engine import ConfigEngine
        self.config = ConfigEngine(self)
        from firmware import hardware
        hardware.register_commands(self.commands)
        from firmware import softwarecmd   # A/B slots: show/request system software
        softwarecmd.register_commands(self.commands)

    def _hog(self, name, ms):
        self.log.write("warning", "watchdog: task %s held the loop for %d ms" % (name, ms))

    def boot(self):
        """Bring everything up; returns the boot line.  Raises BootError with a
        message a user can act on."""
        import boards
        mkdirs(self.state_dir)
        try:
            self.board = boards.load(self.opts.board)
        except ValueError as e:
            raise BootError(str(e))
        try:
            self.config.boot()   # the committed configuration from flash, applied
        except OSError as e:
            raise BootError("cannot read the configuration in %s/config: %s" % (self.state_dir, e))
        self.booted_at = self.clock.now()
        self.boot_wall = wall_time()
        if getattr(self.opts, "seed", None) is not None and isinstance(self.rng, SystemRandom):
            self.log.info("--seed %d ignored: identifiers and secrets come from the OS "
                          "random source (a seed only drives the in-process simulation)"
                          % self.opts.seed)
        self._start_hardware()
        self._bind_sip()
        self._start_gateway()
        self._start_callserver()
        from firmware.voice.events_config import install
        install(self)       # MWI/BLF: loads their code only when configured
        if self.opts.config:
            self.load_config_file(self.opts.config)
        console = self.opts.console
        if console != "none":
            from firmware.term import open_console
            try:
                self.console_stream = open_console(
                    console, int(self.config.get("system console baud-rate")))
            except OSError as e:
                raise BootError("cannot open console %s: %s" % (console, e))
            from firmware.console import Console
            self.console = Console(self, self.console_stream)
        label = self.console_stream.label if self.console_stream else "none"
        line = "%s %s booted on board %s: SIP port %d, console %s" % (
            version.PRODUCT, version.VERSION, self.opts.board, self.sip_port, label)
        if self.config.boot_notice:
            line += "\n*** " + self.config.boot_notice
        self.log.info(line)
        return line

    def _start_hardware(self):
        from firmware.hardware import HardwareService
        backend = self.opts.hal or ("sim" if self.opts.board == "sim" else
                                    "mpy" if MICROPYTHON else "linux")
        try:
            self.hardware = HardwareService(self, backend, self.sim_options)
        except (ImportError, OSError, ValueError) as e:
            raise BootError("cannot build the %s hardware for board %s: %s" % (backend, self.opts.board, e))
        if self.hardware.sim is not None:
            from firmware.hardware import register_sim_commands
            register_sim_commands(self.commands)

    def _bind_sip(self):
        """Bind the SIP transports (UDP+TCP, IPv4 and optional IPv6) and build
        the SIP core; its tasks start in start()."""
        from firmware.sipstack.transport import Transports
        from firmware.sipstack.core import SipCore
        from firmware.sipstack.identity import SipIdentity
        domain = self._domain or getattr(self.opts, "domain", None) or _default_domain()
        port = self.opts.sip_port  # the flag wins over `sip port` in the configuration
        if port is None:
            port = self.voice.sip_port if getattr(self, "voice", None) else 5060
        if self.network is not None:    # simulation (firmware/sipstack/simnet.py)
            from firmware.sipstack.simnet import SimTransports
            tp = SimTransports(self.network, self.sched, self.log.write, self.rng,
                               self.opts.sip_host, port)
        else:
            tp = Transports(self.sched, self.log.write, self.rng, self.opts.sip_host, port)
        if getattr(self, "sip_dscp", None) is not None:
            tp.dscp = self.sip_dscp
        try:
            bound = tp.open()
        except OSError as e:
            tp.close()
            raise BootError("cannot bind SIP port %s:%d: %s" % (self.opts.sip_host, port, e))
        self.identity = SipIdentity(tp.host, bound, domain)
        self.sip_transports = tp
        self.sip = SipCore(self, tp)
        self.commands.register("show sip statistics", lambda app, args: app.sip.statistics(),
                               "Show SIP transport and transaction counters")
        self.commands.register("show sip modules", lambda app, args: app.sip.router.show(),
                               "Show the SIP router's modules in order, with their counters")
        self._start_security()

    def _start_security(self):
        """Allow list, blocked sources and rate limit apply to every SIP
        request, with or without stations (firmware/sipstack/security.py);
        allow list, blocked sources and the per-source cap also to every TCP
        connection, at accept (firmware/sipstack/transport.py)."""
        from firmware.sipstack.security import Security
        sec = Security(self.log.write)
        s = getattr(self, "security_settings", None)
        if s is not None:
            sec.configure(s)
        self.security = sec
        clock = self.clock

        def screen(msg, src, sec=sec, self=self):
            a = src.addr
            if self.own_address(a):
                return None     # the appliance itself: the analog gateway and the call server
            return sec.gate(a[0], a[1], msg.method, clock.now())
        from firmware.sipstack.router import Module, SECURITY
        self.sip.router.add(Module("security", SECURITY, (), screen=screen))

        def admit(addr, sec=sec, self=self):   # TCP: the same lists, at accept
            if self.own_address(addr):
                return None
            return sec.admit(addr[0], addr[1], clock.now())
        tp = self.sip_transports
        tp.admit = admit
        tp.max_per_source = sec.settings.tcp_per_source
        self.sip.stat_sections.append(("Security", sec.statistics))

    @property
    def sip_port(self):
        return self.identity.port if self.identity is not None else None

    @property
    def sip_domain(self):
        return self.identity.domain if self.identity is not None else self._domain

    def own_address(self, addr):
        """Is addr the appliance's own SIP socket, the source of what the analog
        gateway and the call server send each other?"""
        return self.identity is not None and self.identity.is_own(addr)

    def rebind_sip(self, port):
        """Move the SIP service to another port live (config: sip port).  On
        failure the old port stays bound and ConfigError fails the commit."""
        tp = getattr(self, "sip_transports", None)
        if tp is None or port == self.sip_port:
            return
        from firmware.config.schema import ConfigError
        old = self.sip_port
        tp.close()
        for candidate in (port, old):
            tp.port = candidate
            try:
                tp.open()
            except OSError as e:
                tp.close()
                if candidate == port:
                    err = e
                    continue
                raise ConfigError("services convergence-services sip port", port,
                                  "cannot bind (%s), and the old port %d is lost: %s" % (err, old, e))
            tp.start()
            self.sip.layer.via_port = tp.port
            self.identity.moved(port=tp.port)
            if candidate == port:
                self.log.info("SIP service moved from port %d to %d" % (old, port))
                return
            raise ConfigError("services convergence-services sip port", port,
                              "cannot bind: %s; still on port %d" % (err, old))

    def _start_gateway(self):
        """The analog line agents (firmware/gateway): FXS stations, FXO trunks;
        built after hardware and SIP, configured by app.gateway_settings."""
        self.gateway = None
        if getattr(self, "sip", None) is None:
            return
        s = getattr(self, "gateway_settings", None)
        if s is None or not s.wanted():
            return      # built by the config apply hook once stations/trunks/peer exist
        from firmware.gateway.service import GatewayService
        self.gateway = GatewayService(self)

    def _start_callserver(self):
        """The branch call server (firmware/callserver): registrar and B2BUA,
        built once a station is configured (app.callserver_settings)."""
        self.callserver = None
        s = getattr(self, "callserver_settings", None)
        if getattr(self, "sip", None) is None or s is None or not s.stations:
            return
        from firmware.callserver.service import CallServer
        self.callserver = CallServer(self)

    def set_domain(self, name):
        """The SIP domain the appliance serves (config: sip domain)."""
        self._domain = name
        if self.identity is not None:
            self.identity.moved(domain=name)
            self.sip.set_domain(name)

    def set_dscp(self, value):
        """DSCP for SIP signalling (config: service class); applied live."""
        self.sip_dscp = value
        if getattr(self, "sip_transports", None) is not None:
            self.sip_transports.set_dscp(value)

    def load_config_file(self, path):
        """--config FILE: every line a configuration-mode statement (set, delete,
        # comments), then one commit; a bad line stops boot and applies nothing."""
        from firmware.config.schema import ConfigError
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise BootError("cannot read config file %s: %s" % (path, e))
        try:
            text = data.decode()
        except UnicodeError:
            # like every other bad line: name the line (the first undecodable one)
            n = 0
            for line in data.split(b"\n"):
                n += 1
                try:
                    line.decode()
                except UnicodeError:
                    raise BootError("config %s line %d: not valid UTF-8 text" % (path, n))
            raise BootError("config %s: not valid UTF-8 text" % path)
        try:
            self.config.load_file(path, text)
        except ConfigError as e:
            raise BootError(str(e))

    def start(self):
        """Start the long-running tasks; call after boot()."""
        if self.hardware is not None:
            self.hardware.start()
        if getattr(self, "sip", None) is not None:
            self.sip.start()
        if getattr(self, "gateway", None) is not None:
            self.gateway.start()
        self.gateway_started = True
        if getattr(self, "callserver", None) is not None:
            self.callserver.start()
        self.callserver_started = True
        if getattr(self, "mwi", None) is not None:
            self.mwi.start()
        self.mwi_started = True
        if self.console is not None:
            self.console_stream.activate()
            self.sched.spawn(self.console.run, "console", RESTART)
        self.gc_threshold = tune_gc()   # after boot: the share is of what boot left free
        from firmware import softwarecmd
        softwarecmd.running(self)       # a trial slot that got here becomes the active one

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
        self.calls.end_all("appliance shutdown")    # their CDRs, then the log's last fsync
        if getattr(self, "cdr", None) is not None:
            self.cdr.close()
        if self.console_stream is not None:
            self.console_stream.close()
        if getattr(self, "sip_transports", None) is not None:
            self.sip_transports.close()
            self.sip_transports = None

    def uptime_ms(self):
        return self.clock.now() - (self.booted_at or 0)


class BootError(Exception):
    pass


def _default_domain():
    try:
        import socket
        name = socket.gethostname()
        if name:
            return name.lower()
    except (AttributeError, OSError):
        pass
    return "localdomain"


def _bound_port(sock, requested):
    if requested:
        return requested
    try:
        return sock.getsockname()[1]
    except AttributeError:  # MicroPython has no getsockname
        raise BootError("--sip-port 0 needs getsockname; give a port number")


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
    _no_args("show system uptime", args)
    t = app.time
    now = t.now()
    out = []
    if now is None:
        out.append("Current time: not synchronised (no answer from an NTP server yet)")
    else:
        out.append("Current time: %s" % t.local(now))
    out.append("Time zone: %s" % t.zone[4])
    if t.last_sync is None:
        out.append("Last time sync: never")
    else:
        out.append("Last time sync: %s ago from %s:%d (delay %d ms)" % (
            textfmt.duration(app.clock.now() - t.last_sync), t.server[0], t.server[1], t.delay))
    out.append(app.ntp.show() if app.ntp is not None else "NTP: no server configured")
    booted = "System booted: %s ago" % textfmt.duration(app.uptime_ms())
    if now is not None:
        booted = "System booted: %s (%s ago)" % (t.local(t.unix_ms(app.booted_at or 0)),
                                                 textfmt.duration(app.uptime_ms()))
    out.append(booted)
    return "\n".join(out)


def _no_args(cmd, args):
    """Extra words after a command that takes none are an error naming the word."""
    from firmware.commands import CommandError
    for a in args:
        if not a.startswith("|"):
            raise CommandError("%s: unexpected '%s'" % (cmd, a))


def _show_memory(app, args):
    gc.collect()
    try:
        free, used = gc.mem_free(), gc.mem_alloc()
        out = "Heap: %d bytes used, %d bytes free, %d total" % (used, free, used + free)
        t = getattr(app, "gc_threshold", None)
        if t:
            out += "\nGarbage collection: after every %d bytes allocated" % t
        return out
    except AttributeError:
        import resource
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return "Process peak resident memory: %d KiB" % rss


def _show_log(app, args):
    _no_args("show log", args)
    lines = app.log.lines()
    if app.log.dropped:
        lines.insert(0, "(%d older entries dropped)" % app.log.dropped)
    remote = app.syslog.show() if app.syslog is not None else None
    if remote:
        lines.insert(0, remote)
    if not app.time.synced:
        lines.insert(0, "(time not synchronised: entries show the time since boot)")
    return "\n".join(lines)


def _confirm_stop(what, reason, done):
    def _stop(app, args):
        from firmware.commands import Prompt
        _no_args("request system " + what, args)

        def answer(a):
            a = a.strip().lower()
            if a in ("y", "yes"):
                app.log.info("console: request system %s by %s" % (what, app.user))
                app.shutdown(reason)
                return done
            return "%s cancelled" % what.capitalize()
        # no default: a piped console reads the answer from the next line
        return Prompt("%s the system ? [yes,no] (no) " % what.capitalize(), answer)
    return _stop


def _end_session(app, args):
    """exit / quit / logout at the operational prompt: the console session
    ends (and logs out where a login is set); the appliance keeps running."""
    _no_args("exit", args)
    console = app.console
    if console is not None:
        console.ending = True
    return ""


def _register_core_commands(reg):
    reg.register("show version", _show_version, "Show firmware version and runtime")
    reg.register("show system uptime", _show_uptime, "Show time since boot")
    reg.register("show system memory", _show_memory, "Show heap or process memory use")
    reg.register("show log", _show_log, "Show the system log")
    reg.register("request system reboot", _confirm_stop("reboot", "request system reboot", "Rebooting"),
                 "Reboot the appliance (asks for confirmation)")
    reg.register("request system halt", _confirm_stop("halt", "request system halt", "Halting"),
                 "Stop the appliance (asks for confirmation)")
    for word in ("exit", "quit", "logout"):
        reg.register(word, _end_session, "End this console session (log out); the appliance keeps running")
