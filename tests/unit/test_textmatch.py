# portable: micropython
"""Issue 12 item 8: the console's `| match` / `| except` patterns run in
linear time with a step budget (firmware/textmatch.py), the same on both
interpreters."""
from firmware.textmatch import compile_pattern, PatternError, CHUNK_STEPS
from firmware.commands import apply_filters, filter_steps, CommandError, MAX_MATCH_STEPS
from tests.portable import raises

CASES = (
    # pattern, text, found
    ("port", "sip port 5060;", True),
    ("^set ", "set system host-name x", True),
    ("^set ", " set", False),
    ("5060;$", "sip port 5060;", True),
    ("5060$", "sip port 5060;", False),
    ("^$", "", True),
    ("a|b", "xxbxx", True),
    ("(ab)+c", "xababc", True),
    ("(ab)+c", "xabac", False),
    ("a{2,3}b", "aab", True),
    ("a{2,3}b", "ab", False),
    ("a{2}", "xaax", True),
    ("[a-c]+x", "zzbcx", True),
    ("[^ ]+ [0-9]{2}", "foo 12", True),
    ("\\d+\\.\\d", "v 1.5", True),
    ("\\d+\\.\\d", "v 1x5", False),
    ("\\bport\\b", "the port is", True),
    ("\\bport\\b", "sports", False),
    ("(?:foo|bar)baz", "xbarbaz", True),
    ("colou?r", "color", True),
    ("colou*?r", "colouur", True),
    ("a[-.]b", "a.b", True),
    ("\\w+@\\w+", "me@host", True),
    ("^(a|b)*$", "abba", True),
    ("^(a|b)*$", "abca", False),
    ("[]a]", "]", True),
    ("\\s\\S", " x", True),
    ("x*", "", True),
    ("(a+)+b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac", False),
    ("(a+)+b", "aaaab", True),
    ("a{", "a{", True),
    ("dscp-rtp ef", "  dscp-rtp ef;", True),
)


def test_the_pattern_language():
    for pattern, text, found in CASES:
        got, _ = compile_pattern(pattern).search(text, 10 ** 6)
        assert got == found, (pattern, text, got)


def test_bad_patterns_get_precise_errors():
    for pattern, why in (("(ab", "missing )"), ("ab)", "unbalanced )"), ("*a", "nothing to repeat"),
                         ("a**", "multiple repeat"), ("[ab", "missing ]"), ("(a)\\1", "back-references"),
                         ("(?=a)", "look-around"), ("a{5,2}", "runs backwards"),
                         ("a{99}", "repeat count above"), ("\\q", "unknown escape"),
                         ("[z-a]", "runs backwards"), ("x" * 300, "longer than")):
        e = raises(PatternError, compile_pattern, pattern)
        assert why in str(e), (pattern, str(e))
    e = raises(CommandError, apply_filters, "a\nb", [("match", ["(a"])])
    assert "invalid regular expression '(a': missing ) at position 2" in str(e), str(e)


def test_catastrophic_patterns_take_linear_work():
    p = compile_pattern("(a+)+b")
    for n in (10, 100, 1000):
        found, steps = p.search("a" * n + "c", 10 ** 7)
        assert found is False
        assert steps <= 20 * n + CHUNK_STEPS, (n, steps)    # linear, not 2**n
    p = compile_pattern("(x+x+)+y")
    assert p.search("x" * 3000, 10 ** 7)[0] is False
    # the budget stops a search that needs more
    found, steps = compile_pattern("(a|aa)*c").search("a" * 5000, 3 * CHUNK_STEPS)
    assert found is None and steps > 3 * CHUNK_STEPS


def test_pipes_pause_for_the_scheduler_and_have_a_total_budget():
    text = "\n".join(["a" * 200 + "c"] * 40 + ["aab"])
    pauses = 0
    result = None
    for r in filter_steps(text, [("match", ["(a+)+b"])]):
        if r is None:
            pauses += 1
        else:
            result = r
    assert result == ("aab", True)
    assert pauses >= 5, pauses        # the console yields between chunks
    assert apply_filters(text, [("except", ["(a+)+b"]), ("count", [])])[0] == "Count: 40 lines"
    assert MAX_MATCH_STEPS >= 100 * CHUNK_STEPS
    huge = "\n".join(["a" * 3000] * 20)
    budget = 10 * CHUNK_STEPS

    def run():
        for _ in filter_steps(huge, [("match", ["(a|aa)+c"])], budget):
            pass
    e = raises(CommandError, run)
    assert "| match (a|aa)+c: more than %d matching steps" % budget in str(e), str(e)
