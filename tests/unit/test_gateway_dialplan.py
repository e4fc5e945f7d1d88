# portable: micropython
"""The analog dial plan: patterns, emergency numbers, # and timeouts."""
from firmware.voice.dialplan import (DialPlan, check_pattern, COMPLETE, MORE, AMBIGUOUS,
                                       INVALID, MAX_DIGITS)
from tests.portable import raises


def test_fixed_length_extension_completes_on_the_last_digit():
    p = DialPlan(("1XXX",))
    assert p.classify("") == MORE
    assert p.classify("1") == MORE
    assert p.classify("100") == MORE
    assert p.classify("1002") == COMPLETE
    assert p.classify("2") == INVALID
    assert p.classify("10021") == INVALID


def test_variable_length_trunk_prefix_waits_for_hash_or_timeout():
    p = DialPlan(("1XXX", "9."), inter_digit_ms=3000, first_digit_ms=9000)
    assert p.classify("9") == MORE
    assert p.classify("95") == AMBIGUOUS
    assert p.classify("95551234") == AMBIGUOUS
    assert p.on_hash("95551234") == "95551234"
    assert p.on_timeout("9555") == "9555"
    assert p.on_timeout("9") is None          # partial: reorder
    assert p.on_hash("10") is None
    assert p.timeout_ms("") == 9000 and p.timeout_ms("9") == 3000


def test_overlapping_patterns_are_ambiguous_until_the_timeout():
    p = DialPlan(("1XX", "1XXX"))
    assert p.classify("100") == AMBIGUOUS
    assert p.classify("1000") == COMPLETE


def test_emergency_numbers_complete_at_once_even_inside_other_patterns():
    p = DialPlan(("9.", "XXXX"), emergency=("911", "112"))
    assert p.classify("91") == AMBIGUOUS
    assert p.classify("911") == COMPLETE
    assert p.classify("11") == MORE           # prefix of 112 and of XXXX
    assert p.classify("112") == COMPLETE
    assert p.is_emergency("911") and not p.is_emergency("912")


def test_classes_sets_and_ranges():
    p = DialPlan(("N11", "[2-4]X", "Z0[05*]"))
    assert p.classify("411") == COMPLETE
    assert p.classify("111") == INVALID
    assert p.classify("35") == COMPLETE
    assert p.classify("55") == INVALID
    assert p.classify("10*") == COMPLETE
    assert p.classify("001") == INVALID


def test_without_patterns_every_number_waits_and_the_length_is_bounded():
    p = DialPlan(())
    assert p.classify("5") == AMBIGUOUS
    assert p.on_hash("5") == "5"
    assert p.classify("1" * MAX_DIGITS) == COMPLETE
    q = DialPlan(("1.",))
    assert q.classify("1" * MAX_DIGITS) == COMPLETE
    r = DialPlan(("1XXX",))
    assert r.classify("2" * MAX_DIGITS) == INVALID


def test_bad_patterns_are_reported():
    assert check_pattern("1XXX") is None
    assert check_pattern("9.") is None
    assert "must end" in check_pattern("9.1")
    assert "unclosed" in check_pattern("[12")
    assert "bad pattern character" in check_pattern("1Q")
    assert check_pattern(".") == "empty pattern"
    raises(ValueError, DialPlan, ("[5-1]",))
