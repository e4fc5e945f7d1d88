"""Encrypted voice with a real phone: two baresip instances register to the
appliance over TLS (validating its certificate against the test CA) and call
each other with SRTP required (`mediaenc=srtp-mand`): the B2BUA passes the
SDES crypto attributes through untouched, so the call is established only if
each side received the other's key; the RTP on the wire is checked to be
SRTP, not G.711 (tshark on loopback: every RTP payload of the call carries
the 10-byte authentication tag, and no packet of it is plain PCMU of the
440 Hz tone the phones send)."""
import os
import tempfile

import pytest

from tests.harness import Booted, ROOT
from tests.interop.baresip import Baresip, BaresipError
from tests.interop import tshark_check
from tests.system.test_sip_tls import free_tcp_port

DOMAIN = "branch.example.com"
CERTS = os.path.join(ROOT, "tests", "data", "tls")
P = "set services convergence-services "


@pytest.fixture(scope="module")
def rig():
    tmp = tempfile.mkdtemp(prefix="cs-baresip-tls-")
    app = Booted.pipes(domain=DOMAIN, host="127.0.0.1")
    phones = []
    try:
        out = app.command("request security certificate load sip-server %s/server.pem key %s/server.key"
                          % (CERTS, CERTS))
        assert out.startswith("Certificate sip-server loaded"), out
        port = free_tcp_port()
        app.command("configure")
        for line in [P + "sip domain " + DOMAIN, P + "security tls certificate sip-server",
                     P + "security tls port %d" % port] + [
                P + "station s%s extension %s" % (e, e) for e in ("2000", "2001")] + [
                P + "station s%s password Secret-%s" % (e, e) for e in ("2000", "2001")]:
            app.command(line)
        out = app.command("commit")
        assert "commit complete" in out, out
        app.command("exit")
        extra = ["module\t\t\tsrtp.so", "sip_cafile\t\t%s/ca.pem" % CERTS,
                 "sip_verify_server\tyes"]
        for e in ("2000", "2001"):
            phones.append(Baresip(e, "Secret-%s" % e, port, domain=DOMAIN, extra_config=extra,
                                  outbound="sip:127.0.0.1:%d;transport=tls" % port,
                                  account_params=";mediaenc=srtp-mand"))
        yield {"app": app, "a": phones[0], "b": phones[1], "tmp": tmp}
    finally:
        for ph in phones:
            ph.close()
        app.close()


def test_phones_register_over_tls_and_call_with_srtp(rig):
    app, a, b = rig["app"], rig["a"], rig["b"]
    try:
        a.wait_registered()
        b.wait_registered()
        regs = app.command("show sip registrations")
        assert regs.count("/tls") == 2, regs
        pcap = os.path.join(rig["tmp"], "rtp.pcap")
        lo, hi = a.rtp_ports
        cap = tshark_check.Capture(0, pcap, bpf="udp portrange %d-%d" % (lo, hi))
        try:
            a.dial("sip:2001@%s" % DOMAIN)
            b.wait_event("CALL_INCOMING")
            b.answer()
            a.wait_event("CALL_ESTABLISHED")
            b.wait_event("CALL_ESTABLISHED")
            # 2000 sends 20 ms packets: wait (on the phone's own event
            # stream, with a deadline) until a second of media has flowed
            a.wait_event("CALL_RTCP", deadline_s=15)
        finally:
            cap.stop()
        b.hangup()
        a.wait_event("CALL_CLOSED")
        b.wait_event("CALL_CLOSED")
    except BaresipError as e:
        raise AssertionError("%s\n--- 2000 ---\n%s\n--- 2001 ---\n%s\n--- log ---\n%s" % (
            e, a.tail(), b.tail(), app.command("show log | last 30")))
    # every RTP-sized datagram of the call: 12-byte header, 160 bytes of
    # G.711, and the 10-byte tag of AES_CM_128_HMAC_SHA1_80 (plain RTP: 172)
    sizes = [int(f[0]) for f in tshark_check.fields(
        pcap, "udp && udp.length > 100", ["udp.length"])]
    assert len(sizes) >= 20, sizes
    assert set(sizes) == {8 + 182}, sorted(set(sizes))
