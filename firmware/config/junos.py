"""Junos editing commands of configuration mode, loaded on first use (they
stay out of the MicroPython heap until someone types one): deactivate /
activate, annotate, rename, copy, load merge|override|set FILE|terminal,
help, and `[ a b ]` value lists.

Deactivated statements and annotations live in the tree's META key (see
firmware/config/tree.py): the flash keeps them as `deactivate PATH` and
`annotate PATH "text"` lines after the set lines, `show` marks them
`inactive:` and `/* text */`, and the services never see an inactive
statement (engine: effective()).
"""
from firmware.commands import CommandError, Prompt
from firmware.config.schema import ConfigError
from firmware.config.tree import (tokenize, resolve, copy_tree, get_subtree, quote, META)
from firmware.config.engine import (MAX_MARKS, MAX_NOTE, MAX_LOAD_BYTES, MAX_LOAD_LINES,
                                    _prune_meta, _modifiers)
from firmware.lineedit import EOT


def existing(tree, words, base, verb):
    """(target, path text) of a statement that must be in tree."""
    if not words and base is None:
        raise ConfigError(verb, None, "missing statement")
    t = resolve(words, base)
    if not t.path or get_subtree(tree, t.path) is None:
        raise ConfigError(t.path or verb, None, "statement not found")
    return t, " ".join(quote(w) for w in t.path)


def activate(tree, words, base, activate):
    """deactivate: the statement stays in the configuration (shown as
    `inactive:`) but the services do not see it; activate undoes it."""
    t, p = existing(tree, words, base, "activate" if activate else "deactivate")
    meta = tree.setdefault(META, {})
    inactive = meta.setdefault("inactive", [])
    if activate:
        if p not in inactive:
            raise ConfigError(t.path, None, "statement is not inactive")
        inactive.remove(p)
    elif p not in inactive:
        if len(inactive) >= MAX_MARKS:
            raise ConfigError(t.path, None, "too many inactive statements (max %d)" % MAX_MARKS)
        inactive.append(p)
    _prune_meta(tree)


def annotate(tree, words, base):
    """annotate STATEMENT "text": a /* comment */ above it ("" removes it)."""
    if len(words) < 2 and base is None or not words:
        raise ConfigError("annotate", None, "expected a statement and a comment")
    note = words[-1]
    t, p = existing(tree, words[:-1], base, "annotate")
    if len(note) > MAX_NOTE or "*/" in note or "\n" in note:
        raise ConfigError(t.path, None, "a comment is one line of at most %d characters, "
                          "without */" % MAX_NOTE)
    notes = tree.setdefault(META, {}).setdefault("notes", {})
    if note:
        if p not in notes and len(notes) >= MAX_MARKS:
            raise ConfigError(t.path, None, "too many annotations (max %d)" % MAX_MARKS)
        notes[p] = note
    elif p in notes:
        del notes[p]
    _prune_meta(tree)


def _move_marks(tree, old, new, keep_old):
    """rename/copy: marks under path text old follow to new."""
    m = tree.get(META)
    if not m:
        return

    def moved(p):
        if p == old:
            return new
        if p.startswith(old + " "):
            return new + p[len(old):]
        return None
    ina = m.get("inactive", [])
    for p in list(ina):
        q = moved(p)
        if q is not None:
            if not keep_old:
                ina.remove(p)
            if q not in ina:
                ina.append(q)
    notes = m.get("notes", {})
    for p in list(notes):
        q = moved(p)
        if q is not None:
            notes[q] = notes[p]
            if not keep_old:
                del notes[p]


def compare_marks(old, new):
    a = old.get(META) or {}
    b = new.get(META) or {}
    out = []
    ai, bi = a.get("inactive", []), b.get("inactive", [])
    for p in bi:
        if p not in ai:
            out.append("!  deactivate %s;" % p)
    for p in ai:
        if p not in bi:
            out.append("!  activate %s;" % p)
    an, bn = a.get("notes", {}), b.get("notes", {})
    for p in sorted(bn):
        if an.get(p) != bn[p]:
            out.append("!  annotate %s %s;" % (p, quote(bn[p])))
    for p in sorted(an):
        if p not in bn:
            out.append("!  annotate %s \"\";" % p)
    return ["[edit]"] + out if out else []


def bracket_targets(words, base):
    """`member [ 2001 2002 ]`: one resolved target per value of a leaf-list,
    all checked before any is applied."""
    i = words.index("[")
    if "]" not in words[i:]:
        raise ConfigError(words[:i], None, "missing ] after the list of values")
    j = i + words[i:].index("]")
    if j != len(words) - 1:
        raise ConfigError(words[:i], words[j + 1], "syntax error: nothing may follow ]")
    values = words[i + 1:j]
    if not values:
        raise ConfigError(words[:i], None, "empty list [ ]")
    head = resolve(words[:i], base)
    if head.node.kind != "leaf-list" or head.text is not None:
        raise ConfigError(head.path, None, "[ ] lists are for statements that take several values")
    out = []
    for v in values:
        if v in ("[", "]"):
            raise ConfigError(head.path, v, "syntax error: nested brackets")
        out.append(resolve(words[:i] + [v], base))
    return out


def _cf_deactivate(app, args):
    eng = app.config
    activate(eng.candidate, _modifiers(args)[0], eng._base(), False)
    return ""


def _cf_activate(app, args):
    eng = app.config
    activate(eng.candidate, _modifiers(args)[0], eng._base(), True)
    return ""


def _cf_annotate(app, args):
    eng = app.config
    annotate(eng.candidate, _modifiers(args)[0], eng._base())
    return ""


def _entry_move(app, args, verb):
    """rename/copy PATH-TO-ENTRY to [LIST] NEWKEY (Junos repeats the list name)."""
    eng = app.config
    words = _modifiers(args)[0]
    if "to" not in words:
        raise CommandError("%s: expected %s STATEMENT to NEW-NAME" % (verb, verb))
    i = words.index("to")
    src = resolve(words[:i], eng._base())
    if src.node.kind != "list" or not src.keyed:
        raise ConfigError(src.path or verb, None, "%s works on a named entry (station NAME, "
                          "trunk NAME, ...)" % verb)
    rest = words[i + 1:]
    if len(rest) == 2 and rest[0] == src.node.name:
        rest = rest[1:]
    if len(rest) != 1:
        raise CommandError("%s: expected one new name after 'to' (or %s NAME)" % (verb, src.node.name))
    try:
        new = src.node.key.parse(rest[0])
    except ValueError as e:
        raise ConfigError(src.path[:-1], rest[0], str(e))
    holder = get_subtree(eng.candidate, src.path[:-1])
    old = src.path[-1]
    if not isinstance(holder, dict) or old not in holder:
        raise ConfigError(src.path, None, "statement not found")
    if new in holder:
        raise ConfigError(src.path[:-1] + [new], None, "already exists")
    if verb == "copy" and len(holder) >= src.node.max_entries:
        raise ConfigError(src.path[:-1], None, "too many %s entries (max %d)" % (
            src.node.name, src.node.max_entries))
    holder[new] = copy_tree(holder[old])
    if verb == "rename":
        del holder[old]
    pre = " ".join(quote(w) for w in src.path[:-1])
    _move_marks(eng.candidate, pre + " " + quote(old), pre + " " + quote(new), verb == "copy")
    return ""


def _cf_rename(app, args):
    return _entry_move(app, args, "rename")


def _cf_copy(app, args):
    return _entry_move(app, args, "copy")


def _curly_to_lines(text):
    """Junos curly-brace text (as `show` prints it: blocks, `name value;`,
    `name [ a b ];`, `inactive:`, /* annotations */, ## and # comments) as
    set/deactivate/annotate lines.  Raises ConfigError naming the line."""
    out = []
    marks = []           # deactivate/annotate lines: after every set line
    stack = []           # words of each open block
    opened = []          # len(out) when each block opened: an empty block is set bare
    note = None
    n = 0
    for raw in text.split("\n"):
        n += 1
        line = raw.strip()
        if "##" in line:
            line = line[:line.index("##")].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("/*"):
            if not line.endswith("*/"):
                raise ConfigError("", None, "line %d: an annotation is one line /* ... */" % n)
            note = line[2:-2].strip()
            continue
        inactive = False
        if line.startswith("inactive:"):
            inactive = True
            line = line[9:].strip()
        if line == "}":
            if not stack:
                raise ConfigError("", None, "line %d: } without a block" % n)
            if len(out) == opened[-1]:
                out.append((n, "set " + " ".join(quote(w) for blk in stack for w in blk)))
            stack.pop()
            opened.pop()
            continue
        try:
            words = tokenize(line)
        except ConfigError as e:
            raise ConfigError("", None, "line %d: %s" % (n, e))
        if line.endswith("{"):
            words = words[:-1] if words[-1] == "{" else words[:-1] + [words[-1][:-1]]
            path = [w for blk in stack for w in blk] + words
            stack.append(words)
            opened.append(len(out))
            if len(stack) > 16:
                raise ConfigError("", None, "line %d: blocks nested too deep" % n)
        elif line.endswith(";"):
            if words[-1] == ";":
                words = words[:-1]
            else:
                words[-1] = words[-1][:-1]
            path = [w for blk in stack for w in blk] + words
            out.append((n, "set " + " ".join(quote(w) if w not in ("[", "]") else w for w in path)))
        else:
            raise ConfigError("", None, "line %d: expected a statement ending in ; or {" % n)
        target = [w for w in path if w not in ("[", "]")]
        if "[" in path:
            target = path[:path.index("[")]
        if inactive:
            marks.append((n, "deactivate " + " ".join(quote(w) for w in target)))
        if note is not None:
            marks.append((n, "annotate %s %s" % (" ".join(quote(w) for w in target), quote(note))))
            note = None
    if stack:
        raise ConfigError("", None, "missing } at the end (%d block%s open)" % (
            len(stack), "" if len(stack) == 1 else "s"))
    return out + marks


def _load_text(eng, mode, text, source):
    """Apply loaded text to a copy of the candidate, then replace it: all or nothing."""
    if len(text) > MAX_LOAD_BYTES:
        raise CommandError("load: more than %d bytes" % MAX_LOAD_BYTES)
    if mode == "set":
        lines = []
        n = 0
        for line in text.split("\n"):
            n += 1
            lines.append((n, line))
    else:
        lines = _curly_to_lines(text)
    if len(lines) > MAX_LOAD_LINES:
        raise CommandError("load: more than %d lines" % MAX_LOAD_LINES)
    tree = {} if mode == "override" else copy_tree(eng.candidate)
    base = eng._base() if mode == "set" else None
    count = 0
    for n, line in lines:
        try:
            eng.statement(tree, line, base)
        except ConfigError as e:
            raise ConfigError("", None, "load %s %s line %d: %s" % (mode, source, n, e))
        if line.strip() and not line.strip().startswith("#"):
            count += 1
    eng.candidate = tree
    eng.loaded = "load"
    return "load complete (%d statement%s)" % (count, "" if count == 1 else "s")


def _cf_load(mode):
    def handler(app, args):
        eng = app.config
        words = _modifiers(args)[0]
        if len(words) != 1:
            raise CommandError("load %s: expected terminal or a file name" % mode)
        if words[0] == "terminal":
            lines = []

            def more(answer):
                if answer == EOT:
                    return _load_text(eng, mode, "\n".join(lines), "terminal")
                if len(lines) >= MAX_LOAD_LINES:
                    raise CommandError("load: more than %d lines" % MAX_LOAD_LINES)
                lines.append(answer)
                return Prompt("", more)
            return Prompt("[Type ^D at a new line to end input]\n", more)
        path = words[0]
        if not path.startswith("/") and getattr(app, "state_dir", None):
            path = app.state_dir + "/" + path
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_LOAD_BYTES + 1)
        except OSError as e:
            raise CommandError("load %s: cannot read %s: %s" % (mode, path, e))
        try:
            text = data.decode()
        except UnicodeError:
            raise CommandError("load %s: %s is not UTF-8 text" % (mode, path))
        return _load_text(eng, mode, text, path)
    return handler


def _help(reg, mode):
    def handler(app, args):
        words = _modifiers(args)[0]
        rows = []
        for key in sorted(reg.commands):
            if list(key[:len(words)]) != words and not (
                    words and len(key) >= len(words) and
                    all(key[i].startswith(words[i]) for i in range(len(words)))):
                continue
            rows.append((" ".join(key), reg.commands[key][1]))
        if not rows:
            raise CommandError("help: no %s command starts with '%s'" % (mode, " ".join(words)))
        from firmware.textfmt import table
        head = "Commands of %s mode%s:" % (mode, " starting with '%s'" % " ".join(words) if words else "")
        return head + "\n" + table(rows)
    return handler


def load_merge(app, args):
    return _cf_load("merge")(app, args)


def load_override(app, args):
    return _cf_load("override")(app, args)


def load_set(app, args):
    return _cf_load("set")(app, args)


def help_operational(app, args):
    return _help(app.commands, "operational")(app, args)


def help_configuration(app, args):
    return _help(app.config.commands, "configuration")(app, args)
