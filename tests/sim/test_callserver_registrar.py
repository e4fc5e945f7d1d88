"""The call server's registrar on the virtual clock (RFC 3261 §10.3): digest
with identical answers for unknown users and wrong passwords, expiry policy,
wildcard unregister, Call-ID/CSeq ordering, contact and licence limits, NAT
destinations, expiry of bindings, and the console views."""
import re

from firmware.compat import Random
from sip.digest import DigestClient
from sip.message import parse
from tests.sim.cs_world import CsWorld, B, DOMAIN, password


_BRANCH = [0]


def register_text(sock, user, call_id, cseq, contact=None, expires=None, auth=None, aor=None,
                  contact_params=""):
    host, port = sock.getsockname()
    _BRANCH[0] += 1
    lines = ["REGISTER sip:%s SIP/2.0" % DOMAIN,
             "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bK%s%d;rport" % (host, port, call_id, _BRANCH[0]),
             "Max-Forwards: 70",
             "From: <sip:%s@%s>;tag=f%s" % (aor or user, DOMAIN, call_id),
             "To: <sip:%s@%s>" % (aor or user, DOMAIN),
             "Call-ID: %s" % call_id,
             "CSeq: %d REGISTER" % cseq]
    if contact == "*":
        lines.append("Contact: *")
    elif contact is not False:
        lines.append("Contact: <%s>%s" % (contact or "sip:%s@%s:%d" % (user, host, port), contact_params))
    if expires is not None:
        lines.append("Expires: %d" % expires)
    if auth:
        lines.append("Authorization: " + auth)
    lines.append("User-Agent: rawtest/1")
    lines.append("Content-Length: 0")
    return "\r\n".join(lines) + "\r\n\r\n"


class Raw:
    """A REGISTER client over a raw socket that answers challenges."""

    def __init__(self, w, user, pw, host="127.0.0.1", call_id=None):
        self.w = w
        self.sock = w.raw(host)
        self.user = user
        self.pw = pw
        self.call_id = call_id or "cid%s%d" % (user, w.now())
        self.cseq = 0
        self.rng = Random(5)

    def send(self, **kw):
        self.cseq += 1
        replies = self.w.exchange(self.sock, register_text(self.sock, self.user, self.call_id,
                                                           self.cseq, **kw))
        return [parse(r) for r in replies]

    def register(self, **kw):
        """REGISTER, answer a 401 once; the final response."""
        first = self.send(**kw)[-1]
        if first.status != 401:
            return first
        ch = first.get_all("www-authenticate")
        auth = DigestClient().authorize("REGISTER", "sip:" + DOMAIN, ch, self.user, self.pw, self.rng)
        return self.send(auth=auth, **kw)[-1]


def test_phones_register_refresh_and_show_registrations(tmp_path):
    w = CsWorld(tmp_path, seed=3)
    try:
        w.register_all()
        out = w.cli("show sip registrations")
        assert out.startswith("Registrations: 3 (licensed 100), stations 3"), out
        for ext in ("2001", "2002", "2003"):
            p = w.phones[ext]
            row = [l for l in out.split("\n") if l.startswith("s" + ext)]
            assert row and "sip:%s@%s:%d" % (ext, p.host, p.port) in row[0], out
            assert "%s:%d/udp" % (p.host, p.port) in row[0] and "sipphone" in row[0], out
        assert w.phones["2001"].granted == 600            # default-expires
        # the phones refresh at 80-95 % of 600 s: an hour later they are still there
        w.run(3600 * 1000)
        assert w.cs.registrar.count == 3
        assert w.cs.registrar.counters["refreshed"] >= 15, w.cs.registrar.counters
        assert w.cs.registrar.counters["expired"] == 0
        w.assert_no_leaks(bindings=3)
    finally:
        w.close()


def _masked(data):
    """A response with the nonce and the echoes of the two requests' own Call-IDs
    (Call-ID, Via branch, From tag) and the To tag masked."""
    text = data.decode()
    text = re.sub(r'nonce="[0-9a-f]+"', 'nonce="N"', text)
    text = re.sub(r";tag=[^;\r\n>]+", ";tag=T", text)
    text = re.sub(r"branch=[^;\r\n]+", "branch=B", text)
    return text.replace("call-a", "call-X").replace("call-b", "call-X")


def test_unknown_user_and_wrong_password_get_identical_401s(tmp_path):
    w = CsWorld(tmp_path, seed=5)
    try:
        sock = w.raw()
        answers = []
        for user, pw, cid in (("2001", "wrong-password", "call-a"), ("9999", "Secret-9999", "call-b")):
            req = register_text(sock, user, cid, 1, contact="sip:x@127.0.0.1:5999", aor="2001")
            r1 = w.exchange(sock, req)
            ch = parse(r1[-1]).get_all("www-authenticate")
            auth = DigestClient().authorize("REGISTER", "sip:" + DOMAIN, ch, user, pw, Random(1))
            req2 = register_text(sock, user, cid, 2, contact="sip:x@127.0.0.1:5999",
                                 aor="2001", auth=auth)
            answers.append(w.exchange(sock, req2)[-1])
        a, b = answers
        assert parse(a).status == 401 and parse(b).status == 401
        assert a != b                                   # fresh nonces
        assert _masked(a) == _masked(b), (a, b)
        assert re.findall(r'nonce="([0-9a-f]+)"', a.decode()) != re.findall(r'nonce="([0-9a-f]+)"', b.decode())
        log = w.cli("show security access-log")
        assert log.count("wrong credentials") == 2, log
        assert "2001" in log and "9999" in log, log
    finally:
        w.close()


def test_expiry_policy_wildcard_and_ordering(tmp_path):
    w = CsWorld(tmp_path, seed=7, extra=(B + "call-server registration min-expires 120",
                                         B + "call-server registration max-expires 1800"))
    try:
        c = Raw(w, "2001", password("2001"))
        r = c.register(expires=30)
        assert r.status == 423 and r.get("min-expires") == "120", r.status
        r = c.register(expires=7200)
        assert r.status == 200, r.status
        assert r.contact[0].params.get("expires") == "1800"
        assert w.cs.registrar.count == 1
        # a lower CSeq in the same Call-ID is out of order; nothing changes
        c.cseq -= 3
        r = c.register(expires=0)
        assert r.status == 500 and "Out Of Order" in r.reason, (r.status, r.reason)
        assert w.cs.registrar.count == 1
        c.cseq += 10
        # '*' needs Expires: 0 and nothing else
        r = c.register(contact="*", expires=60)
        assert r.status == 400, r.status
        r = c.register(contact="*", expires=0)
        assert r.status == 200 and r.contact == [], (r.status, r.contact)
        assert w.cs.registrar.count == 0
        assert w.cs.registrar.counters["unregistered"] == 1
        # a binding without refresh expires on the clock
        r = c.register(expires=120)
        assert r.status == 200 and w.cs.registrar.count == 1
        w.run(119 * 1000)
        assert w.cs.registrar.count == 1
        w.run(2000)
        assert w.cs.registrar.count == 0 and w.cs.registrar.counters["expired"] == 1
    finally:
        w.close()


def test_contact_limit_licence_limit_and_foreign_aor(tmp_path):
    w = CsWorld(tmp_path, seed=9, extra=(B + "station s2001 max-contacts 2",
                                         B + "call-server max-registrations 3"))
    try:
        phones = [Raw(w, "2001", password("2001"), host="127.0.0.%d" % (10 + i)) for i in range(3)]
        assert phones[0].register(expires=600).status == 200
        assert phones[1].register(expires=600).status == 200
        r = phones[2].register(expires=600)
        assert r.status == 403 and r.reason == "Too Many Contacts (max 2)", (r.status, r.reason)
        assert w.cs.registrar.count == 2
        # a refresh of an existing contact is not a new one
        assert phones[0].register(expires=600).status == 200
        assert w.cs.registrar.count == 2
        assert Raw(w, "2002", password("2002")).register(expires=600).status == 200
        r = Raw(w, "2003", password("2003")).register(expires=600)
        assert r.status == 403 and r.reason == "Registration Limit Reached (3 licensed)", r.reason
        assert w.cs.registrar.count == 3
        # 2002's credentials cannot register 2003's address of record
        c = Raw(w, "2002", password("2002"))
        first = c.send(aor="2003")[-1]
        auth = DigestClient().authorize("REGISTER", "sip:" + DOMAIN, first.get_all("www-authenticate"),
                                        "2002", password("2002"), Random(3))
        r = c.send(aor="2003", auth=auth)[-1]
        assert r.status == 403 and r.reason == "Not Your Address Of Record", r.reason
        log = w.cli("show security access-log")
        assert "more than 2 contacts" in log and "licence limit 3" in log, log
    finally:
        w.close()


def test_nat_check_chooses_the_destination(tmp_path):
    w = CsWorld(tmp_path, seed=13, extra=(B + "station s2002 nat-check ip",))
    try:
        a = Raw(w, "2001", password("2001"))
        b = Raw(w, "2002", password("2002"))
        assert a.register(contact="sip:2001@192.168.1.20:5062").status == 200
        assert b.register(contact="sip:2002@192.168.1.21:5064").status == 200
        ba = w.cs.registrar.contacts("s2001")[0]
        bb = w.cs.registrar.contacts("s2002")[0]
        pa = a.sock.getsockname()
        pb = b.sock.getsockname()
        assert ba.nat and ba.dest == (pa[0], pa[1])          # ip-port: the source
        assert bb.nat and bb.dest == (pb[0], 5064)           # ip: source address, Contact port
        out = w.cli("show sip registrations")
        assert "%s:%d/udp nat" % pa in out, out
    finally:
        w.close()


def test_failed_registrations_block_the_source(tmp_path):
    w = CsWorld(tmp_path, seed=15, extra=(B + "security failed-registration threshold 3",
                                          B + "security failed-registration window 60",
                                          B + "security failed-registration block-time 120",
                                          B + "security failed-registration response reject"))
    try:
        bad = Raw(w, "2001", "not-the-password", host="127.0.0.77")
        statuses = [bad.register(expires=600).status for _ in range(3)]
        assert statuses == [401, 401, 403], statuses
        # blocked: even the right password gets 403 now, from that address only
        good = Raw(w, "2001", password("2001"), host="127.0.0.77")
        assert good.register(expires=600).status == 403
        assert Raw(w, "2001", password("2001"), host="127.0.0.78").register(expires=600).status == 200
        out = w.cli("show security blocked")
        assert "127.0.0.77" in out, out
        w.run(121 * 1000)
        assert good.register(expires=600).status == 200
    finally:
        w.close()


def test_failures_with_a_nonce_we_never_issued_do_not_block(tmp_path):
    """Issue 12 item 2: REGISTERs with wrong credentials count toward the block
    only when they carry a nonce the appliance issued, to that very source.
    Six with a made-up nonce, and six with a real nonce issued to another
    source (what a spoofer who cannot see our replies has), block nothing."""
    w = CsWorld(tmp_path, seed=16)       # default threshold 5
    try:
        victim = Raw(w, "2001", password("2001"), host="127.0.0.77")
        forged = ('Digest realm="%s", nonce="%s", algorithm=MD5, qop="auth"' % (DOMAIN, "ab" * 38))
        statuses = []
        for _ in range(6):
            auth = DigestClient().authorize("REGISTER", "sip:" + DOMAIN, forged, "2001",
                                            "guessed-password", victim.rng)
            statuses.append(victim.send(expires=600, auth=auth)[-1].status)
        assert statuses == [401] * 6, statuses
        # a nonce issued to 127.0.0.78, answered (wrongly) from 127.0.0.77
        other = Raw(w, "2001", password("2001"), host="127.0.0.78")
        ch = other.send(expires=600)[-1].get_all("www-authenticate")
        for _ in range(6):
            auth = DigestClient().authorize("REGISTER", "sip:" + DOMAIN, ch, "2001",
                                            "guessed-password", victim.rng)
            r = victim.send(expires=600, auth=auth)[-1]
            assert r.status == 401 and "stale=true" in r.get("www-authenticate"), r
        assert "127.0.0.77" not in w.cli("show security blocked")
        assert w.app.security.counters["auth_failures"] == 0, w.app.security.counters
        assert victim.register(expires=600).status == 200
        # wrong answers to our own challenge, from the source we sent it to, still count
        bad = Raw(w, "2002", "not-the-password", host="127.0.0.79")
        assert [bad.register(expires=600).status for _ in range(5)] == [401] * 4 + [403]
        assert "127.0.0.79" in w.cli("show security blocked")
        assert w.app.security.counters["auth_failures"] == 5
    finally:
        w.close()


def test_allow_list_drops_other_sources(tmp_path):
    w = CsWorld(tmp_path, seed=17, extra=(B + "security allow-list 127.0.0.0/30",))
    try:
        inside = Raw(w, "2001", password("2001"), host="127.0.0.2")
        outside = Raw(w, "2002", password("2002"), host="127.0.0.9")
        assert inside.register(expires=600).status == 200
        assert outside.send(expires=600) == []          # dropped, no answer at all
        assert "not in allow list" in w.cli("show security access-log")
    finally:
        w.close()
