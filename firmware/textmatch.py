"""The regular expressions of the console's `| match` and `| except` pipes,
without catastrophic backtracking.

    p = compile_pattern('(a+)+b')        # PatternError (a ValueError) when malformed
    p.search(line, budget) -> (found, steps)   found None: over budget
    for r in p.run(line): ...               None every CHUNK_STEPS steps, then True/False

Python's and MicroPython's `re` are backtracking matchers: `(a+)+b` against a
line of thirty `a`s takes 2**30 steps, and on the cooperative scheduler the
SIP tasks stop answering meanwhile.  This is a Thompson NFA run in lock step
over the line (a Pike VM without captures): the work is at most the program
size times the line length, whatever the pattern, and every step is counted
against a budget that the caller gives, so a console command also gets a
bound on its total work (firmware/commands.py: MAX_MATCH_STEPS, and it
yields to the scheduler every MATCH_SLICE_STEPS steps).  The same code runs
on both interpreters, so a pattern means the same everywhere.

The language (a subset of POSIX extended / Python syntax; what Junos users
type after `match`): literal characters; `.`; classes `[abc]`, `[a-z0-9]`,
`[^...]`; escapes `\\d \\w \\s \\D \\W \\S`, `\\b` (word boundary) and `\\`
before any other character for that character; anchors `^` and `$`; groups
`( )` and `(?: )`; alternation `|`; quantifiers `* + ?` and `{m}`, `{m,}`,
`{m,n}` (m, n <= MAX_REPEAT), a trailing `?` (lazy) accepted and
meaningless for a yes/no search.  Back-references and look-around are
refused with a precise error.  Patterns have at most MAX_PATTERN_CHARS
characters, at most MAX_GROUP_DEPTH nested groups, and compile to at most
MAX_PROGRAM instructions.
"""
from firmware.compat import const

MAX_PATTERN_CHARS = const(256)
MAX_PROGRAM = const(1024)
MAX_REPEAT = const(32)
MAX_GROUP_DEPTH = const(16)
CHUNK_STEPS = const(2000)   # run() pauses (yields None) after about this many steps

# instructions
_CHAR = const(0)     # arg: the character
_ANY = const(1)
_CLASS = const(2)    # arg: (negated, ((lo, hi), ...))
_SPLIT = const(3)    # arg, arg2: both branches
_JMP = const(4)      # arg: target
_BOL = const(5)
_EOL = const(6)
_WORDB = const(7)
_NWORDB = const(8)
_MATCH = const(9)

_META = ".[]()|*+?{}^$\\"
_DIGIT = ((48, 57),)
_WORD = ((48, 57), (65, 90), (95, 95), (97, 122))
_SPACE = ((9, 13), (32, 32))


class PatternError(ValueError):
    pass


def _is_word(ch):
    o = ord(ch)
    return 48 <= o <= 57 or 65 <= o <= 90 or o == 95 or 97 <= o <= 122


class _Parser:
    """Pattern text -> tree of tuples:
    ("lit", ch) ("any",) ("cls", negated, ranges) ("bol",) ("eol",) ("wordb", bool)
    ("cat", [nodes]) ("alt", [nodes]) ("rep", node, min, max or -1)."""

    def __init__(self, text):
        self.s = text
        self.i = 0
        self.depth = 0

    def fail(self, why):
        raise PatternError("%s at position %d" % (why, self.i))

    def peek(self):
        return self.s[self.i] if self.i < len(self.s) else None

    def parse(self):
        node = self.alt()
        if self.i < len(self.s):
            self.fail("unbalanced )")
        return node

    def alt(self):
        branches = [self.cat()]
        while self.peek() == "|":
            self.i += 1
            branches.append(self.cat())
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def cat(self):
        items = []
        while True:
            c = self.peek()
            if c is None or c == "|" or c == ")":
                break
            items.append(self.quantified())
        return items[0] if len(items) == 1 else ("cat", items)

    def quantified(self):
        atom = self.atom()
        c = self.peek()
        if c == "*":
            lo, hi = 0, -1
        elif c == "+":
            lo, hi = 1, -1
        elif c == "?":
            lo, hi = 0, 1
        elif c == "{" and self._is_count():
            lo, hi = self.count()
            self.i -= 1
        else:
            return atom
        self.i += 1
        if self.peek() == "?":
            self.i += 1          # lazy: the same yes/no answer
        c = self.peek()
        if c is not None and (c in "*+?" or (c == "{" and self._is_count())):
            self.fail("multiple repeat")
        return self._rep(atom, lo, hi)

    def _rep(self, atom, lo, hi):
        if atom[0] in ("bol", "eol", "wordb"):
            self.fail("nothing to repeat")
        return ("rep", atom, lo, hi)

    def _is_count(self):
        j = self.i + 1
        s = self.s
        while j < len(s) and (s[j].isdigit() or s[j] == ","):
            j += 1
        return j < len(s) and s[j] == "}" and j > self.i + 1 and s[self.i + 1].isdigit()

    def count(self):
        end = self.s.index("}", self.i)
        body = self.s[self.i + 1:end]
        self.i = end + 1
        lo, sep, hi = body.partition(",")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            self.fail("bad repeat count {%s}" % body)
        lo = int(lo)
        hi = int(hi) if hi else (-1 if sep else lo)
        if lo > MAX_REPEAT or hi > MAX_REPEAT:
            self.fail("repeat count above %d" % MAX_REPEAT)
        if hi != -1 and hi < lo:
            self.fail("repeat count {%s} runs backwards" % body)
        return lo, hi

    def atom(self):
        c = self.peek()
        self.i += 1
        if c == "(":
            self.depth += 1
            if self.depth > MAX_GROUP_DEPTH:
                self.fail("more than %d nested groups" % MAX_GROUP_DEPTH)
            if self.peek() == "?":
                if self.s[self.i:self.i + 2] != "?:":
                    self.fail("look-around and group flags are not supported")
                self.i += 2
            node = self.alt()
            if self.peek() != ")":
                self.fail("missing )")
            self.i += 1
            self.depth -= 1
            return node
        if c == ".":
            return ("any",)
        if c == "^":
            return ("bol",)
        if c == "$":
            return ("eol",)
        if c == "[":
            return self.klass()
        if c == "\\":
            return self.escape(False)
        if c in "*+?":
            self.i -= 1
            self.fail("nothing to repeat")
        return ("lit", c)      # also { } ] when they start no count or class

    def escape(self, in_class):
        c = self.peek()
        if c is None:
            self.fail("trailing backslash")
        self.i += 1
        if c == "d":
            return ("cls", False, _DIGIT)
        if c == "D":
            return ("cls", True, _DIGIT)
        if c == "w":
            return ("cls", False, _WORD)
        if c == "W":
            return ("cls", True, _WORD)
        if c == "s":
            return ("cls", False, _SPACE)
        if c == "S":
            return ("cls", True, _SPACE)
        if c == "t":
            return ("lit", "\t")
        if c in "bB" and not in_class:
            return ("wordb", c == "b")
        if c.isdigit():
            self.fail("back-references are not supported")
        if c.isalpha():
            self.fail("unknown escape \\%s" % c)
        return ("lit", c)

    def klass(self):
        neg = self.peek() == "^"
        if neg:
            self.i += 1
        ranges = []
        first = True
        while True:
            c = self.peek()
            if c is None:
                self.fail("missing ]")
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            self.i += 1
            if c == "\\":
                e = self.escape(True)
                if e[0] == "cls":
                    if e[1]:
                        self.fail("negated class escape inside [ ]")
                    ranges.extend(e[2])
                    continue
                c = e[1]
            lo = ord(c)
            if self.peek() == "-" and self.i + 1 < len(self.s) and self.s[self.i + 1] != "]":
                self.i += 1
                h = self.peek()
                self.i += 1
                if h == "\\":
                    e = self.escape(True)
                    if e[0] != "lit":
                        self.fail("bad range end")
                    h = e[1]
                if ord(h) < lo:
                    self.fail("range %s-%s runs backwards" % (c, h))
                ranges.append((lo, ord(h)))
            else:
                ranges.append((lo, lo))
        return ("cls", neg, tuple(ranges))


class Pattern:
    __slots__ = ("text", "ops", "arg", "arg2", "literal")

    def __init__(self, text):
        self.text = text
        self.literal = None
        self.ops = []
        self.arg = []
        self.arg2 = []
        plain = True
        for ch in text:
            if ch in _META:
                plain = False
                break
        if plain:
            self.literal = text       # the common case: a substring test at C speed
            return
        tree = _Parser(text).parse()
        self._emit(tree)
        self._op(_MATCH)

    # -- compiling
    def _op(self, op, a=None, b=None):
        if len(self.ops) >= MAX_PROGRAM:
            raise PatternError("pattern too large (more than %d instructions)" % MAX_PROGRAM)
        self.ops.append(op)
        self.arg.append(a)
        self.arg2.append(b)
        return len(self.ops) - 1

    def _emit(self, n):
        kind = n[0]
        if kind == "lit":
            self._op(_CHAR, n[1])
        elif kind == "any":
            self._op(_ANY)
        elif kind == "cls":
            self._op(_CLASS, n[1], n[2])
        elif kind == "bol":
            self._op(_BOL)
        elif kind == "eol":
            self._op(_EOL)
        elif kind == "wordb":
            self._op(_WORDB if n[1] else _NWORDB)
        elif kind == "cat":
            for c in n[1]:
                self._emit(c)
        elif kind == "alt":
            jumps = []
            branches = n[1]
            for k in range(len(branches) - 1):
                sp = self._op(_SPLIT)
                self.arg[sp] = sp + 1
                self._emit(branches[k])
                jumps.append(self._op(_JMP))
                self.arg2[sp] = len(self.ops)
            self._emit(branches[-1])
            for j in jumps:
                self.arg[j] = len(self.ops)
        elif kind == "rep":
            node, lo, hi = n[1], n[2], n[3]
            for _ in range(lo):
                self._emit(node)
            if hi == -1:
                sp = self._op(_SPLIT)
                self.arg[sp] = sp + 1
                self._emit(node)
                j = self._op(_JMP)
                self.arg[j] = sp
                self.arg2[sp] = len(self.ops)
            else:
                outs = []
                for _ in range(hi - lo):
                    sp = self._op(_SPLIT)
                    self.arg[sp] = sp + 1
                    outs.append(sp)
                    self._emit(node)
                for sp in outs:
                    self.arg2[sp] = len(self.ops)

    # -- matching
    def search(self, s, budget):
        """(True if the pattern occurs in s, steps used, about); (None, steps)
        when more than budget steps were needed."""
        if self.literal is not None:
            return self.literal in s, 1 + len(s) // 64
        steps = 0
        for r in self.run(s):
            if r is None:
                steps += CHUNK_STEPS
                if steps > budget:
                    return None, steps
            else:
                return r, steps
        return False, steps

    def run(self, s):
        """The search as a generator: None after every CHUNK_STEPS steps of
        work (a caller on the scheduler yields there), then True or False."""
        if self.literal is not None:
            yield self.literal in s
            return
        ops = self.ops
        arg = self.arg
        arg2 = self.arg2
        n = len(s)
        mark = [0] * len(ops)
        gen = 1
        steps = 0
        pause = CHUNK_STEPS
        stack = []
        for i in range(n + 1):
            # the threads that consumed s[i - 1], and a new one: the search is
            # unanchored; the closure follows jumps, splits and assertions
            stack.append(0)
            clist = []
            while stack:
                pc = stack.pop()
                if mark[pc] == gen:
                    continue
                mark[pc] = gen
                steps += 1
                op = ops[pc]
                if op == _JMP:
                    stack.append(arg[pc])
                elif op == _SPLIT:
                    stack.append(arg2[pc])
                    stack.append(arg[pc])
                elif op == _BOL:
                    if i == 0:
                        stack.append(pc + 1)
                elif op == _EOL:
                    if i == n:
                        stack.append(pc + 1)
                elif op == _WORDB or op == _NWORDB:
                    at = (i > 0 and _is_word(s[i - 1])) != (i < n and _is_word(s[i]))
                    if at == (op == _WORDB):
                        stack.append(pc + 1)
                elif op == _MATCH:
                    yield True
                    return
                else:
                    clist.append(pc)
            if i == n:
                break
            if steps >= pause:
                pause = steps + CHUNK_STEPS
                yield None
            ch = s[i]
            gen += 1
            for pc in clist:
                steps += 1
                op = ops[pc]
                if op == _CHAR:
                    ok = arg[pc] == ch
                elif op == _ANY:
                    ok = True
                else:       # _CLASS
                    o = ord(ch)
                    ok = False
                    for lo, hi in arg2[pc]:
                        if lo <= o <= hi:
                            ok = True
                            break
                    if arg[pc]:
                        ok = not ok
                if ok:
                    stack.append(pc + 1)
        yield False


def compile_pattern(text):
    if len(text) > MAX_PATTERN_CHARS:
        raise PatternError("longer than %d characters" % MAX_PATTERN_CHARS)
    return Pattern(text)
