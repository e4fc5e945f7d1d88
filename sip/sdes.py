"""SDES key exchange in SDP (RFC 4568): the a=crypto attribute.

    a=crypto:<tag> <crypto-suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<len>] [params]

    c = parse_crypto("1 AES_CM_128_HMAC_SHA1_80 inline:PS1u...")   # Crypto or SdesError
    line = format_crypto(1, "AES_CM_128_HMAC_SHA1_80", key_salt)  # the attribute value
    c = choose(offers, our_suites)   # the first offer we support (offer order), or None

What we refuse, and why (SdesError names it): suites other than the two AES
counter-mode suites (their keys are 30 bytes); several inline keys or an MKI
(we run one master key per stream); a lifetime below 2^31 packets (we never
re-key mid-call); session parameters (UNENCRYPTED_SRTP and the like weaken
the suite, KDR changes the derivation we implement).
"""
import binascii

# suite -> SRTP authentication tag bytes (the SRTCP tag is 10 bytes in both)
SUITES = {"AES_CM_128_HMAC_SHA1_80": 10, "AES_CM_128_HMAC_SHA1_32": 4}
KEY_SALT_LEN = 30          # 128-bit master key + 112-bit master salt
MAX_CRYPTO_LINES = 8      # a=crypto lines looked at in one media description


class SdesError(ValueError):
    pass


class Crypto:
    __slots__ = ("tag", "suite", "key_salt")

    def __init__(self, tag, suite, key_salt):
        self.tag = tag
        self.suite = suite
        self.key_salt = key_salt

    def __repr__(self):
        return "Crypto(%d, %s)" % (self.tag, self.suite)


def parse_crypto(value):
    parts = value.split()
    if len(parts) < 3:
        raise SdesError("crypto attribute needs a tag, a suite and key parameters")
    tag_s, suite, keys = parts[0], parts[1], parts[2]
    if not tag_s.isdigit() or len(tag_s) > 9:
        raise SdesError("crypto tag %r is not a number" % tag_s)
    if suite not in SUITES:
        raise SdesError("unsupported crypto suite %s" % suite)
    if len(parts) > 3:
        raise SdesError("session parameters not supported: %s" % " ".join(parts[3:]))
    if ";" in keys:
        raise SdesError("several master keys not supported")
    if not keys.startswith("inline:"):
        raise SdesError("key method must be inline")
    fields = keys[7:].split("|")
    try:
        key_salt = binascii.a2b_base64(fields[0])
    except ValueError:
        raise SdesError("key is not base64")
    if len(key_salt) != KEY_SALT_LEN:
        raise SdesError("key and salt must be %d bytes, not %d" % (KEY_SALT_LEN, len(key_salt)))
    for f in fields[1:]:
        if ":" in f:
            raise SdesError("MKI not supported")
        if f.startswith("2^"):
            if not f[2:].isdigit() or int(f[2:]) < 31:
                raise SdesError("key lifetime %s too short" % f)
        elif not f.isdigit() or int(f) < (1 << 31):
            raise SdesError("key lifetime %s too short" % f)
    return Crypto(int(tag_s), suite, key_salt)


def format_crypto(tag, suite, key_salt):
    b64 = binascii.b2a_base64(bytes(key_salt)).strip()
    if not isinstance(b64, str):
        b64 = b64.decode()
    return "%d %s inline:%s" % (tag, suite, b64)


def choose(values, suites):
    """The first a=crypto value (in the offerer's order of preference) with
    a suite in `suites` that parses; None when there is none."""
    for v in values[:MAX_CRYPTO_LINES]:
        try:
            c = parse_crypto(v)
        except SdesError:
            continue
        if c.suite in suites:
            return c
    return None


# -- offer/answer with a crypto policy (RFC 4568 §5-§7) ------------------------

DISABLE, PREFER, REQUIRE = "disable", "prefer", "require"
POLICIES = (DISABLE, PREFER, REQUIRE)


class Keys:
    """What one negotiated audio stream encrypts with: our key (sent in our
    SDP), the peer's (from its SDP) and the suite both use."""
    __slots__ = ("suite", "local", "remote", "tag")

    def __init__(self, suite, local, remote, tag):
        self.suite = suite
        self.local = local
        self.remote = remote
        self.tag = tag


def _secure_proto(proto):
    return proto.upper().startswith("RTP/SAVP")


def offer_crypto(media, policy, secure_signalling, rng, suite="AES_CM_128_HMAC_SHA1_80"):
    """Put our key into an offered audio section (sip.sdp.Media).  Returns
    the key (30 bytes) or None (plain RTP).  Keys travel only over TLS: with
    `require` on an insecure signalling path this raises SdesError, and
    `prefer` falls back to plain RTP."""
    if policy == DISABLE:
        return None
    if not secure_signalling:
        if policy == REQUIRE:
            raise SdesError("SRTP required but the signalling is not TLS")
        return None
    key = rng.bytes(KEY_SALT_LEN)
    if policy == REQUIRE:
        media.proto = "RTP/SAVP"
    media.lines.insert(0, ["a", "crypto:" + format_crypto(1, suite, key)])
    return key


def answer_crypto(offered, answer_media, policy, secure_signalling, rng):
    """Decide on the peer's offer (offered, answer_media: sip.sdp.Media) and
    complete our answer.  Returns Keys, or None for plain RTP; raises
    SdesError (answer 488) when the policies cannot meet: `require` with no
    usable key or over insecure signalling, or an RTP/SAVP offer that we
    cannot or may not encrypt."""
    mandatory = _secure_proto(offered.proto)
    c = choose(offered.attrs("crypto"), SUITES) if policy != DISABLE else None
    if c is not None and not secure_signalling:
        c = None                                   # a key seen in the clear is no key
    if c is None:
        if policy == REQUIRE:
            raise SdesError("SRTP required: the offer has no usable key" if secure_signalling
                            else "SRTP required but the signalling is not TLS")
        if mandatory:
            raise SdesError("RTP/SAVP offered but SRTP is %s" % (
                "disabled" if policy == DISABLE else "not possible without TLS"))
        return None
    key = rng.bytes(KEY_SALT_LEN)
    answer_media.proto = offered.proto
    answer_media.lines.insert(0, ["a", "crypto:" + format_crypto(c.tag, c.suite, key)])
    return Keys(c.suite, key, c.key_salt, c.tag)


def accept_answer(answered, local_key, policy, offered_suite="AES_CM_128_HMAC_SHA1_80"):
    """The peer's answer to our offer (answered: sip.sdp.Media).  Returns Keys,
    or None for plain RTP; raises SdesError when we required SRTP and the
    answer has no key, or the answer's key does not fit what we offered."""
    if local_key is None:
        return None
    values = answered.attrs("crypto")
    if not values:
        if policy == REQUIRE:
            raise SdesError("SRTP required: the answer has no key")
        return None
    c = parse_crypto(values[0])
    if c.suite != offered_suite or c.tag != 1:
        raise SdesError("answer's crypto %d %s was not offered" % (c.tag, c.suite))
    return Keys(c.suite, local_key, c.key_salt, c.tag)
