"""Call server interop with a real SIP phone: two baresip instances (Debian
`baresip-core`, driven by tests/interop/baresip.py over ctrl_tcp) register
to the appliance with digest and call each other through its B2BUA.

  - both register; `show sip registrations` lists each station once, with
    the phone's contact, source and user agent
  - 2000 calls 2001, 2001 answers; `show calls` shows the call connected;
    2000 holds and resumes (re-INVITEs through the B2BUA reach 2001 as new
    offers); 2001 hangs up; both phones see the call closed; no call is left
  - 2001 calls 2000, the caller hangs up
  - 2000 calls 2001 and gives up while it rings (CANCEL through the B2BUA):
    2001 stops ringing, no call is left
  - the phones quit (baresip unregisters on the way out): no binding left

Every wait is a ctrl_tcp event or a console prompt with a deadline.
Debian 12's baresip 1.0 (libre 1.1) can only answer MD5 digest challenges:
a 401 that also offers SHA-256 makes its REGISTER fail with ENOSYS
("Function not implemented" in the phone's log).
"""
import os
import re
import tempfile

import pytest

from tests.interop.baresip import Baresip, BaresipError
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


@pytest.fixture(scope="module")
def rig():
    tmp = tempfile.mkdtemp(prefix="cs-baresip-")
    cfg = os.path.join(tmp, "callserver.conf")
    with open(cfg, "w") as f:
        f.write(config_text())
    app = Booted.pipes(domain=DOMAIN, host="127.0.0.1", extra=["--config", cfg])
    phones = {}
    try:
        for e in STATIONS:
            phones[e] = Baresip(e, "Secret-%s" % e, app.port, domain=DOMAIN)
        yield {"app": app, "a": phones["2000"], "b": phones["2001"]}
    finally:
        for ph in phones.values():
            ph.close()
        app.close()


def _why(rig):
    return "\n--- 2000 ---\n%s\n--- 2001 ---\n%s\n--- appliance log ---\n%s" % (
        rig["a"].tail(), rig["b"].tail(), rig["app"].command("show log | last 30"))


def calls(app):
    out = app.command("show calls")
    rows = [ln.split() for ln in out.splitlines()[1:]]
    return out, [r for r in rows if len(r) >= 4 and r[0].isdigit()]


def test_phones_register(rig):
    app, a, b = rig["app"], rig["a"], rig["b"]
    for ph in (a, b):
        try:
            ph.wait_registered()
        except BaresipError as e:
            hint = ""
            if "Function not implemented" in ph.tail():
                hint = ("\nbaresip 1.0 gave up on the digest challenge: it only knows MD5 "
                        "and fails on any other algorithm offered (SHA-256).")
            raise AssertionError("%s%s" % (e, hint))
    out = app.command("show sip registrations")
    assert out.strip().startswith("Registrations: 2 "), out
    for ph in (a, b):
        line = [ln for ln in out.splitlines() if re.match(r"\s*s%s\s" % ph.user, ln)]
        assert len(line) == 1, out
        # baresip's Contact user is the AoR user plus an instance suffix
        assert re.search(r"sip:%s(-[^@ ]+)?@127\.0\.0\.1:%d\s" % (ph.user, ph.sip_port), line[0]), out
        assert "127.0.0.1:%d/udp" % ph.sip_port in line[0], out
        assert "baresip" in line[0], out


def test_call_hold_resume_callee_hangs_up(rig):
    app, a, b = rig["app"], rig["a"], rig["b"]
    try:
        a.dial("sip:2001@%s" % DOMAIN)
        inc = b.wait_event("CALL_INCOMING")
        assert "2000" in inc.get("peeruri", ""), inc
        a.wait_event("CALL_RINGING")
        b.answer()
        a.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_ESTABLISHED")
        out, rows = calls(app)
        assert len(rows) == 1 and rows[0][1] == "2000" and rows[0][2] == "2001" \
            and rows[0][3] == "connected", out
        a.hold_and_resume(b)
        b.hangup()
        a.wait_event("CALL_CLOSED")
        b.wait_event("CALL_CLOSED")
    except BaresipError as e:
        raise AssertionError("%s%s" % (e, _why(rig)))
    out, rows = calls(app)
    assert not rows and out.strip().startswith("Calls: 0 "), out


def test_call_caller_hangs_up(rig):
    app, a, b = rig["app"], rig["a"], rig["b"]
    try:
        b.dial("sip:2000@%s" % DOMAIN)
        a.wait_event("CALL_INCOMING")
        a.answer()
        a.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_ESTABLISHED")
        b.hangup()
        a.wait_event("CALL_CLOSED")
        b.wait_event("CALL_CLOSED")
    except BaresipError as e:
        raise AssertionError("%s%s" % (e, _why(rig)))
    out, rows = calls(app)
    assert not rows, out


def test_caller_gives_up_while_ringing(rig):
    app, a, b = rig["app"], rig["a"], rig["b"]
    try:
        a.dial("sip:2001@%s" % DOMAIN)
        b.wait_event("CALL_INCOMING")
        a.wait_event("CALL_RINGING")
        a.hangup()                      # CANCEL
        a.wait_event("CALL_CLOSED")
        b.wait_event("CALL_CLOSED")     # the B2BUA cancelled the callee leg
    except BaresipError as e:
        raise AssertionError("%s%s" % (e, _why(rig)))
    out, rows = calls(app)
    assert not rows, out


def test_phones_unregister_when_they_quit(rig):
    app = rig["app"]
    for ph in (rig["a"], rig["b"]):
        ph.close()                      # quit: REGISTER Expires 0, then exit
    out = app.command("show sip registrations")
    assert out.strip().startswith("Registrations: 0 "), out
