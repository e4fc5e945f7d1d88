"""SRTP/SRTCP (firmware/media/srtp.py, our engine) against the RFC 3711
appendix B vectors, and SDES attributes (sip/sdes.py).  Runs under both
interpreters: MicroPython's cryptolib AES, or on CPython the `cryptography`
package's AES as the block cipher (tests only: the device uses libsrtp there,
checked against ours in test_srtp_libsrtp.py)."""
# portable: micropython
import binascii

from firmware.media import srtp
from sip import sdes


def _aes():
    try:
        import cryptolib  # noqa: F401  (MicroPython: the engine's default)
        return None
    except ImportError:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        class Ecb:
            def __init__(self, key):
                self.e = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()

            def encrypt(self, src, dst):
                dst[:] = self.e.update(bytes(src))
        return Ecb


def h(s):
    return binascii.unhexlify(s.replace(" ", ""))


KEY_SALT = bytes(range(1, 31))


def _own(suite="AES_CM_128_HMAC_SHA1_80", key_salt=KEY_SALT):
    return srtp.session(suite, key_salt, True, engine="own", aes=_aes())


def rtp(seq, ssrc=0xCAFEBABE, payload=None, ts=0):
    p = payload if payload is not None else bytes((seq + i) & 0xFF for i in range(160))
    return bytes([0x80, 0x00, seq >> 8 & 0xFF, seq & 0xFF]) + ts.to_bytes(4, "big") \
        + ssrc.to_bytes(4, "big") + p


def test_aes_counter_mode_keystream_rfc3711_b2():
    s = _own()
    aes = s._aes_new(h("2B7E151628AED2A6ABF7158809CF4F3C"))
    ks = s._keystream(aes, h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"), 48)
    assert ks == h("E03EAD0935C95E80E166B16DD92B4EB4 D23513162B02D0F72A43A2FE4A5F97AB"
                   "41E95B3BB0A2E8DD477901E4FCA894C0"), binascii.hexlify(ks)


def test_key_derivation_rfc3711_b3():
    s = _own(key_salt=h("E1F97A0D3E018BE0D64FA32C06DE4139") + h("0EC675AD498AFEEBB6960B3AABE6"))
    assert s.rtp_key == h("C61E7A93744F39EE10734AFE3FF7A087"), binascii.hexlify(s.rtp_key)
    assert s.rtp_salt == h("30CBBC08863D8C85D49DB34A9AE1"), binascii.hexlify(s.rtp_salt)
    assert s.rtp_auth == h("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4"), binascii.hexlify(s.rtp_auth)


def test_round_trip_encrypts_and_authenticates_both_suites():
    for suite, tag in (("AES_CM_128_HMAC_SHA1_80", 10), ("AES_CM_128_HMAC_SHA1_32", 4)):
        tx, rx = _own(suite), _own(suite)
        for seq in (65530, 65535, 0, 1, 2):       # across the rollover
            p = rtp(seq)
            w = tx.protect(p)
            assert len(w) == len(p) + tag and w[:12] == p[:12] and w[12:172] != p[12:]
            assert rx.unprotect(w) == p
        assert tx._streams[0xCAFEBABE].roc == 1 and rx._streams[0xCAFEBABE].roc == 1


def _refused(fn, arg, why):
    try:
        fn(arg)
    except srtp.SrtpError as e:
        assert why in str(e), str(e)
        return
    raise AssertionError("accepted: expected %r" % why)


def test_tampering_replay_and_the_stream_bound_are_refused():
    tx, rx = _own(), _own()
    w = tx.protect(rtp(100))
    bad = bytearray(w)
    bad[20] ^= 1
    _refused(rx.unprotect, bytes(bad), "authentication")
    assert rx.unprotect(w) == rtp(100)
    _refused(rx.unprotect, w, "replay")
    w2, w3 = tx.protect(rtp(101)), tx.protect(rtp(102))
    assert rx.unprotect(w3) == rtp(102) and rx.unprotect(w2) == rtp(101)   # reordered: fine
    for seq in range(103, 103 + srtp.REPLAY_WINDOW + 1):
        rx.unprotect(tx.protect(rtp(seq)))
    _refused(rx.unprotect, w2, "replay")            # now older than the window
    _refused(rx.unprotect, w[:15], "")
    _refused(rx.unprotect, b"\x00" * 40, "not an RTP packet")
    for i in range(srtp.MAX_STREAMS - 1):
        rx.unprotect(tx.protect(rtp(1, ssrc=i)))
    _refused(rx.unprotect, _own().protect(rtp(1, ssrc=999)), "streams")
    _refused(tx.protect, rtp(1, ssrc=999), "streams")
    # the wrong key never authenticates
    other = _own(key_salt=bytes(30))
    _refused(other.unprotect, tx.protect(rtp(500)), "authentication")


def test_srtcp_round_trip_index_and_replay():
    tx, rx = _own(), _own()
    rr = bytes([0x81, 201, 0, 7]) + (0xCAFEBABE).to_bytes(4, "big") + bytes(range(24))
    w = tx.protect_rtcp(rr)
    assert w[:8] == rr[:8] and len(w) == len(rr) + 4 + 10 and w[8:32] != rr[8:]
    assert w[len(rr):len(rr) + 4] == b"\x80\x00\x00\x00"      # E flag, index 0
    assert rx.unprotect_rtcp(w) == rr
    _refused(rx.unprotect_rtcp, w, "replay")
    w1 = tx.protect_rtcp(rr)
    assert w1[len(rr):len(rr) + 4] == b"\x80\x00\x00\x01"
    assert rx.unprotect_rtcp(w1) == rr


def test_sdes_attributes():
    line = sdes.format_crypto(1, "AES_CM_128_HMAC_SHA1_80", KEY_SALT)
    c = sdes.parse_crypto(line)
    assert (c.tag, c.suite, c.key_salt) == (1, "AES_CM_128_HMAC_SHA1_80", KEY_SALT)
    c = sdes.parse_crypto(line + "|2^31")
    assert c.key_salt == KEY_SALT
    b64 = line.split("inline:")[1]
    for value, why in (
            ("1 AES_CM_128_HMAC_SHA1_80", "needs"),
            ("x AES_CM_128_HMAC_SHA1_80 inline:" + b64, "tag"),
            ("1 F8_128_HMAC_SHA1_80 inline:" + b64, "unsupported crypto suite F8_128_HMAC_SHA1_80"),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + "|2^20", "lifetime"),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + "|1:4", "MKI"),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + " UNENCRYPTED_SRTP", "session parameters"),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", "30 bytes"),
            ("1 AES_CM_128_HMAC_SHA1_80 uri:x", "inline")):
        try:
            sdes.parse_crypto(value)
        except sdes.SdesError as e:
            assert why in str(e), (value, str(e))
        else:
            raise AssertionError("accepted " + value)
    offers = ["1 F8_128_HMAC_SHA1_80 inline:" + b64,
              "2 AES_CM_128_HMAC_SHA1_32 inline:" + b64,
              "3 AES_CM_128_HMAC_SHA1_80 inline:" + b64]
    assert sdes.choose(offers, sdes.SUITES).tag == 2
    assert sdes.choose(offers, ("AES_CM_128_HMAC_SHA1_80",)).tag == 3
    assert sdes.choose(offers[:1], sdes.SUITES) is None


class _Rng:
    def __init__(self):
        self.n = 0

    def bytes(self, n):
        self.n += 1
        return bytes((self.n + i) & 0xFF for i in range(n))


def _media(proto="RTP/AVP", crypto=()):
    from sip.sdp import Media
    return Media("audio", 4000, proto, ["0"], [["a", "crypto:" + c] for c in crypto])


def _sdes_refused(fn, why):
    try:
        fn()
    except sdes.SdesError as e:
        assert why in str(e), str(e)
        return
    raise AssertionError("accepted: " + why)


def test_sdes_offer_answer_under_each_policy():
    rng = _Rng()
    m = _media()
    assert sdes.offer_crypto(m, sdes.DISABLE, True, rng) is None and m.attrs("crypto") == []
    assert sdes.offer_crypto(m, sdes.PREFER, False, rng) is None        # no TLS: no key
    _sdes_refused(lambda: sdes.offer_crypto(_media(), sdes.REQUIRE, False, rng), "not TLS")
    m = _media()
    key = sdes.offer_crypto(m, sdes.REQUIRE, True, rng)
    assert m.proto == "RTP/SAVP" and len(key) == 30
    offered = m.attrs("crypto")[0]
    assert sdes.parse_crypto(offered).key_salt == key
    # the answerer
    ans = _media("RTP/SAVP")
    k = sdes.answer_crypto(m, ans, sdes.PREFER, True, rng)
    assert k.remote == key and k.local != key and ans.proto == "RTP/SAVP"
    assert sdes.parse_crypto(ans.attrs("crypto")[0]).key_salt == k.local
    # back at the offerer
    k2 = sdes.accept_answer(ans, key, sdes.REQUIRE)
    assert (k2.local, k2.remote, k2.suite) == (key, k.local, "AES_CM_128_HMAC_SHA1_80")
    _sdes_refused(lambda: sdes.accept_answer(_media(), key, sdes.REQUIRE), "answer has no key")
    assert sdes.accept_answer(_media(), key, sdes.PREFER) is None
    # refusals that answer 488
    plain = _media()
    _sdes_refused(lambda: sdes.answer_crypto(plain, _media(), sdes.REQUIRE, True, rng),
                  "offer has no usable key")
    _sdes_refused(lambda: sdes.answer_crypto(m, _media(), sdes.DISABLE, True, rng),
                  "RTP/SAVP offered but SRTP is disabled")
    _sdes_refused(lambda: sdes.answer_crypto(m, _media(), sdes.REQUIRE, False, rng),
                  "not TLS")
    avp = _media(crypto=[offered])            # best effort: key offered over RTP/AVP
    assert sdes.answer_crypto(avp, _media(), sdes.PREFER, False, rng) is None
    assert sdes.answer_crypto(avp, _media(), sdes.DISABLE, True, rng) is None
    assert sdes.answer_crypto(avp, _media(), sdes.PREFER, True, rng).remote == key
