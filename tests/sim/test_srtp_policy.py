"""Issue 17: a station's SRTP policy on calls between SIP phones through the
B2BUA (firmware/callserver/srtp_policy.py), on the virtual clock.  The
phones here are on UDP (the simulation has no TLS): keys offered over UDP
are no keys, never passed on; `require` refuses with 488; RTP/SAVP without
a usable key is refused; the configuration refuses `require` without TLS.
Keys passing through over TLS: tests/interop/test_baresip_tls.py."""
import os

from sip import sdes
from tests.sim.cs_world import CsWorld, B

CERTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "tls")
KEY = sdes.format_crypto(1, "AES_CM_128_HMAC_SHA1_80", bytes(range(30)))


def _with_keys(phone, proto="RTP/AVP"):
    plain = phone._offer

    def offer(call, direction="sendrecv"):
        body = plain(call, direction)
        body = body.replace(b"RTP/AVP", proto.encode())
        return body.replace(b"a=sendrecv", b"a=crypto:" + KEY.encode() + b"\r\na=sendrecv")
    phone._offer = offer


def _tls(w):
    out = w.cli("request security certificate load sip-server %s/server.pem key %s/server.key"
                % (CERTS, CERTS))
    assert out.startswith("Certificate sip-server loaded"), out


def test_keys_are_stripped_off_udp_and_require_refuses_a_plain_offer(tmp_path):
    w = CsWorld(tmp_path, seed=171)
    try:
        w.assert_refused([B + "station s2002 srtp require"],
                         "configure security tls certificate first")
        _tls(w)
        w.app.config.load_file("t.conf", "\n".join([
            B + "security tls certificate sip-server", B + "security tls port 5061",
            B + "station s2003 srtp require"]) + "\n")
        w.register_all()
        # 2001 offers a key over UDP: 2002 gets the offer without it, the call goes on
        _with_keys(w.phones["2001"])
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 5000)
        inc = [x for x in w.phones["2002"].calls if x.role == "uas"][0]
        body = inc.session.remote_body
        body = body if isinstance(body, bytes) else body.encode()
        assert b"a=crypto" not in body and b"m=audio" in body, body
        w.phones["2001"].hangup(c)
        w.run(2000)
        # 2003 requires SRTP: a key seen over UDP is no key -> 488
        c = w.phones["2001"].call("2003")
        w.run_until(lambda: c.state == "terminated", 3000)
        assert c.status == 488, c.status
        # RTP/SAVP with the key in the clear: nobody can take it -> 488
        _with_keys(w.phones["2002"], "RTP/SAVP")
        c = w.phones["2002"].call("2001")
        w.run_until(lambda: c.state == "terminated", 3000)
        assert c.status == 488, c.status
        assert w.cs.b2b.counters["srtp_refused"] == 2, w.cs.b2b.counters
        # and 2003 itself may not call with a plain offer
        c = w.phones["2003"].call("2001")
        w.run_until(lambda: c.state == "terminated", 3000)
        assert c.status == 488, c.status
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()
