"""Configuration and console entry points of message waiting (MWI), busy
lamps (BLF) and presence.  Loaded at boot (schema, commands); the code that
does the work (firmware/voice/mwi.py, firmware/callserver/events.py) is
imported only when it is needed: an MWI or voicemail statement, the first
SUBSCRIBE, or a console command that touches the state.

    services convergence-services {
        station bob {
            mwi-notify subscribe;         # subscribe (default: the phone SUBSCRIBEs to
                                          # message-summary) | unsolicited (NOTIFY to
                                          # every registered contact on each change)
            mailbox 2001;                 # voicemail box (default: the extension)
        }
        voicemail {                       # a central voicemail server
            server 192.0.2.20; port 5060; # one message-summary subscription per mailbox
            subscribe-expires 3600;       # renewed before it runs out; retried 60 s
        }                                 # after a failure
    }

Console (operational mode):
    request voice mwi station NAME new N old M [urgent U]
    show voice mwi
    show sip subscriptions              watcher, resource, event, expiry

The router module "events" (priority EVENTS, 42; firmware/voice/events_glue.py,
loaded with the call server) takes new out-of-dialog SUBSCRIBEs for the local
call server; it loads firmware/callserver/events.py on the first one.
"""
from firmware.config import schema as S
from firmware.voice.config import BASE

_BOX_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+"

S.register(BASE + " station", S.Leaf(
    "mwi-notify", S.Enum(("subscribe", "unsolicited")), default="subscribe",
    help="Message waiting for this station's SIP phones: subscribe (the phone subscribes "
         "to message-summary) or unsolicited (a NOTIFY to each registered contact on change)"))
S.register(BASE + " station", S.Leaf(
    "mailbox", S.String(1, 32, charset=_BOX_CHARS),
    help="Voicemail box of the station (default: its extension)"))

S.register(BASE, S.Container(
    "voicemail", "A central voicemail server: its message summaries light the lamps",
    children=(
        S.Leaf("server", S.IPv4Address(), help="Address of the voicemail server"),
        S.Leaf("port", S.Port(), default=5060, help="SIP port of the voicemail server"),
        S.Leaf("subscribe-expires", S.Integer(60, 86400, "seconds"), default=3600,
               help="Lifetime asked for each mailbox subscription; renewed before it ends"),
    )))


class MwiSettings:
    def __init__(self, cfg):
        self.boxes = {}           # station name -> mailbox
        self.unsolicited = []     # station names wanting unsolicited NOTIFYs
        for n in cfg.entries(BASE + " station"):
            c = cfg.section("%s station %s" % (BASE, n))
            self.boxes[n] = c.get("mailbox") or c.get("extension")
            if c.get("mwi-notify") == "unsolicited":
                self.unsolicited.append(n)
        v = BASE + " voicemail "
        self.server = cfg.get(v + "server")
        self.port = cfg.get(v + "port")
        self.expires = cfg.get(v + "subscribe-expires")

    def wanted(self):
        return bool(self.unsolicited or self.server)


def _cmd(name):
    def run(app, args, name=name):
        from firmware.voice import events_glue
        return events_glue.command(app, name, args)
    return run


def install(app):
    """Put the events module into the router once the call server runs, and
    build the MWI service when the configuration asks for it (idempotent;
    loads firmware/voice/events_glue.py only then)."""
    sip = getattr(app, "sip", None)
    if sip is None:
        return
    s = getattr(app, "mwi_settings", None)
    if getattr(app, "callserver", None) is None and (s is None or not s.wanted()):
        return
    from firmware.voice.events_glue import install as run
    run(app)


def _mwi_args(app, args, partial):
    """What may follow `request voice mwi` (completion and help)."""
    n = len(args)
    if n == 0:
        return [("station", "The station whose mailbox to set")]
    if n == 1:
        return [("<name>", "Station name")]
    if n % 2 == 0:
        return [(w, h) for w, h in (("new", "Number of new messages"),
                                    ("old", "Number of old (heard) messages"),
                                    ("urgent", "Number of urgent new messages"))
                if w.startswith(partial)]
    return [("<count>", "Number of messages (0-9999)")]


def apply(app, old, new):
    s = MwiSettings(new)
    app.mwi_settings = s
    if hasattr(app, "commands"):
        app.commands.register("request voice mwi", _cmd("request_mwi"),
                              "Set a station's message-waiting state: station NAME new N "
                              "old M [urgent U]", args=_mwi_args)
        app.commands.register("show voice mwi", _cmd("show_mwi"),
                              "Show the message-waiting state of each mailbox")
        app.commands.register("show sip subscriptions", _cmd("show_subscriptions"),
                              "Show event subscriptions: watcher, resource, event, expiry")
    m = getattr(app, "mwi", None)
    if m is not None:
        m.configure(s)
    install(app)


S.on_commit("mwi", apply)
