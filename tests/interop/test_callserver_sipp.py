"""Call server interop with SIPp (Debian `sip-tester`) on 127.0.0.1.

The appliance boots with a --config file: domain branch.example.com, 100
stations s3000..s3099 for the registration tests, callers s1000..s1009 and
callees s2000..s2009 / s2100..s2109 for the calls, each `extension NNNN`,
`password Secret-NNNN`; max-registrations 300 (the test registers 130
contacts at once); the rate limit raised so that SIPp's bursts from one
address measure the call server, not pike.

  1. reg_station.xml registers the 100 stations (digest, Expires 600) from one
     SIPp port: 100 successful, and `show sip registrations` lists each
     station once with that contact, source and user agent.
  2. reg_digest.xml registers, re-registers and unregisters the same 100:
     100 successful calls (a call succeeds only when all three REGISTERs got
     their 200), none failed; afterwards no binding is left.
  3. 200 calls SIPp UAC -> appliance -> SIPp UAS, 10 at a time (-users 10,
     each caller and callee in one call at a time), 200 ms talk, the hang-up
     side random per call; both SIPp instances exit 0 with 200 successful
     calls; both sides hung up some; then `show calls` has no call and the
     registrations of the 30 call stations are all there with their sources.
  4. tshark: every packet the appliance sent decodes as SIP without expert
     errors; the log has no crash.

SIPp runs with -timeout and -timeout_error, so a stuck scenario fails the
test instead of hanging it; every wait is a process exit or a console
prompt with a deadline.
"""
import os
import re
import tempfile

import pytest

from tests.interop import sipprun, tshark_check
from tests.harness import Booted

DOMAIN = "branch.example.com"
REG_EXTS = [str(3000 + i) for i in range(100)]
USERS = 10
CALLERS = [str(1000 + i) for i in range(USERS)]
UAC_HANGS = [str(2000 + i) for i in range(USERS)]    # the caller sends the BYE
UAS_HANGS = [str(2100 + i) for i in range(USERS)]    # the called side sends the BYE
CALLS = 200

SHA_HINT = ("\nSIPp 3.6 (Debian 12) answers the first WWW-Authenticate only and knows "
            "MD5 only: the 401 must offer MD5 first for SIPp to register.")


def config_text():
    p = "set services convergence-services "
    lines = [p + "sip domain " + DOMAIN,
             p + "call-server max-registrations 300",
             p + "call-server max-calls 64",
             p + "security rate-limit requests 100000",
             p + "security rate-limit window 1"]
    for e in REG_EXTS + CALLERS + UAC_HANGS + UAS_HANGS:
        lines.append(p + "station s%s extension %s" % (e, e))
        lines.append(p + "station s%s password %s" % (e, sipprun.password_for(e)))
    for e in CALLERS:
        # uac_call.xml does not answer a 407 (it also runs against Kamailio, which
        # does not challenge): these SIPp phones are trusted by their registered source
        lines.append(p + "station s%s caller-authentication registered-source" % e)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def rig():
    sipprun.sipp_binary()
    tshark_check.require("tshark", "tshark")
    tmp = tempfile.mkdtemp(prefix="cs-sipp-")
    os.chmod(tmp, 0o777)
    cfg = os.path.join(tmp, "callserver.conf")
    with open(cfg, "w") as f:
        f.write(config_text())
    app = Booted.pipes(domain=DOMAIN, host="127.0.0.1", extra=["--config", cfg])
    pcap = os.path.join(tmp, "callserver.pcap")
    cap = tshark_check.Capture(app.port, pcap)
    state = {"app": app, "cap": cap, "pcap": pcap, "tmp": tmp,
             "target": "127.0.0.1:%d" % app.port, "reg_port": sipprun.free_udp_port()}
    yield state
    cap.stop()
    app.close()


def sipp_ok(r, n, what):
    hint = SHA_HINT if "must use MD5" in r.errors + r.output else ""
    assert r.rc == 0 and r.successful == n and r.failed == 0, \
        "%s: expected %d successful, none failed%s\n%s" % (what, n, hint, r.describe())


def registrations(app):
    """{station: (contact, source, expires_s, user agent)} and the head line."""
    out = app.command("show sip registrations")
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\s*(s\d+)\s+(\S+)\s+(\S+)\s+(\d+)s\s+(.*?)\s*$", line)
        if m:
            assert m.group(1) not in rows, "station listed twice:\n" + out
            rows[m.group(1)] = (m.group(2), m.group(3), int(m.group(4)), m.group(5))
    return out, rows


def test_register_100_stations(rig):
    app = rig["app"]
    csv = sipprun.users_csv(os.path.join(rig["tmp"], "reg100.csv"), REG_EXTS)
    r = sipprun.run("reg_station", rig["target"], rig["tmp"], local_port=rig["reg_port"],
                    inf=csv, calls=len(REG_EXTS), users=10, domain=DOMAIN, timeout_s=60)
    sipp_ok(r, 100, "register 100 stations")
    out, rows = registrations(app)
    assert out.strip().startswith("Registrations: 100 "), out
    port = rig["reg_port"]
    for e in REG_EXTS:
        st = "s" + e
        assert st in rows, "%s not registered:\n%s" % (st, out)
        contact, source, expires, ua = rows[st]
        assert contact.strip("<>") == "sip:%s@127.0.0.1:%d" % (e, port), out
        assert source.startswith("127.0.0.1:%d/udp" % port), out
        assert 500 < expires <= 600, out
        assert ua == "SIPp reg_station", out


def test_register_reregister_unregister_100_stations(rig):
    app = rig["app"]
    csv = sipprun.users_csv(os.path.join(rig["tmp"], "users.csv"), REG_EXTS)
    r = sipprun.run("reg_digest", rig["target"], rig["tmp"], local_port=rig["reg_port"],
                    inf=csv, calls=len(REG_EXTS), users=10, domain=DOMAIN, timeout_s=60)
    sipp_ok(r, 100, "register, re-register, unregister 100 stations")
    out, rows = registrations(app)
    assert out.strip().startswith("Registrations: 0 "), out
    assert not [s for s in rows if s[1:] in REG_EXTS], out


def _bye_counts(output):
    """(BYEs sent, BYEs received) from a SIPp UAC's final screen."""
    sent = re.findall(r"BYE -+>\s+(\d+)", output)
    got = re.findall(r"BYE <-+\s+(\d+)", output)
    return (int(sent[-1]) if sent else 0), (int(got[-1]) if got else 0)


def test_200_calls_random_hangup_side(rig):
    app, tmp, target = rig["app"], rig["tmp"], rig["target"]
    uac_port, uas_port = sipprun.free_udp_port(), sipprun.free_udp_port()
    callers = sipprun.users_csv(os.path.join(tmp, "callers.csv"), CALLERS)
    callees = sipprun.users_csv(os.path.join(tmp, "callees.csv"), UAC_HANGS + UAS_HANGS)
    sipp_ok(sipprun.run("reg_station", target, tmp, local_port=uac_port, inf=callers,
                        calls=len(CALLERS), users=10, domain=DOMAIN, timeout_s=30),
            len(CALLERS), "register the callers")
    sipp_ok(sipprun.run("reg_station", target, tmp, local_port=uas_port, inf=callees,
                        calls=2 * USERS, users=10, domain=DOMAIN, timeout_s=30),
            2 * USERS, "register the callees")

    calls = sipprun.calls_csv(os.path.join(tmp, "calls.csv"), CALLERS, UAC_HANGS, UAS_HANGS)
    uas = sipprun.start("uas_call", target, tmp, local_port=uas_port, calls=CALLS,
                        duration_ms=200, domain=DOMAIN, timeout_s=90)
    try:
        uac = sipprun.Sipp("uac_call", target, tmp, local_port=uac_port, calls=CALLS,
                           users=USERS, inf=calls, duration_ms=200, domain=DOMAIN,
                           timeout_s=90)
        ru = uac.wait()
        rs = uas.wait(30)
    finally:
        uas.stop()
    sipp_ok(ru, CALLS, "UAC calls")
    sipp_ok(rs, CALLS, "UAS calls")
    sent, got = _bye_counts(ru.output)
    assert sent + got == CALLS and sent > 0 and got > 0, \
        "hang-up sides: caller %d, called %d\n%s" % (sent, got, ru.output[-3000:])

    calls_out = app.command("show calls")
    assert calls_out.strip().splitlines()[0].startswith("Calls: 0 "), calls_out
    assert len(calls_out.strip().splitlines()) == 1, calls_out

    out, rows = registrations(app)
    assert out.strip().startswith("Registrations: %d " % (len(CALLERS) + 2 * USERS)), out
    for exts, port in ((CALLERS, uac_port), (UAC_HANGS + UAS_HANGS, uas_port)):
        for e in exts:
            contact, source, _, _ = rows["s" + e]
            assert contact.strip("<>") == "sip:%s@127.0.0.1:%d" % (e, port), out
            assert source.startswith("127.0.0.1:%d/udp" % port), out


def test_callserver_traffic_is_well_formed_sip(rig):
    app = rig["app"]
    assert app.alive()
    log = app.command("show log")
    stats = app.command("show sip statistics")
    assert "crashed" not in log and "Traceback" not in log, log
    rig["cap"].stop()
    pcap = rig["pcap"]
    probs = tshark_check.problems(pcap, app.port)
    assert not probs, "%s\n%s" % (probs, stats)
    mine = "udp.srcport == %d && " % app.port
    # what the tests above must have produced, seen on the wire (230 challenges,
    # 200 INVITEs and BYEs were sent; tshark may miss some of a loopback burst)
    assert tshark_check.count(pcap, mine + "sip.Status-Code == 401") >= 100
    assert tshark_check.count(pcap, mine + "sip.Method == \"INVITE\"") >= CALLS // 2
    assert tshark_check.count(pcap, mine + "sip.Method == \"BYE\"") >= CALLS // 2
