# portable: micropython
"""Digest authentication: RFC vectors, server verify outcomes, client."""
from tests.portable import raises
from firmware.compat import Random
from sip import digest
from sip.digest import (DigestServer, DigestClient, ha1, hmac_sha256, parse_auth,
                        OK, STALE, FAILED, REPLAY, NO_CREDENTIALS, MALFORMED)
from sip.errors import SipParseError


class FixedRng:
    def __init__(self, value):
        self.value = value

    def token(self, nbytes=8):
        return self.value


def test_rfc2617_vector():
    ch = ('Digest realm="testrealm@host.com", qop="auth,auth-int", '
          'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
          'opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    v = DigestClient().authorize("GET", "/dir/index.html", ch, "Mufasa",
                                 "Circle Of Life", FixedRng("0a4f113b"))
    scheme, p = parse_auth(v)
    assert scheme == "digest"
    assert p["response"] == "6629fae49393a05397450978507c4ef1"
    assert p["nc"] == "00000001" and p["qop"] == "auth"
    assert p["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"


def test_rfc7616_vectors():
    base = ('Digest realm="http-auth@example.org", qop="auth, auth-int", '
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
            'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    rng = FixedRng("f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    v = DigestClient().authorize("GET", "/dir/index.html",
                                 [base + ", algorithm=MD5", base + ", algorithm=SHA-256"],
                                 "Mufasa", "Circle of Life", rng)
    p = parse_auth(v)[1]
    assert p["algorithm"] == "SHA-256"
    assert p["response"] == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    v = DigestClient().authorize("GET", "/dir/index.html", base + ", algorithm=MD5",
                                 "Mufasa", "Circle of Life", rng)
    assert parse_auth(v)[1]["response"] == "8ca523f5e9506fed4657c9700eebdbec"
    # HA1 instead of the password
    h = ha1("Mufasa", "http-auth@example.org", "Circle of Life", "SHA-256")
    v = DigestClient().authorize("GET", "/dir/index.html", base + ", algorithm=SHA-256",
                                 "Mufasa", h, rng, is_ha1=True)
    assert parse_auth(v)[1]["response"].startswith("753927fa")


def test_hmac_sha256_rfc4231():
    k = b"\x0b" * 20
    assert hmac_sha256(k, b"Hi There").hex() == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    assert hmac_sha256(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    assert hmac_sha256(b"\xaa" * 131,
                       b"Test Using Larger Than Block-Size Key - Hash Key First").hex() == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_legacy_no_qop_client():
    ch = 'Digest realm="r", nonce="n"'
    v = DigestClient().authorize("REGISTER", "sip:r", ch, "u", "p", FixedRng("c"))
    p = parse_auth(v)[1]
    assert "qop" not in p and "nc" not in p
    h1 = ha1("u", "r", "p")
    h2 = digest.hexdigest("MD5", "REGISTER:sip:r")
    assert p["response"] == digest.hexdigest("MD5", h1 + ":n:" + h2)


def _setup():
    rng = Random(7)
    srv = DigestServer("branch.example.com", b"secret-key", rng, nonce_ttl_ms=30000)
    store = {}
    for alg in ("MD5", "SHA-256"):
        store[("1001", alg)] = ha1("1001", "branch.example.com", "pw1001", alg)

    def lookup(user, realm, alg):
        return store.get((user, alg))
    return rng, srv, lookup


def test_server_round_trip_and_replay():
    rng, srv, lookup = _setup()
    chs = srv.challenge(1000)
    assert len(chs) == 2 and "algorithm=SHA-256" in chs[0] and "algorithm=MD5" in chs[1]
    assert 'qop="auth"' in chs[0] and "stale" not in chs[0]
    cl = DigestClient()
    a1 = cl.authorize("REGISTER", "sip:branch.example.com", chs, "1001", "pw1001", rng)
    r = srv.verify("REGISTER", a1, lookup, 2000, "sip:branch.example.com")
    assert r.outcome == OK and r.ok and r.username == "1001" and r.algorithm == "SHA-256"
    assert srv.verify("REGISTER", a1, lookup, 2100).outcome == REPLAY
    a2 = cl.authorize("REGISTER", "sip:branch.example.com", chs, "1001", "pw1001", rng)
    assert parse_auth(a2)[1]["nc"] == "00000002"
    assert srv.verify("REGISTER", a2, lookup, 2200).outcome == OK
    assert srv.verify("REGISTER", a1, lookup, 2300).outcome == REPLAY
    # MD5 also accepted
    # a fresh client on the same nonce restarts at nc=1: a replay
    a3 = DigestClient().authorize("REGISTER", "sip:branch.example.com", chs[1],
                                  "1001", "pw1001", rng)
    assert srv.verify("REGISTER", a3, lookup, 2400).outcome == REPLAY
    a3 = DigestClient().authorize("REGISTER", "sip:branch.example.com",
                                  srv.challenge(2400)[1],
                                  "1001", "pw1001", rng)
    r = srv.verify("REGISTER", a3, lookup, 2400)
    assert r.ok and r.algorithm == "MD5"


def test_server_failures_indistinguishable():
    rng, srv, lookup = _setup()
    chs = srv.challenge(0)
    wrong = DigestClient().authorize("REGISTER", "sip:b", chs, "1001", "nope", rng)
    unknown = DigestClient().authorize("REGISTER", "sip:b", chs, "9999", "pw1001", rng)
    r1 = srv.verify("REGISTER", wrong, lookup, 10)
    r2 = srv.verify("REGISTER", unknown, lookup, 10)
    assert r1.outcome == r2.outcome == FAILED
    assert not r1.ok and not r2.ok


def test_server_stale_and_forged_nonce():
    rng, srv, lookup = _setup()
    chs = srv.challenge(0)
    a = DigestClient().authorize("REGISTER", "sip:b", chs, "1001", "pw1001", rng)
    assert srv.verify("REGISTER", a, lookup, 30001).outcome == STALE
    assert "stale=true" in srv.challenge(30001, stale=True)[0]
    forged = ('Digest realm="branch.example.com", nonce="%s", algorithm=MD5, qop="auth"'
              % ("0" * 52))
    a = DigestClient().authorize("REGISTER", "sip:b", forged, "1001", "pw1001", rng)
    assert srv.verify("REGISTER", a, lookup, 10).outcome == STALE
    # a nonce we never issued is not checked against the password: STALE either
    # way (issue 12 item 2: FAILED counts toward blocking the source)
    a = DigestClient().authorize("REGISTER", "sip:b", forged, "1001", "bad", rng)
    assert srv.verify("REGISTER", a, lookup, 10).outcome == STALE


def test_nonces_are_bound_to_the_source_they_were_issued_to():
    rng, srv, lookup = _setup()
    chs = srv.challenge(0, bind="192.0.2.7:5060")
    good = DigestClient().authorize("REGISTER", "sip:b", chs, "1001", "pw1001", rng)
    bad = DigestClient().authorize("REGISTER", "sip:b", chs, "1001", "guess", rng)
    # from another source: stale, whatever the password, so nothing is counted
    assert srv.verify("REGISTER", good, lookup, 10, bind="192.0.2.8:5060").outcome == STALE
    assert srv.verify("REGISTER", bad, lookup, 10, bind="192.0.2.7:5061").outcome == STALE
    assert srv.verify("REGISTER", bad, lookup, 10).outcome == STALE
    # from the source it was issued to
    assert srv.verify("REGISTER", bad, lookup, 10, bind="192.0.2.7:5060").outcome == FAILED
    assert srv.verify("REGISTER", good, lookup, 10, bind="192.0.2.7:5060").outcome == OK


def test_nonces_carry_128_bits_of_salt():
    rng, srv, lookup = _setup()
    n1 = parse_auth(srv.challenge(0)[0])[1]["nonce"]
    n2 = parse_auth(srv.challenge(0)[0])[1]["nonce"]
    assert len(n1) == 76 and n1[:12] == n2[:12] and n1[12:44] != n2[12:44]


def test_server_other_outcomes():
    rng, srv, lookup = _setup()
    assert srv.verify("REGISTER", "NoOneKnowsThisScheme opaque-data=here",
                      lookup, 0).outcome == NO_CREDENTIALS
    assert srv.verify("REGISTER", None, lookup, 0).outcome == NO_CREDENTIALS
    assert srv.verify("REGISTER", 'Digest realm="other", username="a"',
                      lookup, 0).outcome == NO_CREDENTIALS
    assert srv.verify("REGISTER", 'Digest realm="branch.example.com", username="a',
                      lookup, 0).outcome == MALFORMED
    assert srv.verify("REGISTER", 'Digest realm="branch.example.com", username="a"',
                      lookup, 0).outcome == MALFORMED
    chs = srv.challenge(0)
    a = DigestClient().authorize("REGISTER", "sip:b", chs, "1001", "pw1001", rng)
    assert srv.verify("REGISTER", a, lookup, 5, "sip:other").outcome == MALFORMED
    # legacy no-qop credentials are refused by the server
    legacy = chs[1].replace(', qop="auth"', "")
    a = DigestClient().authorize("REGISTER", "sip:b", legacy, "1001", "pw1001", rng)
    assert srv.verify("REGISTER", a, lookup, 5).outcome == FAILED


def test_nonce_table_bound():
    rng, srv, lookup = _setup()
    first = srv.challenge(0)
    a_first = DigestClient().authorize("REGISTER", "sip:b", first, "1001", "pw1001", rng)
    assert srv.verify("REGISTER", a_first, lookup, 1).ok
    n = srv.max_track
    for i in range(n):
        ch = srv.challenge(10 + i)
        a = DigestClient().authorize("REGISTER", "sip:b", ch, "1001", "pw1001", rng)
        assert srv.verify("REGISTER", a, lookup, 10 + i).ok
    assert len(srv._nc) == n and srv.evicted == 1
    # the evicted nonce cannot be replayed from nc=1 again: it is now stale
    assert srv.verify("REGISTER", a_first, lookup, 2000).outcome == STALE


def test_parse_auth():
    s, p = parse_auth('Digest username="a\\"b", realm=r, nc=00000001 , qop=auth')
    assert s == "digest" and p["username"] == 'a"b' and p["realm"] == "r"
    assert p["nc"] == "00000001" and p["qop"] == "auth"
    for bad in ['Digest a="x', 'Digest a=1, a=2', 'Digest =x', 'Di(gest a=1',
                'Digest a="1" b=2']:
        raises(SipParseError, parse_auth, bad)
