"""Settings that do not bite, on the booted appliance (pty console and a UDP
SIP client on loopback): station secrets survive a change of realm, every
station a commit refuses is named in one go, an FXS station registering to a
peer needs its password, an allow list that locks the phones out is warned
about and its drops reach `show log` once per source, and `show sip
registrations all` lists every station with its state."""
import hashlib
import re

from tests.harness import Booted, UdpClient, call_id, status
from tests.system.test_console_pty import _cmd, _open

BASE = "set services convergence-services "


def _register(client, port, user, password, cid, cseq=1, auth=None):
    h = ("REGISTER sip:127.0.0.1:%d SIP/2.0\r\n"
         "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s%d;rport\r\n"
         "Max-Forwards: 70\r\nFrom: <sip:%s@127.0.0.1>;tag=t1\r\nTo: <sip:%s@127.0.0.1>\r\n"
         "Call-ID: %s\r\nCSeq: %d REGISTER\r\n"
         "Contact: <sip:%s@127.0.0.1:%d>\r\nExpires: 600\r\n" % (
             port, client.port, cid, cseq, user, user, cid, cseq, user, client.port))
    if auth:
        h += auth
    client.send((h + "Content-Length: 0\r\n\r\n").encode())
    got = client.responses(lambda d: call_id(d) == cid, deadline_s=3, final=True)
    return got[-1] if got else None


def _digest_register(client, port, user, password, cid):
    r = _register(client, port, user, password, cid)
    assert status(r) == 401, r
    hdr = r.decode().split("WWW-Authenticate:", 1)[1].split("\r\n", 1)[0]
    realm = re.search(r'realm="([^"]+)"', hdr).group(1)
    nonce = re.search(r'nonce="([^"]+)"', hdr).group(1)
    uri = "sip:127.0.0.1:%d" % port
    ha1 = hashlib.md5(("%s:%s:%s" % (user, realm, password)).encode()).hexdigest()
    ha2 = hashlib.md5(("REGISTER:%s" % uri).encode()).hexdigest()
    resp = hashlib.md5(("%s:%s:00000001:c0ffee:auth:%s" % (ha1, nonce, ha2)).encode()).hexdigest()
    opaque = re.search(r'opaque="([^"]+)"', hdr)
    auth = ('Authorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", '
            'response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"%s\r\n' % (
                user, realm, nonce, uri, resp, ', opaque="%s"' % opaque.group(1) if opaque else ""))
    return realm, _register(client, port, user, password, cid, 2, auth)


def test_station_secrets_survive_a_realm_change_and_bad_stations_are_named_together(tmp_path):
    with Booted(tmp_path / "state", console="pty", domain="one.example") as app:
        port = _open(app)
        _cmd(port, "configure")
        for line in ("sip domain one.example", "station bob extension 2001",
                     "station bob password Bobs-phone-7", "station al extension 2002",
                     "station al password Als-phone-77"):
            assert _cmd(port, BASE + line) == ""
        out = _cmd(port, "show services convergence-services station bob")
        assert re.search(r'password-secret "\$9\$[0-9a-f]+"; ## SECRET-DATA', out), out
        assert "Bobs-phone-7" not in out
        assert _cmd(port, "commit") == "commit complete"
        c = UdpClient(app.sip_port)
        realm, r = _digest_register(c, app.sip_port, "2001", "Bobs-phone-7", "reg-1")
        assert realm == "one.example" and status(r) == 200, r
        # a new realm: no password to retype
        assert _cmd(port, BASE + "sip domain two.example") == ""
        assert _cmd(port, "commit") == "commit complete"
        realm, r = _digest_register(c, app.sip_port, "2001", "Bobs-phone-7", "reg-2")
        assert realm == "two.example" and status(r) == 200, r
        # every station the commit cannot accept, in one go
        for line in ("station carol extension 2003", "station dave extension 2004",
                     "station erin extension 2005", "station erin fxs-port 1"):
            assert _cmd(port, BASE + line) == ""
        out = _cmd(port, "commit")
        assert out.startswith("error: 2 stations cannot be accepted:"), out
        assert "station carol password: a SIP station needs a password" in out
        assert "station dave password: a SIP station needs a password" in out
        assert _cmd(port, "delete services convergence-services station carol") == ""
        assert _cmd(port, "delete services convergence-services station dave") == ""
        # an FXS station that registers to a peer needs its password
        assert _cmd(port, BASE + "peer-call-server hq address 127.0.0.3") == ""
        assert _cmd(port, "commit") == (
            "error: services convergence-services station erin password: an FXS station registers "
            "to peer call server hq and needs its password there (or set peer-call-server hq "
            "registration disable)")
        assert _cmd(port, BASE + "peer-call-server hq registration disable") == ""
        assert _cmd(port, "commit check") == "configuration check succeeds"
        assert _cmd(port, "rollback 0") == "load complete"
        c.close()


def test_allow_list_lockout_is_warned_and_drops_are_logged_once_per_source(tmp_path):
    with Booted(tmp_path / "state", console="pty", domain="one.example") as app:
        port = _open(app)
        _cmd(port, "configure")
        for line in ("sip domain one.example", "station bob extension 2001",
                     "station bob password Bobs-phone-7", "station al extension 2002",
                     "station al password Als-phone-77"):
            _cmd(port, BASE + line)
        assert _cmd(port, "commit") == "commit complete"
        c = UdpClient(app.sip_port)
        assert status(_digest_register(c, app.sip_port, "2001", "Bobs-phone-7", "reg-1")[1]) == 200
        out = _cmd(port, "run show sip registrations all")
        rows = [l.split(None, 3) for l in out.split("\n")]
        assert rows[0] == ["Station", "Extension", "Type", "State"]
        assert ["al", "2002", "SIP", "not registered"] in rows
        assert ["bob", "2001", "SIP", "registered, 1 contact"] in rows
        assert _cmd(port, "run show sip registrations bogus") == \
            "error: syntax error: unexpected word 'bogus' after 'show sip registrations' (possible: all)"
        assert _cmd(port, BASE + "security allow-list 10.1.0.0/16") == ""
        out = _cmd(port, "commit check")
        assert out == ("warning: security allow-list admits none of the 1 registered phone contact: "
                       "their requests will be dropped: station bob (127.0.0.1)\n"
                       "configuration check succeeds")
        out = _cmd(port, "commit")
        assert out.startswith("warning: security allow-list admits none") and out.endswith("commit complete")
        # two requests from the dropped source: one log line
        for cid in ("drop-1", "drop-2"):
            assert _register(c, app.sip_port, "2001", "x", cid) is None
        out = _cmd(port, "run show log | match allow")
        drops = [l for l in out.split("\n") if "dropped: not in the allow list" in l]
        assert len(drops) == 1, out
        assert "security: SIP from 127.0.0.1:%d dropped" % c.port in drops[0]
        assert "commit: security allow-list admits none" in out
        c.close()
