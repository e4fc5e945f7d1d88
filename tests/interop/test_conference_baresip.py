"""Conference interop with real SIP phones (issue 14, feature 7): three
baresip instances (Debian `baresip-core`, tests/interop/baresip.py) on
127.0.0.1 register to the appliance.  2000 calls 2001 and transfers it to
the conference extension (REFER Refer-To sip:7000@domain: the ad-hoc way),
does the same with 2002, then dials 7000 itself: the appliance mixes the
three (each phone's ausine reaches the bridge, the bridge sends to each).
2000 hangs up: two are left, the conference collapses to a plain call and
both phones get a re-INVITE offer; 2001 hangs up and 2002 sees the call
close.  Every wait is a ctrl_tcp event or a console prompt with a deadline.
"""
import os
import re
import tempfile
import time

import pytest

from tests.interop.baresip import Baresip, BaresipError
from tests.harness import Booted

DOMAIN = "branch.example.com"
STATIONS = ("2000", "2001", "2002")
CONF = "7000"


def config_text():
    p = "set services convergence-services "
    lines = [p + "sip domain " + DOMAIN, p + "call-server conference-extension " + CONF]
    for e in STATIONS:
        lines.append(p + "station s%s extension %s" % (e, e))
        lines.append(p + "station s%s password Secret-%s" % (e, e))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def rig():
    tmp = tempfile.mkdtemp(prefix="cs-conf-")
    cfg = os.path.join(tmp, "callserver.conf")
    with open(cfg, "w") as f:
        f.write(config_text())
    app = Booted.pipes(domain=DOMAIN, host="127.0.0.1", extra=["--config", cfg])
    phones = {}
    try:
        for e in STATIONS:
            phones[e] = Baresip(e, "Secret-%s" % e, app.port, domain=DOMAIN,
                                answermode="manual" if e == "2000" else "auto")
        for ph in phones.values():
            ph.wait_registered()
        yield {"app": app, "phones": phones}
    finally:
        for ph in phones.values():
            ph.close()
        app.close()


def _why(rig):
    out = ["\n--- %s ---\n%s" % (e, ph.tail()) for e, ph in rig["phones"].items()]
    out.append("\n--- appliance log ---\n%s" % rig["app"].command("show log | last 40"))
    return "".join(out)


def _members(out):
    """(party, state, sent, received) rows of `show call-server conferences`."""
    rows = []
    for ln in out.splitlines():
        f = ln.split()
        if len(f) == 7 and f[0].isdigit() and f[3].isdigit():
            rows.append((f[0], f[1], int(f[3]), int(f[4])))
    return rows


def _wait_console(app, cmd, ok, deadline_s=20):
    """Ask the console until ok(output) or the deadline; each try is a
    command and its prompt (no sleep)."""
    end = time.monotonic() + deadline_s
    out = app.command(cmd)
    while not ok(out):
        if time.monotonic() > end:
            raise AssertionError("%s not as expected within %d s:\n%s" % (cmd, deadline_s, out))
        out = app.command(cmd)
    return out


def test_ad_hoc_conference_mixes_three_baresip_phones_and_collapses(rig):
    app = rig["app"]
    a, b, c = (rig["phones"][e] for e in STATIONS)
    try:
        for far in (b, c):
            m = a.mark()
            a.dial("sip:%s@%s" % (far.user, DOMAIN))
            a.wait_event("CALL_ESTABLISHED", since=m)
            far.wait_event("CALL_ESTABLISHED")
            m = far.mark()
            a.command("transfer", "sip:%s@%s" % (CONF, DOMAIN))
            far.wait_remote_offer(m, deadline_s=10)        # re-INVITEd to the bridge
            a.wait_event("CALL_CLOSED", deadline_s=10)     # the old leg ends
        m = a.mark()
        a.dial("sip:%s@%s" % (CONF, DOMAIN))
        a.wait_event("CALL_ESTABLISHED", since=m)
        out = _wait_console(app, "show call-server conferences",
                            lambda o: len(_members(o)) == 3 and all(
                                r[2] > 50 and r[3] > 50 for r in _members(o)))
        assert "started by 2000" in out, out
        assert sorted(r[0] for r in _members(out)) == ["2000", "2001", "2002"], out
        # 2000 leaves: 2001 and 2002 are put phone to phone (a re-INVITE each)
        mb, mc = b.mark(), c.mark()
        a.hangup()
        b.wait_remote_offer(mb, deadline_s=10)
        c.wait_remote_offer(mc, deadline_s=10)
        out = _wait_console(app, "show calls", lambda o: o.startswith("Calls: 1 "))
        assert re.search(r"\s2001\s+2002\s+connected|\s2002\s+2001\s+connected", out), out
        assert app.command("show call-server conferences").startswith("Conferences: 0")
        b.hangup()
        c.wait_event("CALL_CLOSED", deadline_s=10)
    except BaresipError as e:
        raise AssertionError("%s%s" % (e, _why(rig)))
    _wait_console(app, "show calls", lambda o: o.startswith("Calls: 0 "))
