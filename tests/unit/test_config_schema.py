# portable: micropython
"""Schema types, statement parsing, tree rendering and diffs."""
from firmware.config import schema as S
from firmware.config import tree as T
from firmware.config.engine import load_features
from firmware.config.schema import ConfigError
from tests.portable import raises

load_features()


def test_integer_port_and_range_errors_name_the_reason():
    assert S.Port().parse("5060") == 5060
    assert "out of range 1..65535" in str(raises(ValueError, S.Port().parse, "70000"))
    assert "not a number" in str(raises(ValueError, S.Integer(0, 5).parse, "x1"))
    assert S.Integer(-5, 5).parse("-3") == -3


def test_dscp_accepts_numbers_bits_and_names_and_prints_names():
    d = S.Dscp()
    assert d.parse("ef") == 46 and d.parse("101110") == 46 and d.parse("46") == 46
    assert d.format(46) == "ef" and d.format(5) == "5"
    raises(ValueError, d.parse, "64")
    raises(ValueError, d.parse, "gold")


def test_addresses_prefixes_enums_booleans_names():
    assert S.IPv4Address().parse("010.0.0.1") == "10.0.0.1"
    raises(ValueError, S.IPv4Address().parse, "10.0.0.256")
    assert S.IPv4Prefix().parse("10.1.0.0/16") == "10.1.0.0/16"
    assert S.IPv4Prefix().parse("10.1.2.3") == "10.1.2.3/32"
    assert "host bits" in str(raises(ValueError, S.IPv4Prefix().parse, "10.1.2.3/16"))
    assert S.Enum(("udp", "tcp")).parse("tc") == "tcp"
    assert S.Boolean().parse("true") is True
    raises(ValueError, S.Name().parse, "-bad")
    raises(ValueError, S.Hostname().parse, "bad_host")
    raises(ValueError, S.String().parse, 'a"b')


def test_password_hash_is_pbkdf2_sha256_and_checks():
    h = S.hash_password("secret99", "0011223344556677", rounds=50)
    assert h.startswith("$pbkdf2-sha256$50$0011223344556677$")
    assert S.check_password("secret99", h)
    assert not S.check_password("secret98", h)
    assert not S.check_password("secret99", "garbage")
    try:
        import hashlib
        ref = hashlib.pbkdf2_hmac("sha256", b"secret99", b"0011223344556677", 50)
    except (ImportError, AttributeError):
        return   # MicroPython: no reference implementation
    assert h.endswith("$" + "".join("%02x" % b for b in ref))


def test_reversible_secret_is_shown_obfuscated_and_reads_back():
    s = S.Secret()
    shown = s.format("hunter2")
    assert shown.startswith("$9$") and "hunter2" not in shown
    assert s.parse(shown) == "hunter2"


def test_tokenize_quotes_and_pipes():
    assert T.tokenize('set a "b c" | match "x|y"') == ["set", "a", "b c", T.PIPE, "match", "x|y"]
    assert T.tokenize('a "q\\"x"') == ["a", 'q"x']
    raises(ConfigError, T.tokenize, 'a "open')


def test_resolve_abbreviations_and_errors():
    t = T.resolve("sys host-n br1".split())
    assert t.path == ["system", "host-name"] and t.value == "br1"
    e = raises(ConfigError, T.resolve, "services convergence-services sip port 70000".split())
    assert str(e) == "services convergence-services sip port 70000: value out of range 1..65535"
    e = raises(ConfigError, T.resolve, "system bogus 1".split())
    assert "system bogus: syntax error" in str(e) and "host-name" in str(e)
    e = raises(ConfigError, T.resolve, "s".split())   # system / services
    assert "ambiguous" in str(e)


def test_set_delete_render_and_compare():
    tree = {}
    for line in ("system host-name br1", "services convergence-services service-class voice dscp-rtp ef",
                 "services convergence-services service-class data dscp-sip 0"):
        T.tree_set(tree, T.resolve(line.split()))
    curly = T.render_curly(tree)
    assert curly[0] == "system {" and "    host-name br1;" in curly
    assert "        service-class data {" in curly
    sets = T.render_set(tree)
    assert sets == ["set system host-name br1",
                    "set services convergence-services service-class data dscp-sip be",
                    "set services convergence-services service-class voice dscp-rtp ef"]
    old = T.copy_tree(tree)
    T.tree_delete(tree, T.resolve("services convergence-services service-class data".split()))
    T.tree_set(tree, T.resolve("system host-name br2".split()))
    assert T.compare(old, tree) == [
        "[edit system]", "-  host-name br1;", "+  host-name br2;",
        "[edit services convergence-services service-class data]", "-  dscp-sip be;"]
    T.tree_delete(tree, T.resolve(["system"]))
    T.tree_delete(tree, T.resolve("services convergence-services service-class voice dscp-rtp".split()))
    # the empty entry stays; its empty parents do not go above it
    assert T.render_set(tree) == ["set services convergence-services service-class voice"]
    raises(ConfigError, T.tree_delete, tree, T.resolve(["system"]))


def test_list_bound_is_enforced():
    tree = {}
    for i in range(16):
        T.tree_set(tree, T.resolve(("services convergence-services service-class c%d" % i).split()))
    e = raises(ConfigError, T.tree_set, tree, T.resolve("services convergence-services service-class c99".split()))
    assert "max 16" in str(e)


def test_register_extends_the_schema_and_merges_blocks():
    S.register("services convergence-services", S.Container("test-feature", "A test block", children=(
        S.Leaf("knob", S.Integer(1, 3), default=2, help="A knob"),)))
    S.register("services convergence-services test-feature", S.Leaf("flag", S.Flag(), help="A flag"))
    t = T.resolve("services convergence-services test-feature flag".split())
    assert t.value is True
    cfg = T.Config({})
    assert cfg.get("services convergence-services test-feature knob") == 2
    raises(ValueError, S.register, "services convergence-services test-feature", S.Leaf("knob", S.Flag()))
