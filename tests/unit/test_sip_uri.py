# portable: micropython
"""URI parsing, round trip and RFC 3261 §19.1.4 comparison."""
from tests.portable import raises
from sip.uri import parse_uri, URI, Params, unescape
from sip.errors import SipParseError

ROUND_TRIP = [
    "sip:alice@atlanta.com",
    "sip:alice:secretword@atlanta.com;transport=tcp",
    "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
    "sip:+1-212-555-1212:1234@gateway.com;user=phone",
    "sips:1212@gateway.com",
    "sip:alice@192.0.2.4",
    "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
    "sip:alice;day=tuesday@atlanta.com",
    "sip:[2001:db8::10]:5070;lr",
    "sip:user;par=u%40example.net@example.com",
    "tel:+1-201-555-0123",
    "tel:7042;phone-context=example.com",
    "isbn:2983792873",
    "http://www.example.com",
    "soap.beep://192.0.2.103:3002",
]


def test_round_trip():
    for t in ROUND_TRIP:
        assert str(parse_uri(t)) == t, t


def test_components():
    u = parse_uri("sips:%61lice:pw@[2001:db8::1]:5061;transport=TLS;lr?subject=x&b=c")
    assert u.scheme == "sips"
    assert u.user == "%61lice" and u.user_plain == "alice"
    assert u.password == "pw"
    assert u.host == "[2001:db8::1]" and u.port == 5061
    assert u.transport == "tls" and u.lr
    assert u.params.get("TRANSPORT") == "TLS"
    assert u.headers == [["subject", "x"], ["b", "c"]]
    u = parse_uri("sip:host.example.com")
    assert u.user is None and u.port is None and not u.lr


def test_unknown_scheme_parses():
    u = parse_uri("nobodyKnowsThisScheme:totallyopaquecontent")
    assert u.scheme == "nobodyknowsthisscheme"
    assert u.opaque == "totallyopaquecontent"
    assert str(u) == "nobodyKnowsThisScheme:totallyopaquecontent"


def test_tel():
    u = parse_uri("tel:+1-201-555-0123;phone-context=x")
    assert u.scheme == "tel" and u.user == "+1-201-555-0123"
    assert u.params.get("phone-context") == "x"
    assert parse_uri("tel:+1-201-555-0123") == parse_uri("tel:+1(201)5550123")


def test_equal_rfc3261():
    eq = [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
        ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
         "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
        ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
         "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ]
    for a, b in eq:
        assert parse_uri(a) == parse_uri(b), (a, b)
        assert hash(parse_uri(a)) == hash(parse_uri(b))
    ne = [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
        ("sip:alice@example.com", "sips:alice@example.com"),
        ("sip:a%3Bb@example.com", "sip:a;b@example.com"),
    ]
    for a, b in ne:
        assert parse_uri(a) != parse_uri(b), (a, b)


def test_escaped_param_names():
    a = parse_uri("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    b = parse_uri("sip:caller@host5.example.net;lr;name=value%25%34%31")
    assert a == b


def test_escnull_not_truncated():
    u = parse_uri("sip:null-%00-null@example.com")
    assert unescape(u.user) == b"null-\x00-null"
    assert parse_uri("sip:%00@h.example.com") != parse_uri("sip:%00%00@h.example.com")


def test_aor_key():
    a = parse_uri("sip:%61lice@AtLanta.com;transport=tcp")
    b = parse_uri("sip:alice@atlanta.com")
    assert a.aor_key() == b.aor_key() == b"sip:alice@atlanta.com"


def test_bad_uris():
    for t in ["", "sip:", "nocolon", "sip:user@", "sip:@host", "sip:a b@host",
              "sip:<host>", "sip:host:99999", "sip:host:12x", "sip:host;;lr",
              "sip:%zzuser@host", "sip:host?x", "sip:[::1", "1abc:foo",
              "sip:ho$t.example.com", "sip:.host"]:
        e = raises(SipParseError, parse_uri, t)
        assert e.status == 400, t


def test_build_and_modify():
    u = URI("sip", user="alice", host="example.com", port=5080,
            params=[("transport", "tcp"), "lr"])
    assert str(u) == "sip:alice@example.com:5080;transport=tcp;lr"
    u.params.set("transport", "udp")
    u.params.remove("lr")
    assert str(u) == "sip:alice@example.com:5080;transport=udp"
    c = u.copy()
    c.host = "other.example.com"
    assert u.host == "example.com"
    p = Params()
    p.set("a", 1)
    p.set("b")
    assert str(p) == ";a=1;b" and "B" in p and len(p) == 2
