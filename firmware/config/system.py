"""`system` statements: host name, domain, root login, console, syslog,
NTP servers and the time zone.

The apply hook makes them take effect at once: the prompt follows host-name,
the log ring follows syslog, the console follows console settings.
"""
from firmware.config import schema as S
from firmware.log import LEVELS, MAX_LOG_ENTRIES
from firmware.compat import const

MAX_NTP_SERVERS = const(4)
MAX_SYSLOG_HOSTS = const(2)
FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp",
              "cron", "authpriv", "ftp", "ntp", "audit", "alert", "clock",
              "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7")


class TimeZone(S.Type):
    kind = "time-zone"

    def parse(self, text):
        from firmware.timezones import parse_zone
        parse_zone(text)
        return text

    def describe(self):
        return "UTC, UTC+H, UTC-HH:MM (fixed offsets) or a named zone (Europe/Berlin, America/New_York, ...)"

    def hint(self):
        return "<time-zone>"


S.register("", S.Container("system", "System parameters"))

S.register("system", S.Leaf(
    "host-name", S.Hostname(), default="branch",
    help="Host name shown in the prompt and in show version"))
S.register("system", S.Leaf(
    "domain-name", S.Hostname(253), help="Domain name of this appliance"))
S.register("system", S.Container(
    "root-authentication", "Authentication of the root user on the console", children=(
        S.Leaf("encrypted-password", S.PasswordHash(),
               help="Root password as a salted hash ($pbkdf2-sha256$ROUNDS$SALT$HASH)"),
        S.Leaf("plain-text-password", S.PlainPassword("encrypted-password"),
               help="Root password typed in clear; stored only as encrypted-password"),
    ), validate=lambda sub, view, path: (
        None if "encrypted-password" in sub else "needs encrypted-password or plain-text-password")))
S.register("system", S.Leaf(
    "time-zone", TimeZone(), default="UTC",
    help="Local time zone for dates: UTC, UTC+H[:MM] or a named zone (current DST rules only)"))
S.register("system", S.Container("ntp", "Network Time Protocol (SNTP client) settings", children=(
    S.List("server", "SNTP server asked for the time of day (several: asked in turn until one answers)", key=S.IPv4Address(),
           key_help="IPv4 address of the server", max_entries=MAX_NTP_SERVERS, children=(
               S.Leaf("port", S.Port(), default=123, help="UDP port of the server"),
           )),
)))
S.register("system", S.Container("console", "Serial console settings", children=(
    S.Leaf("baud-rate", S.Enum(("9600", "19200", "38400", "57600", "115200")), default="115200",
           help="Console UART speed, applied at once to a serial-device console (stdio and pty have none)"),
    S.Leaf("idle-timeout", S.Integer(0, 1440, "minutes"), default=0,
           help="Log out an idle console session after this many minutes (0: never)"),
    S.Leaf("screen-length", S.Integer(0, 512, "lines"), default=0,
           help="Page output longer than this many lines with ---(more)--- (0: no paging)"),
)))
S.register("system", S.Container("syslog", "System log settings", children=(
    S.Leaf("level", S.Enum(LEVELS), default="info",
           help="Lowest severity kept in the system log"),
    S.Leaf("size", S.Integer(10, 1000, "entries"), default=MAX_LOG_ENTRIES,
           help="Entries kept in the system log ring; the oldest is dropped when full"),
    S.List("host", "Remote syslog receiver: RFC 5424 messages over UDP", key=S.IPv4Address(),
           key_help="IPv4 address of the syslog receiver", max_entries=MAX_SYSLOG_HOSTS, children=(
               S.Leaf("port", S.Port(), default=514, help="UDP port of the receiver"),
               S.Leaf("facility", S.Enum(FACILITIES), default="local0",
                      help="Syslog facility of the messages"),
               S.Leaf("level", S.Enum(LEVELS), default="info",
                      help="Lowest severity sent to this receiver (the log's own level applies first)"),
           )),
)))


def apply(app, old, new):
    app.hostname = new.get("system host-name")
    t = getattr(app, "time", None)
    if t is not None:
        t.set_zone(new.get("system time-zone"))
    base = "system syslog host %s "
    hosts = [(h, new.get(base % h + "port"), new.get(base % h + "facility"),
              new.get(base % h + "level")) for h in new.entries("system syslog host")]
    if hosts and getattr(app, "syslog", False) is None and hasattr(app, "sched"):
        from firmware.syslog import RemoteSyslog     # loaded once a receiver is configured
        app.syslog = RemoteSyslog(app)
    if getattr(app, "syslog", None) is not None:
        app.syslog.configure(hosts)
    servers = [(a, new.get("system ntp server %s port" % a)) for a in new.entries("system ntp server")]
    if servers and getattr(app, "ntp", False) is None and hasattr(app, "sched"):
        from firmware.ntp import NtpService          # loaded once a server is configured
        app.ntp = NtpService(app)
    if getattr(app, "ntp", None) is not None:
        app.ntp.configure(servers)
    app.log.min_level = new.get("system syslog level")
    stream = getattr(app, "console_stream", None)
    if stream is not None and hasattr(stream, "set_baud"):
        stream.set_baud(int(new.get("system console baud-rate")))
    size = new.get("system syslog size")
    log = app.log
    log.max_entries = size
    while len(log.entries) > size:
        log.entries.pop(0)
        log.dropped += 1


S.on_commit("system", apply)
