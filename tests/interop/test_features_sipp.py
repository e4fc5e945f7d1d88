"""Transfer and call park on the local call server against SIPp (Debian
`sip-tester`) on 127.0.0.1.

The appliance boots with a --config file: stations 1000 (the transferor or
parker, trusted by its registered source: SIPp answers no 407), 1001 (the
retriever, the same), 2000 and 2001 (SIPp UAS phones), a park lot 700 with
slots 701-703.

  1. Blind transfer: refer_uac.xml (1000) calls 2000, REFERs it to 2001 and
     waits for the final NOTIFY with a 2xx sipfrag, then BYE; refer_uas.xml
     answers both calls on one port: 2000 gets the call server's re-INVITE
     with 2001's media, 2001 hangs up after 8 s and the call server BYEs
     2000.  Both SIPp instances exit 0 with their calls successful; `show
     calls` is empty afterwards.
  2. Park and retrieve: refer_uac.xml calls 2000 and REFERs it to the lot
     700; `show call-server parked-calls` lists slot 701 with 2000 and the
     parker 1000; retrieve_uac.xml (1001) calls 701: the parked 2000 gets a
     re-INVITE with the retriever's media, 1001 hangs up, the call server
     BYEs 2000.  The lot is empty again.
  3. tshark: every packet the appliance sent decodes as SIP without expert
     errors (the REFER's NOTIFYs with message/sipfrag bodies included).
"""
import os
import tempfile

import pytest

from tests.interop import sipprun, tshark_check
from tests.harness import Booted

DOMAIN = "branch.example.com"


def config_text():
    p = "set services convergence-services "
    lines = [p + "sip domain " + DOMAIN,
             p + "call-park extension 700", p + "call-park slot-first 701",
             p + "call-park slot-last 703"]
    for e in ("1000", "1001", "2000", "2001"):
        lines.append(p + "station s%s extension %s" % (e, e))
        lines.append(p + "station s%s password %s" % (e, sipprun.password_for(e)))
    for e in ("1000", "1001"):
        lines.append(p + "station s%s caller-authentication registered-source" % e)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def rig():
    sipprun.sipp_binary()
    tshark_check.require("tshark", "tshark")
    tmp = tempfile.mkdtemp(prefix="features-sipp-")
    os.chmod(tmp, 0o777)
    cfg = os.path.join(tmp, "features.conf")
    with open(cfg, "w") as f:
        f.write(config_text())
    app = Booted.pipes(domain=DOMAIN, host="127.0.0.1", extra=["--config", cfg])
    pcap = os.path.join(tmp, "features.pcap")
    cap = tshark_check.Capture(app.port, pcap)
    target = "127.0.0.1:%d" % app.port
    ports = {"uac": sipprun.free_udp_port(), "uas": sipprun.free_udp_port(),
             "ret": sipprun.free_udp_port()}
    for name, exts in (("uac", ["1000"]), ("uas", ["2000", "2001"]), ("ret", ["1001"])):
        csv = sipprun.users_csv(os.path.join(tmp, name + ".csv"), exts)
        r = sipprun.run("reg_station", target, tmp, local_port=ports[name], inf=csv,
                        calls=len(exts), users=1, domain=DOMAIN, timeout_s=30)
        assert r.rc == 0 and r.successful == len(exts), r.describe()
    state = {"app": app, "cap": cap, "pcap": pcap, "tmp": tmp, "target": target,
             "ports": ports}
    yield state
    cap.stop()
    app.close()


def _fields(tmp, name, row):
    path = os.path.join(tmp, name + ".csv")
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n" + ";".join(row) + "\n")
    return path


def _ok(r, what):
    assert r.rc == 0 and r.successful == r.created and r.failed == 0, \
        "%s\n%s" % (what, r.describe())


def test_blind_transfer_with_sipp(rig):
    app, tmp, target, ports = rig["app"], rig["tmp"], rig["target"], rig["ports"]
    uas = sipprun.start("refer_uas", target, tmp, local_port=ports["uas"], calls=2,
                        domain=DOMAIN, timeout_s=60)
    try:
        uac = sipprun.run("refer_uac", target, tmp, local_port=ports["uac"], calls=1,
                          inf=_fields(tmp, "xfer", ("1000", "2000", "2001")),
                          domain=DOMAIN, timeout_s=40)
        rs = uas.wait(60)
    finally:
        uas.stop()
    _ok(uac, "transferor")
    _ok(rs, "transferee and target")
    assert rs.successful == 2, rs.describe()
    out = app.command("show calls")
    assert out.strip().splitlines()[0].startswith("Calls: 0 "), out
    stats = app.command("show sip statistics")
    assert "transfer completed" in stats and "transfer blind" in stats, stats


def test_park_and_retrieve_with_sipp(rig):
    app, tmp, target, ports = rig["app"], rig["tmp"], rig["target"], rig["ports"]
    uas = sipprun.start("refer_uas", target, tmp, local_port=ports["uas"], calls=1,
                        domain=DOMAIN, timeout_s=60)
    try:
        uac = sipprun.run("refer_uac", target, tmp, local_port=ports["uac"], calls=1,
                          inf=_fields(tmp, "park", ("1000", "2000", "700")),
                          domain=DOMAIN, timeout_s=30)
        _ok(uac, "parker")
        parked = app.command("show call-server parked-calls")
        assert "1 of 3 taken" in parked and "701" in parked and "2000" in parked \
            and "1000" in parked, parked
        ret = sipprun.run("retrieve_uac", target, tmp, local_port=ports["ret"], calls=1,
                          inf=_fields(tmp, "ret", ("1001", "701")), domain=DOMAIN,
                          timeout_s=30)
        rs = uas.wait(60)
    finally:
        uas.stop()
    _ok(ret, "retriever")
    _ok(rs, "parked party")
    assert "0 of 3 taken" in app.command("show call-server parked-calls")
    out = app.command("show calls")
    assert out.strip().splitlines()[0].startswith("Calls: 0 "), out


def test_feature_traffic_is_well_formed_sip(rig):
    app = rig["app"]
    assert app.alive()
    log = app.command("show log")
    assert "Traceback" not in log and "crashed" not in log, log
    rig["cap"].stop()
    pcap = rig["pcap"]
    probs = tshark_check.problems(pcap, app.port)
    assert not probs, probs
    mine = "udp.srcport == %d && " % app.port
    assert tshark_check.count(pcap, mine + "sip.Method == \"NOTIFY\"") >= 4
