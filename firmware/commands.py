"""The command registry shared by the console and every feature module.

A command is a sequence of keywords (`show version`) bound to a handler
`handler(app, args) -> str` and a help text.  Feature modules register their
own show/request commands here:

    app.commands.register("show sip registrations", handler, "Show registrations")
    app.commands.register("show configuration", handler, "Show the committed configuration",
                          args=completer)   # completer(app, args, partial) -> [(word, help)]

The console resolves unambiguous abbreviations (`sh ver`) against the
registry, completes with `?`/Tab through `complete()`, and runs output pipes:

    | match REGEX   | except REGEX   | count   | last N   | no-more
                    (REGEX: firmware/textmatch.py, linear time, no backtracking)
    | display set   | compare          (passed to the handler as a last
                                        argument "|display set" / "|compare")

A handler may return a Prompt instead of text to ask the user something
(a password, a yes/no) and continue in its callback.
"""
from firmware.config.tree import tokenize, PIPE
from firmware.config.schema import ConfigError
from firmware.lineedit import format_help, common_prefix  # noqa: F401 (re-exported)

MAX_OUTPUT_LINES = 5000   # a pipe never holds more lines than this
MAX_MATCH_STEPS = 4000000  # pattern-matching work of one command (firmware/textmatch.py)


class CommandError(Exception):
    pass


class Prompt:
    """Returned by a handler to ask for one more line: the console shows
    `question`, reads a line (without echo if secret) and calls
    then(answer) -> str or another Prompt.  Without a terminal a prompt
    with a default takes it without reading."""

    def __init__(self, question, then, secret=False, default=None):
        self.question = question
        self.then = then
        self.secret = secret
        self.default = default


PIPES = (
    ("compare", "Compare the candidate with the committed configuration"),
    ("count", "Count the output lines"),
    ("display", "Show additional kinds of information (display set)"),
    ("except", "Show only lines that do not match a regular expression"),
    ("last", "Show only the last N lines"),
    ("match", "Show only lines that match a regular expression"),
    ("no-more", "Do not page the output"),
)
MODIFIERS = ("display", "compare")


class Registry:
    def __init__(self):
        self.commands = {}   # tuple(words) -> (handler, help, args completer or None)

    def register(self, words, handler, help_text, args=None):
        key = tuple(words.split()) if isinstance(words, str) else tuple(words)
        self.commands[key] = (handler, help_text, args)

    def completions(self, prefix_words):
        """Keywords that can follow prefix_words, with help, sorted."""
        n = len(prefix_words)
        out = {}
        prefix = tuple(prefix_words)
        for key, ent in self.commands.items():
            if len(key) > n and key[:n] == prefix:
                word = key[n]
                if len(key) == n + 1:
                    out[word] = ent[1]
                elif word not in out:
                    out[word] = ""
        return sorted(out.items())

    def _walk(self, words):
        """Resolve keywords greedily; returns (key list, words used, best)."""
        key = []
        i = 0
        best = None
        while i < len(words):
            options = [w for w, _ in self.completions(key)]
            word = words[i]
            if word in options:
                matches = [word]
            else:
                matches = [o for o in options if o.startswith(word)]
            if not matches:
                break
            if len(matches) > 1:
                raise CommandError("'%s' is ambiguous: %s" % (word, ", ".join(matches)))
            key.append(matches[0])
            i += 1
            if tuple(key) in self.commands:
                best = (tuple(key), i)
        return key, i, best

    def resolve(self, words):
        """Expand abbreviations; returns (key, remaining args) or raises
        CommandError naming the word that is wrong: an unknown word, an
        extra word after a command that takes none, or a missing one."""
        key, i, best = self._walk(words)
        possible = ", ".join(w for w, _ in self.completions(key))
        if best is None or (i < len(words) and best[1] < i):
            if not key:
                raise CommandError("unknown command: %s" % (words[0] if words else ""))
            if i < len(words):
                raise CommandError("syntax error: unknown word '%s' after '%s' (possible: %s)" % (
                    words[i], " ".join(key), possible))
            raise CommandError("incomplete command: %s ... (possible: %s)" % (" ".join(key), possible))
        key, rest = best[0], words[best[1]:]
        if rest and self.commands[key][2] is None:
            raise CommandError("syntax error: unexpected word '%s' after '%s'" % (
                rest[0], " ".join(key)))
        return key, rest

    def execute(self, ctx, line):
        """Run a line with its pipes; returns the output text (or a Prompt)."""
        out, _ = self.run(ctx, line)
        return out

    def run(self, ctx, line):
        """Returns (output text or Prompt, paging allowed)."""
        out, filters = self.start(ctx, line)
        if isinstance(out, Prompt):
            return out, True
        return apply_filters(out or "", filters)

    def start(self, ctx, line):
        """Run a line's command; returns (output text or Prompt, its pipe
        filters still to apply: apply_filters or, on the scheduler, filter_steps)."""
        try:
            tokens = tokenize(line)
        except ConfigError as e:
            raise CommandError(str(e))
        if not tokens:
            return "", []
        parts = _split_pipes(tokens)
        words = parts[0]
        if not words:
            raise CommandError("missing command before |")
        key, args = self.resolve(words)
        handler = self.commands[key][0]
        filters = []
        for p in parts[1:]:
            name, rest = _resolve_pipe(p)
            if name in MODIFIERS:
                if name == "display":
                    if not rest or not "set".startswith(rest[0]):
                        raise CommandError("| display: expected 'set'")
                    args = args + ["|display set"]
                else:
                    args = args + ["|compare"]
            else:
                filters.append((name, rest))
        try:
            out = handler(ctx, args)
        except ConfigError as e:
            raise CommandError(str(e))
        return out, filters


def _split_pipes(tokens):
    parts = [[]]
    for t in tokens:
        if t == PIPE:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def _resolve_pipe(words):
    if not words:
        raise CommandError("missing command after |")
    names = [n for n, _ in PIPES]
    w = words[0]
    m = [n for n in names if n == w] or [n for n in names if n.startswith(w)]
    if len(m) != 1:
        if m:
            raise CommandError("'| %s' is ambiguous: %s" % (w, ", ".join(m)))
        raise CommandError("unknown pipe command '| %s' (possible: %s)" % (w, ", ".join(names)))
    return m[0], words[1:]


def apply_filters(text, filters):
    """Apply pipe filters; returns (text, paging allowed)."""
    for r in filter_steps(text, filters):
        if r is not None:
            return r
    return text, True


def filter_steps(text, filters, max_steps=MAX_MATCH_STEPS):
    """apply_filters as a generator for the console task: None after every
    CHUNK_STEPS steps of pattern matching (the console yields to the
    scheduler there, so the SIP tasks keep answering), then the result
    (text, paging allowed).  More than MAX_MATCH_STEPS steps in all for one
    command: CommandError."""
    more = True
    if not filters:
        yield text, more
        return
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) > MAX_OUTPUT_LINES:
        lines = lines[-MAX_OUTPUT_LINES:]
    chunks = 0
    for name, rest in filters:
        if name in ("match", "except"):
            from firmware.textmatch import CHUNK_STEPS   # loaded for the first | match
            if len(rest) != 1:
                raise CommandError("| %s needs one regular expression (quote it if it has blanks)" % name)
            rx = _compile(rest[0])
            keep = name == "match"
            kept = []
            for l in lines:
                for found in rx.run(l):
                    if found is None:
                        chunks += 1
                        if chunks * CHUNK_STEPS > max_steps:
                            raise CommandError(
                                "| %s %s: more than %d matching steps; use a simpler "
                                "expression" % (name, rest[0], max_steps))
                        yield None
                    elif found == keep:
                        kept.append(l)
            lines = kept
        elif name == "count":
            lines = ["Count: %d line%s" % (len(lines), "" if len(lines) == 1 else "s")]
        elif name == "last":
            if len(rest) != 1 or not rest[0].isdigit():
                raise CommandError("| last needs a number of lines")
            n = int(rest[0])
            lines = lines[-n:] if n else []
        elif name == "no-more":
            more = False
    yield "\n".join(lines), more


def _compile(pattern):
    from firmware.textmatch import compile_pattern, PatternError
    try:
        return compile_pattern(pattern)
    except PatternError as e:
        raise CommandError("invalid regular expression %r: %s" % (pattern, e))


# --- completion -------------------------------------------------------------------

ENTER = ("<[Enter]>", "Execute this command")
PIPE_HELP = ("|", "Pipe through a command")


def split_for_completion(text):
    """(complete words, partial word) of the text before the cursor."""
    try:
        tokens = tokenize(text)
    except ConfigError:
        tokens = tokenize(text + '"')
    if text and text[-1] not in " \t" and tokens:
        return tokens[:-1], tokens[-1]
    return tokens, ""


def complete(reg, ctx, text):
    """Possible next words for `?` and Tab: a list of (word, help); a word in
    <angle brackets> is a placeholder, not something Tab can insert."""
    words, partial = split_for_completion(text)
    if partial == PIPE:
        words, partial = words + [PIPE], ""
    if PIPE in words:
        last = len(words) - 1 - words[::-1].index(PIPE)
        after = words[last + 1:]
        if not after:
            return [p for p in PIPES if p[0].startswith(partial)]
        try:
            name, _ = _resolve_pipe(after)
        except CommandError:
            return []
        if name == "display" and len(after) == 1:
            return [p for p in (("set", "Show configuration as set commands"),) if p[0].startswith(partial)]
        if name in ("match", "except") and len(after) == 1:
            return [("<regex>", "Regular expression")]
        if name == "last" and len(after) == 1:
            return [("<count>", "Number of lines")]
        return [ENTER, PIPE_HELP] if not partial else []
    try:
        key, used, best = reg._walk(words)
    except CommandError:
        return []
    if used < len(words):
        # past the keywords: the command's own argument completer
        if best is None or reg.commands[best[0]][2] is None:
            return []
        try:
            return reg.commands[best[0]][2](ctx, words[best[1]:], partial)
        except (ConfigError, CommandError):
            return []
    out = [(w, h) for w, h in reg.completions(key) if w.startswith(partial)]
    if tuple(key) in reg.commands:
        args_fn = reg.commands[tuple(key)][2]
        if args_fn is not None:
            try:
                out = out + args_fn(ctx, [], partial)
            except (ConfigError, CommandError):
                pass
        if not partial:
            out = out + [ENTER, PIPE_HELP]
    return out
