"""The analog stations' dial plan: when is a number complete?

    plan = DialPlan(patterns=("1XXX", "9."), emergency=("911",),
                    inter_digit_ms=4000, first_digit_ms=15000)
    plan.classify("10")    -> MORE        (a prefix of some pattern)
    plan.classify("1002")  -> COMPLETE    (matches, nothing longer can: dial now)
    plan.classify("95")    -> AMBIGUOUS   (matches, but could go on: dial on timeout or #)
    plan.classify("7")     -> INVALID     (no pattern can match: reorder tone)
    plan.on_hash("95551")  -> digits to dial or None (invalid)
    plan.on_timeout("95")  -> digits to dial or None (partial/invalid)

Patterns (Asterisk style): a digit, * or # matches itself, X any digit,
N 2-9, Z 1-9, [a-b] / [abc] a range or set, and a trailing "." one or more
further digits.  Emergency numbers are always complete the moment they are
dialled.  With no pattern at all every number is AMBIGUOUS (dial on # or on
the inter-digit timeout).  At most MAX_DIGITS digits are collected; the
MAX_DIGITS-th digit completes the number (or makes it invalid).
"""
from firmware.compat import const

MAX_DIGITS = const(32)
MAX_PATTERNS = const(64)

INVALID = "invalid"
MORE = "more"
AMBIGUOUS = "ambiguous"
COMPLETE = "complete"

_NO, _PREFIX, _FULL, _VAR = 0, 1, 2, 3
_CLASS = {"X": "0123456789", "N": "23456789", "Z": "123456789"}


def _elements(pat):
    """Pattern text -> list of sets of characters, or "." for the tail."""
    out = []
    i = 0
    n = len(pat)
    while i < n:
        c = pat[i]
        if c == ".":
            if i != n - 1:
                raise ValueError("'.' must end the pattern")
            out.append(".")
        elif c.upper() in _CLASS:
            out.append(_CLASS[c.upper()])
        elif c == "[":
            j = pat.find("]", i)
            if j < 0:
                raise ValueError("unclosed [")
            body = pat[i + 1:j]
            chars = ""
            k = 0
            while k < len(body):
                if k + 2 < len(body) and body[k + 1] == "-":
                    lo, hi = body[k], body[k + 2]
                    if not (lo.isdigit() and hi.isdigit()) or lo > hi:
                        raise ValueError("bad range %s-%s" % (lo, hi))
                    for d in range(int(lo), int(hi) + 1):
                        chars += str(d)
                    k += 3
                else:
                    if body[k] not in "0123456789*#":
                        raise ValueError("bad character %r in []" % body[k])
                    chars += body[k]
                    k += 1
            if not chars:
                raise ValueError("empty []")
            out.append(chars)
            i = j
        elif c in "0123456789*#":
            out.append(c)
        else:
            raise ValueError("bad pattern character %r" % c)
        i += 1
    if not out or out == ["."]:
        raise ValueError("empty pattern")
    return out


def check_pattern(text):
    """None when text is a valid pattern, else the reason (for config)."""
    try:
        _elements(text)
    except ValueError as e:
        return str(e)
    return None


def _match(els, digits):
    j = 0
    for c in digits:
        if j >= len(els):
            return _NO
        e = els[j]
        if e == ".":
            return _VAR
        if c not in e:
            return _NO
        j += 1
    if j == len(els):
        return _FULL
    return _PREFIX


class DialPlan:
    def __init__(self, patterns=(), emergency=("911",), inter_digit_ms=4000,
                 first_digit_ms=15000, max_digits=MAX_DIGITS):
        if len(patterns) > MAX_PATTERNS:
            raise ValueError("more than %d dial patterns" % MAX_PATTERNS)
        self.patterns = [_elements(p) for p in patterns]
        self.texts = tuple(patterns)
        self.emergency = tuple(emergency)
        self.inter_digit_ms = inter_digit_ms
        self.first_digit_ms = first_digit_ms
        self.max_digits = max_digits

    def is_emergency(self, digits):
        return digits in self.emergency

    def classify(self, digits):
        if not digits:
            return MORE
        if digits in self.emergency:
            return COMPLETE
        if not self.patterns:
            return COMPLETE if len(digits) >= self.max_digits else AMBIGUOUS
        full = prefix = var = False
        for els in self.patterns:
            m = _match(els, digits)
            if m == _FULL:
                full = True
            elif m == _PREFIX:
                prefix = True
            elif m == _VAR:
                var = True
        for e in self.emergency:
            if len(e) > len(digits) and e.startswith(digits):
                prefix = True
        if len(digits) >= self.max_digits:
            return COMPLETE if (full or var) else INVALID
        if full and not prefix and not var:
            return COMPLETE
        if full or var:
            return AMBIGUOUS
        if prefix:
            return MORE
        return INVALID

    def on_hash(self, digits):
        """# pressed after digits: what to dial, or None (reorder)."""
        if not digits:
            return None
        c = self.classify(digits)
        if c in (COMPLETE, AMBIGUOUS):
            return digits
        return None

    def on_timeout(self, digits):
        """The inter-digit (or first-digit) timer ran out."""
        return self.on_hash(digits)

    def timeout_ms(self, digits):
        return self.inter_digit_ms if digits else self.first_digit_ms
