"""Interop with SIPp (Debian `sip-tester`): OPTIONS and a minimal
INVITE/CANCEL against the appliance on 127.0.0.1, with the traffic captured
by tshark and checked to be well-formed SIP.

The appliance (no call server yet) holds an INVITE with 100 Trying and would
answer 480 after its no-answer timer; the scenario CANCELs it first and
expects 200 (CANCEL) and 487 (INVITE), then ACKs.  sipp runs with
`-m N -timeout 20s -trace_err` and must exit 0.  A missing sipp or tshark
fails the test with the name of the package to install.
"""
import os
import socket
import subprocess
import tempfile

import pytest

from tests.interop import tshark_check
from tests.harness import Booted

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, "scenarios")


def _free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


@pytest.fixture(scope="module")
def rig():
    sipp = tshark_check.require("sipp", "sip-tester")
    tshark_check.require("tshark", "tshark")
    tmp = tempfile.mkdtemp(prefix="sipp-")
    app = Booted.pipes(domain="example.com", host="127.0.0.1")
    pcap = os.path.join(tmp, "interop.pcap")
    os.chmod(tmp, 0o777)
    cap = tshark_check.Capture(app.port, pcap)
    state = {"app": app, "cap": cap, "pcap": pcap, "tmp": tmp, "sipp": sipp}
    yield state
    cap.stop()
    app.close()


def run_sipp(rig, scenario, calls):
    err = os.path.join(rig["tmp"], scenario + ".err")
    args = [rig["sipp"], "-sf", os.path.join(SCENARIOS, scenario + ".xml"),
            "-m", str(calls), "-timeout", "20s", "-trace_err", "-error_file", err,
            "-nostdin", "-i", "127.0.0.1", "-p", str(_free_udp_port()), "-s", "interop",
            "-r", "5", "127.0.0.1:%d" % rig["app"].port]
    p = subprocess.run(args, cwd=rig["tmp"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    errors = ""
    if os.path.exists(err):
        with open(err) as f:
            errors = f.read()
    assert p.returncode == 0, "sipp %s exited %d\n%s\n%s" % (
        scenario, p.returncode, errors[-3000:], p.stdout.decode("utf-8", "replace")[-3000:])


def test_sipp_options(rig):
    run_sipp(rig, "options", 3)


def test_sipp_invite_cancel(rig):
    run_sipp(rig, "invite_cancel", 2)


def test_appliance_traffic_is_well_formed_sip(rig):
    app = rig["app"]
    assert app.alive()
    stats = app.command("show sip statistics")
    log = app.command("show log")
    assert "crashed" not in log and " error " not in log, log
    rig["cap"].stop()
    pcap = rig["pcap"]
    probs = tshark_check.problems(pcap, app.port)
    assert not probs, "%s\n%s" % (probs, stats)
    # what the scenarios must have produced, seen on the wire
    mine = "udp.srcport == %d && " % app.port
    assert tshark_check.count(pcap, mine + "sip.Status-Code == 200 && sip.CSeq.method == \"OPTIONS\"") >= 3
    assert tshark_check.count(pcap, mine + "sip.Status-Code == 100") >= 2
    assert tshark_check.count(pcap, mine + "sip.Status-Code == 487") >= 2
    assert tshark_check.count(pcap, mine + "sip.Status-Code == 200 && sip.CSeq.method == \"CANCEL\"") >= 2
