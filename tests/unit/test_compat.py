# portable: micropython
"""The compat shim gives the same answers on both interpreters."""
from firmware import compat


def test_random_is_reproducible_and_identical_across_interpreters():
    r = compat.Random(1)
    assert r.token(8) == "5d6bb49c22326180"
    assert r.randbelow(100) == 64
    a, b = compat.Random(42), compat.Random(42)
    assert [a.next64() for _ in range(5)] == [b.next64() for _ in range(5)]


def test_random_float_in_unit_interval():
    r = compat.Random(7)
    for _ in range(200):
        x = r.random()
        assert 0.0 <= x < 1.0


def test_hmac_sha256_matches_rfc_vector():
    mac = compat.hmac_digest("sha256", b"key", b"The quick brown fox jumps over the lazy dog")
    assert compat.hexlify(mac) == "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"


def test_hmac_md5_matches_rfc2104_vector():
    mac = compat.hmac_digest("md5", b"\x0b" * 16, b"Hi There")
    assert compat.hexlify(mac) == "9294727a3638bb1c13f48ef8158bfc9d"


def test_hash_names_are_case_insensitive():
    assert compat.hash_new("SHA-256", b"abc").digest() == compat.sha256(b"abc").digest()
    assert compat.hexlify(compat.hash_new("MD5", b"").digest()) == "d41d8cd98f00b204e9800998ecf8427e"


def test_monotonic_never_goes_back():
    m = compat.MonotonicMs()
    last = m()
    for _ in range(100):
        now = m()
        assert now >= last
        last = now
