"""`system accounting radius` statements (RFC 2866 accounting of calls):

    set system accounting radius server 192.0.2.10 secret "s3cret" port 1813
    set system accounting radius server 192.0.2.11 secret "other"
    set system accounting radius timeout 3 retries 3 dead-time 60
    set system accounting radius interim-interval 300
    set system accounting radius backlog-size 1024
    set system accounting radius nas-identifier branch-1 nas-ip-address 192.0.2.1

The secret is a reversible $9$ secret (shown obfuscated).  The service
(firmware/radius/service.py) is loaded once a server is configured.
"""
from firmware.compat import const
from firmware.config import schema as S

# here, not in client.py / journal.py: this module is loaded at every boot, they only
# once a server is configured
MAX_SERVERS = const(4)          # accounting servers (failover in configuration order)
MAX_BACKLOG = const(4096)       # records the backlog on flash can be configured to keep

BASE = "system accounting radius"


def _interval(value, view, path):
    if value and value < 60:
        return "interim-interval must be 0 (off) or 60..86400 seconds"
    return None


def _server(sub, view, path):
    return None if "secret" in sub else "needs a secret (set ... secret TEXT)"


S.register("system", S.Container("accounting", "Accounting of calls"))
S.register("system accounting", S.Container("radius", "RADIUS accounting (RFC 2866) of every call", children=(
    S.List("server", "RADIUS accounting server (several: failover in this order)", key=S.IPv4Address(),
           key_help="IPv4 address of the server", max_entries=MAX_SERVERS, validate=_server, children=(
               S.Leaf("secret", S.Secret(), help="Shared secret of this server"),
               S.Leaf("port", S.Port(), default=1813, help="UDP port of the server"),
           )),
    S.Leaf("timeout", S.Integer(1, 30, "seconds"), default=3,
           help="Wait for an answer before the first retransmission (doubled at each one)"),
    S.Leaf("retries", S.Integer(0, 10), default=3,
           help="Retransmissions to one server before it is skipped for dead-time"),
    S.Leaf("dead-time", S.Integer(5, 3600, "seconds"), default=60,
           help="How long a server that did not answer is skipped (then probed again)"),
    S.Leaf("interim-interval", S.Integer(0, 86400, "seconds"), default=0, validate=_interval,
           help="Interim-Update of each call this often (0: none; at least 60)"),
    S.Leaf("backlog-size", S.Integer(16, MAX_BACKLOG, "records"), default=1024,
           help="Records kept on flash while no server answers; when full, Interim-Updates go first"),
    S.Leaf("nas-identifier", S.Hostname(), help="NAS-Identifier sent (default: the host name)"),
    S.Leaf("nas-ip-address", S.IPv4Address(), help="NAS-IP-Address sent (default: the SIP address)"),
)))


def _show(app, args):
    from firmware.app import _no_args
    _no_args("show accounting radius", args)
    r = getattr(app, "radius", None)
    return r.show() if r is not None else "RADIUS accounting: no server configured"


def apply(app, old, new):
    if hasattr(app, "commands"):
        app.commands.register("show accounting radius", _show,
                              "Show RADIUS accounting: servers, state, counters, backlog")
    if getattr(app, "radius", None) is None and not new.entries(BASE + " server"):
        return      # nothing configured, nothing running: the service's code stays unloaded
    from firmware.radius.service import RadiusSettings
    s = RadiusSettings(new)
    if s.servers and getattr(app, "radius", None) is None and hasattr(app, "sched"):
        from firmware.radius.service import RadiusService
        app.radius = RadiusService(app)
    if getattr(app, "radius", None) is not None:
        app.radius.configure(s)


S.on_commit("radius", apply)
