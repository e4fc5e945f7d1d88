"""Our SRTP engine (the one MicroPython runs) byte for byte against libsrtp
(pylibsrtp, what the appliance uses on CPython)."""
from firmware.media import srtp
from tests.unit.test_srtp import KEY_SALT, _aes, rtp


def test_cpython_sessions_use_libsrtp():
    assert srtp.session("AES_CM_128_HMAC_SHA1_80", KEY_SALT, True).engine == "libsrtp"


def test_our_packets_equal_libsrtp_packets_in_both_suites_across_the_rollover():
    for suite in srtp.SUITES:
        ours = srtp.session(suite, KEY_SALT, True, engine="own", aes=_aes())
        lib = srtp.session(suite, KEY_SALT, True, engine="libsrtp")
        lib_rx = srtp.session(suite, KEY_SALT, False, engine="libsrtp")
        our_rx = srtp.session(suite, KEY_SALT, False, engine="own", aes=_aes())
        for seq in list(range(65500, 65536)) + list(range(0, 40)):
            p = rtp(seq, ts=seq * 160)
            a, b = ours.protect(p), lib.protect(p)
            assert a == b, (suite, seq)
            assert lib_rx.unprotect(a) == p and our_rx.unprotect(b) == p


def test_srtcp_interworks_both_ways():
    rr = bytes([0x81, 201, 0, 7]) + (0xCAFEBABE).to_bytes(4, "big") + bytes(range(24))
    ours = srtp.session("AES_CM_128_HMAC_SHA1_80", KEY_SALT, True, engine="own", aes=_aes())
    our_rx = srtp.session("AES_CM_128_HMAC_SHA1_80", KEY_SALT, False, engine="own", aes=_aes())
    lib = srtp.session("AES_CM_128_HMAC_SHA1_80", KEY_SALT, True, engine="libsrtp")
    lib_rx = srtp.session("AES_CM_128_HMAC_SHA1_80", KEY_SALT, False, engine="libsrtp")
    for _ in range(3):
        assert lib_rx.unprotect_rtcp(ours.protect_rtcp(rr)) == rr
        assert our_rx.unprotect_rtcp(lib.protect_rtcp(rr)) == rr


def test_libsrtp_errors_are_srtp_errors():
    rx = srtp.session("AES_CM_128_HMAC_SHA1_80", KEY_SALT, False, engine="libsrtp")
    w = bytearray(srtp.session("AES_CM_128_HMAC_SHA1_80", KEY_SALT, True).protect(rtp(7)))
    w[30] ^= 0x40
    try:
        rx.unprotect(bytes(w))
    except srtp.SrtpError:
        return
    raise AssertionError("tampered packet accepted")
