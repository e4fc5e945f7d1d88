"""Issue 16 interop: a real SIP phone (Debian baresip 1.0 with its `mwi` and
`presence` modules, driven by tests/interop/baresip.py) subscribes through
the appliance's call server:

  - mwi: after registering, 2000 subscribes to message-summary for its own
    mailbox (answering the 407 challenge); `request voice mwi` on the
    console reaches it as an MWI_NOTIFY event with the RFC 3842 body;
  - presence: 2000 watches 2001 (contacts file, presence=p2p); the PIDF
    NOTIFY (basic open) shows the contact Online, and when 2001 unregisters
    a new one (closed) turns it Offline, which baresip logs as a change.

Every wait is a ctrl_tcp event, a console command or the phone's log, each
with a deadline.
"""
import os
import tempfile
import time

import pytest

from tests.interop.baresip import ANSI_RE, Baresip, BaresipError
from tests.harness import Booted

DOMAIN = "branch.example.com"
STATIONS = ("2000", "2001")


def config_text():
    p = "set services convergence-services "
    lines = [p + "sip domain " + DOMAIN]
    for e in STATIONS:
        lines.append(p + "station s%s extension %s" % (e, e))
        lines.append(p + "station s%s password Secret-%s" % (e, e))
    return "\n".join(lines) + "\n"


def _pause(phone, s):
    """Wait s seconds on the phone's control socket (its events), not the clock."""
    try:
        phone.wait_event("__none__", deadline_s=s)
    except BaresipError:
        pass


def _wait_until(phone, cond, what, deadline_s=10):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if cond():
            return
        _pause(phone, 0.2)
    raise BaresipError("%s: %s not seen within %ss\n%s" % (phone.aor, what, deadline_s,
                                                             phone.tail()))


def _contact_status(phone):
    return ANSI_RE.sub("", phone.command("contacts"))


@pytest.fixture(scope="module")
def rig():
    tmp = tempfile.mkdtemp(prefix="cs-baresip-mwi-")
    cfg = os.path.join(tmp, "callserver.conf")
    with open(cfg, "w") as f:
        f.write(config_text())
    app = Booted.pipes(domain=DOMAIN, host="127.0.0.1", extra=["--config", cfg])
    phones = {}
    try:
        phones["2001"] = Baresip("2001", "Secret-2001", app.port, domain=DOMAIN)
        phones["2001"].wait_registered()
        # baresip 1.0's mwi module has a start-up race: its 1 ms timer walks
        # its subscription list while subscribing appends to it, so a
        # registration answered before that timer fired (a fast registrar)
        # spins it forever.  The UA starts unregistered (regint 0), mwi.so is
        # loaded once the timer can only find an empty list, and the UA is
        # then made anew with registration: its REGISTER_OK subscribes once.
        a = phones["2000"] = Baresip(
            "2000", "Secret-2000", app.port, domain=DOMAIN, account_params=";mwi=yes",
            regint=0,
            extra_config=["module_app\t\tdebug_cmd.so", "module_app\t\tcontact.so",
                          "module_app\t\tpresence.so"],
            contacts='"Two" <sip:2001@%s>;presence=p2p\n' % DOMAIN)
        a.command("insmod", "mwi.so")
        a.command("uadel", a.aor)
        a.command("uanew", a.account_line.replace(";regint=0;", ";regint=600;"))
        yield {"app": app, "a": phones["2000"], "b": phones["2001"]}
    finally:
        for ph in phones.values():
            ph.close()
        app.close()


def test_baresip_gets_mwi_notify(rig):
    app, a = rig["app"], rig["a"]
    a.wait_registered()
    out = app.command("request voice mwi station s2000 new 3 old 2")
    assert "messages waiting" in out, out
    ev = a.wait_event("MWI_NOTIFY", deadline_s=10,
                      match=lambda e: "Messages-Waiting: yes" in (e.get("param") or ""))
    assert "Voice-Message: 3/2" in ev["param"], ev
    subs = app.command("show sip subscriptions")
    assert "message-summary" in subs and "s2000" in subs, subs


def test_baresip_gets_presence_notify(rig):
    app, a, b = rig["app"], rig["a"], rig["b"]
    a.wait_registered()
    # the first NOTIFY (PIDF basic open: 2001 is registered) makes the contact Online
    _wait_until(a, lambda: "Online Two <sip:2001@%s>" % DOMAIN in _contact_status(a),
                "contact 2001 Online")
    subs = app.command("show sip subscriptions")
    assert "presence" in subs and "2001 (s2001)" in subs, subs
    b.close()                      # unregisters: the appliance NOTIFYs basic closed
    _wait_until(a, lambda: "Offline Two <sip:2001@%s>" % DOMAIN in _contact_status(a),
                "contact 2001 Offline")
    log = ANSI_RE.sub("", a.tail(20000))
    assert "<sip:2001@%s> changed status from Online to Offline" % DOMAIN in log, log
