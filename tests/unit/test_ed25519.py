# portable: micropython
"""Ed25519 (firmware/ed25519.py) against RFC 8032 section 7.1, on both
interpreters: the pure SHA-512, key derivation, signing and verification,
and refusal of every altered byte class."""
from firmware import ed25519

# RFC 8032 7.1 TEST 1 (empty message) and TEST 2 (one byte 0x72)
VECTORS = (
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
     "1cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613"
     "d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
)


def _h(s):
    import binascii
    return binascii.unhexlify(s)


def test_sha512_known_answers():
    # FIPS 180-2 examples
    assert ed25519.sha512(b"abc") == _h(
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f")
    assert ed25519.sha512(b"") == _h(
        "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
        "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e")
    # two blocks (the padding crosses a block boundary)
    m = b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
    assert ed25519.sha512(m) == _h(
        "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
        "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909")


def test_rfc8032_vectors_sign_and_verify():
    for secret, public, msg, sig in VECTORS:
        sk, pk, m, s = _h(secret), _h(public), _h(msg), _h(sig)
        assert ed25519.public_key(sk) == pk
        assert ed25519.sign(sk, m) == s
        assert ed25519.verify(pk, m, s)


def test_altered_message_signature_or_key_is_refused():
    secret, public, msg, sig = VECTORS[1]
    pk, m, s = _h(public), _h(msg), _h(sig)
    assert not ed25519.verify(pk, m + b"\0", s)
    assert not ed25519.verify(pk, b"\x73", s)
    for i in (0, 31, 32, 63):
        bad = bytearray(s)
        bad[i] ^= 1
        assert not ed25519.verify(pk, m, bytes(bad))
    assert not ed25519.verify(_h(VECTORS[0][1]), m, s)
    assert not ed25519.verify(pk[:31], m, s)
    assert not ed25519.verify(pk, m, s[:63])
    # S >= q is refused (no malleability)
    big = s[:32] + (int.from_bytes(s[32:], "little") + ed25519._Q).to_bytes(32, "little")
    assert not ed25519.verify(pk, m, big)
