"""Commit warnings for settings that would lock the phones out.

An allow list (`security allow-list`) that leaves out a source the appliance
is serving now (a registered phone's address) or must hear from (the peer
call server) does not fail the commit (the change may be meant), but the
commit says so, naming the sources, and the warning goes to the log.
Loaded by the commit check in firmware/config/voice.py once an allow list
is configured.
"""
from firmware.compat import const

BASE = "services convergence-services"
MAX_NAMED = const(5)    # sources named in one warning


def _sources(app, new):
    """(what, address) of everything whose SIP requests the allow list screens."""
    out = []
    cs = getattr(app, "callserver", None)
    reg = getattr(cs, "registrar", None) if cs is not None else None
    if reg is not None:
        for b in reg.all():
            if not app.own_address((b.host, b.port)):
                out.append(("station %s" % b.station, b.host))
    for name in new.entries(BASE + " peer-call-server"):
        p = "%s peer-call-server %s " % (BASE, name)
        for leaf in ("address", "registrar-address"):
            a = new.get(p + leaf)
            if a and ("peer call server %s" % name, a) not in out:
                out.append(("peer call server %s" % name, a))
    return out


def check(app, old, new):
    allow = new.get(BASE + " security allow-list")
    if not allow:
        return
    from firmware.sipstack.security import Security, SecuritySettings
    settings = SecuritySettings()
    settings.allow_list = tuple(allow)
    sec = Security()
    sec.configure(settings)
    sources = _sources(app, new)
    out = [(w, a) for w, a in sources if not sec.allowed(a)]
    if not out:
        return
    named = ", ".join("%s (%s)" % s for s in out[:MAX_NAMED])
    if len(out) > MAX_NAMED:
        named += " and %d more" % (len(out) - MAX_NAMED)
    phones = [s for s in sources if s[0].startswith("station ")]
    if phones and all(s in out for s in phones):
        text = ("security allow-list admits none of the %d registered phone contact%s: their "
                "requests will be dropped: %s" % (len(phones), "" if len(phones) == 1 else "s", named))
    else:
        text = "security allow-list leaves out %s: their requests will be dropped" % named
    warn = getattr(getattr(app, "config", None), "warn", None)
    if warn is not None:
        warn(text)

