"""Configuration trees: statement parsing against the schema, set/delete,
the curly-brace and `display set` renderings, diffs, and the read-only view
that feature modules read values from.

A tree is plain data: a Container or a list entry is a dict (statement name
-> child), a List is a dict (key -> entry dict), a Leaf holds its typed value
(True for a flag), a LeafList a Python list.  Output order is the schema's
declaration order, list entries sorted by key, so a tree prints the same on
both interpreters (MicroPython dicts keep no insertion order).
"""
from firmware.config.schema import ROOT, ConfigError, PlainPassword

PIPE = "\x01|"     # an unquoted `|` token
META = "\x01meta"  # root key of a tree: {"inactive": [path text], "notes": {path text: text}}
MAX_TOKENS = 64    # words in one statement
_SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@+*,="


def tokenize(line):
    """Split on blanks; "double quotes" group words (with \\" and \\\\ escapes);
    an unquoted `|` becomes the PIPE token.  Raises ConfigError on a missing quote."""
    out = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch in " \t":
            i += 1
            continue
        if ch == "|":
            out.append(PIPE)
            i += 1
            continue
        buf = []
        quoted = False
        while i < n and line[i] not in " \t|" or (quoted and i < n):
            ch = line[i]
            if ch == '"':
                quoted = not quoted
            elif ch == "\\" and quoted and i + 1 < n:
                i += 1
                buf.append(line[i])
            else:
                buf.append(ch)
            i += 1
        if quoted:
            raise ConfigError("", None, "missing closing quote")
        out.append("".join(buf))
        if len(out) > MAX_TOKENS:
            raise ConfigError("", None, "too many words (max %d)" % MAX_TOKENS)
    return out


def quote(text):
    if text and all(c in _SAFE for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def copy_tree(t):
    if isinstance(t, dict):
        return dict((k, copy_tree(v)) for k, v in t.items())
    if isinstance(t, list):
        return [copy_tree(v) for v in t]
    return t


def _keys(d):
    return sorted(d.keys())


# --- resolving statement words against the schema ------------------------------

class Target:
    """Where a statement points: canonical path words, the schema node reached,
    whether a List's key was given, and the leaf value (text and parsed)."""

    def __init__(self):
        self.path = []        # canonical words, list keys included
        self.node = ROOT
        self.keyed = False    # node is a List and its key is in path
        self.text = None      # value as typed (leaf / leaf-list)
        self.value = None     # parsed value


def match_child(node, word, path):
    """The child statement of `node` named or unambiguously abbreviated by word."""
    c = node.child(word)
    if c is not None:
        return c
    m = [ch for ch in node.children if ch.name.startswith(word)]
    if len(m) == 1:
        return m[0]
    where = " ".join(path)
    if m:
        raise ConfigError(where, word, "ambiguous: %s" % ", ".join(ch.name for ch in m))
    names = ", ".join(ch.name for ch in node.children)
    raise ConfigError(where, word, "syntax error, expecting %s" % (names or "nothing here"))


def base_target(edit_path):
    """Target for an edit path (canonical words, e.g. from `edit`)."""
    return resolve(edit_path, None, partial=True)


def resolve(words, base=None, partial=True):
    """Walk words from base (a Target, or the root).  With partial=False the
    statement must end at a leaf with its value.  Raises ConfigError."""
    t = Target()
    if base is not None:
        t.path = list(base.path)
        t.node = base.node
        t.keyed = base.keyed
    i = 0
    n = len(words)
    while i < n:
        w = words[i]
        node = t.node
        if node.kind == "list" and not t.keyed:
            try:
                key = node.key.parse(w)
            except ValueError as e:
                raise ConfigError(t.path, w, str(e))
            t.path.append(key)
            t.keyed = True
            i += 1
            continue
        if node.kind in ("leaf", "leaf-list"):
            raise ConfigError(t.path, w, "syntax error: %s takes no further words" % node.name)
        child = match_child(node, w, t.path)
        t.path.append(child.name)
        t.node = child
        t.keyed = False
        i += 1
        if child.kind in ("leaf", "leaf-list"):
            if child.type.flag:
                t.value = True
                t.text = ""
            elif i < n:
                t.text = words[i]
                try:
                    t.value = child.type.parse(words[i])
                except ValueError as e:
                    raise ConfigError(t.path, _shown(child, words[i]), str(e))
                i += 1
            if i < n:
                raise ConfigError(t.path, words[i], "syntax error: %s takes no further words" % child.name)
    if not partial:
        if t.node.kind in ("leaf", "leaf-list") and t.text is None:
            raise ConfigError(t.path, None, "missing value: %s" % t.node.type.describe())
    return t


def _shown(node, text):
    return "(secret)" if node.type.secret else quote(text)


# --- mutating a tree ----------------------------------------------------------------


def walk_nodes(path):
    """Yield (schema node, keyed) along canonical path words; KeyError if invalid."""
    node = ROOT
    keyed = False
    out = []
    for w in path:
        if node.kind == "list" and not keyed:
            keyed = True
        else:
            node = node.child(w)
            if node is None:
                raise KeyError(w)
            keyed = False
        out.append((node, keyed))
    return out


def tree_set(tree, t):
    """Apply a resolved `set` to tree (in place).  Raises ConfigError on a bound."""
    steps = walk_nodes(t.path)
    cur = tree
    for idx, (node, keyed) in enumerate(steps):
        w = t.path[idx]
        if node.kind in ("leaf", "leaf-list"):
            if t.text is None:
                raise ConfigError(t.path, None, "missing value: %s" % node.type.describe())
            if node.kind == "leaf":
                cur[w] = t.value
            else:
                items = cur.setdefault(w, [])
                if t.value not in items:
                    if len(items) >= node.max_items:
                        raise ConfigError(t.path, t.text, "too many values (max %d)" % node.max_items)
                    items.append(t.value)
            return
        if node.kind == "list" and keyed:
            entries = cur  # cur is the list's dict
            if w not in entries:
                if len(entries) >= node.max_entries:
                    raise ConfigError(t.path, None, "too many %s entries (max %d)" % (
                        node.name, node.max_entries))
                entries[w] = {}
            cur = entries[w]
            continue
        if w not in cur:
            cur[w] = {}
        cur = cur[w]


def tree_delete(tree, t):
    """Remove the statement or block at t (a leaf-list value if one is given).
    Empty containers above it are pruned.  Raises ConfigError if absent."""
    steps = walk_nodes(t.path)
    chain = [tree]
    cur = tree
    for idx, (node, keyed) in enumerate(steps[:-1]):
        w = t.path[idx]
        if not isinstance(cur, dict) or w not in cur:
            raise ConfigError(t.path, None, "statement not found")
        cur = cur[w]
        chain.append(cur)
    node, keyed = steps[-1] if steps else (ROOT, False)
    if not steps:
        for k in list(tree.keys()):
            del tree[k]
        return
    w = t.path[-1]
    if not isinstance(cur, dict) or w not in cur:
        raise ConfigError(t.path, None, "statement not found")
    if node.kind == "leaf-list" and t.text is not None and t.text != "":
        items = cur[w]
        if t.value not in items:
            raise ConfigError(t.path, t.text, "value not found")
        items.remove(t.value)
        if items:
            return
    del cur[w]
    # prune now-empty plain containers and List dicts (not list entries)
    for idx in range(len(steps) - 2, -1, -1):
        node, keyed = steps[idx]
        holder = chain[idx]
        w = t.path[idx]
        if node.kind == "list" and keyed:
            break   # an entry stays even when empty
        if isinstance(holder.get(w), dict) and not holder[w]:
            del holder[w]
        else:
            break


def get_subtree(tree, path):
    cur = tree
    for w in path:
        if not isinstance(cur, dict) or w not in cur:
            return None
        cur = cur[w]
    return cur


# --- rendering -----------------------------------------------------------------------

def _leaf_text(node, value):
    if node.type.flag:
        return None
    return quote(node.type.format(value))


def marks_of(tree):
    """The deactivated statements and annotations of a tree (its META key)."""
    m = tree.get(META) if isinstance(tree, dict) else None
    return m if m else None


def effective(tree):
    """A copy of tree as the services see it: no META, no inactive statement."""
    m = tree.get(META)
    out = copy_tree(tree)
    if META in out:
        del out[META]
    if m:
        for p in m.get("inactive", ()):
            words = tokenize(p)
            try:
                tree_delete(out, resolve(words))
            except ConfigError:
                pass
    return out


def _marked(out, pad, marks, path, line):
    """line with its annotation above it and `inactive: ` before it."""
    if marks is None:
        out.append(pad + line)
        return
    p = " ".join(quote(w) for w in path)
    note = marks.get("notes", {}).get(p)
    if note:
        out.append("%s/* %s */" % (pad, note))
    out.append(pad + ("inactive: " if p in marks.get("inactive", ()) else "") + line)


def render_curly(tree, node=None, indent=0, out=None, marks=None, path=()):
    """Junos curly-brace text of a subtree (node = the schema node it belongs
    to; marks: the tree's META, with path the canonical words leading here)."""
    node = node or ROOT
    out = [] if out is None else out
    pad = "    " * indent
    path = list(path)
    for child in node.children:
        if child.name not in tree:
            continue
        v = tree[child.name]
        if marks is not None:
            here = path + [child.name]
            if child.kind == "list":
                for key in _keys(v):
                    head = "%s %s" % (child.name, quote(child.key.format(key)))
                    _block(out, head, v[key], child, indent, marks, here + [key])
            elif child.kind == "container":
                _block(out, child.name, v, child, indent, marks, here)
            else:
                sub = []
                render_curly({child.name: v}, _Single(child), 0, sub)
                for line in sub:
                    _marked(out, pad, marks, here, line)
            continue
        if child.kind == "leaf":
            text = _leaf_text(child, v)
            line = pad + child.name + ("" if text is None else " " + text) + ";"
            if child.type.secret:
                line += " ## SECRET-DATA"
            out.append(line)
        elif child.kind == "leaf-list":
            vals = [quote(child.type.format(x)) for x in v]
            if len(vals) == 1:
                out.append("%s%s %s;" % (pad, child.name, vals[0]))
            else:
                out.append("%s%s [ %s ];" % (pad, child.name, " ".join(vals)))
        elif child.kind == "list":
            for key in _keys(v):
                head = "%s%s %s" % (pad, child.name, quote(child.key.format(key)))
                _block(out, head, v[key], child, indent)
        else:
            _block(out, pad + child.name, v, child, indent)
    return out


def _block(out, head, sub, node, indent, marks=None, path=None):
    if marks is not None:
        pad = "    " * indent
        if not sub:
            _marked(out, pad, marks, path, head + ";")
            return
        _marked(out, pad, marks, path, head + " {")
        render_curly(sub, node, indent + 1, out, marks, path)
        out.append(pad + "}")
        return
    if not sub:
        out.append(head + ";")
        return
    out.append(head + " {")
    render_curly(sub, node, indent + 1, out)
    out.append("    " * indent + "}")


def render_set(tree, node=None, prefix="", out=None, verb="set"):
    """`display set` lines of a subtree; prefix is the path text leading to it."""
    node = node or ROOT
    out = [] if out is None else out
    for child in node.children:
        if child.name not in tree:
            continue
        v = tree[child.name]
        here = (prefix + " " + child.name).strip()
        if child.kind == "leaf":
            text = _leaf_text(child, v)
            out.append("%s %s%s" % (verb, here, "" if text is None else " " + text))
        elif child.kind == "leaf-list":
            for x in v:
                out.append("%s %s %s" % (verb, here, quote(child.type.format(x))))
        elif child.kind == "list":
            for key in _keys(v):
                p = here + " " + quote(child.key.format(key))
                if v[key]:
                    render_set(v[key], child, p, out, verb)
                else:
                    out.append("%s %s" % (verb, p))
        else:
            if v:
                render_set(v, child, here, out, verb)
            else:
                out.append("%s %s" % (verb, here))
    return out


def node_at(path):
    """(schema node, keyed) for canonical path words, the root for []."""
    if not path:
        return ROOT, False
    return walk_nodes(path)[-1]


def render_path(tree, path, display_set=False):
    """Render the subtree at canonical path (for `show system`, `show configuration x`),
    with its deactivated statements and annotations."""
    node, keyed = node_at(path)
    sub = get_subtree(tree, path)
    if sub is None:
        return []
    marks = marks_of(tree)
    if marks is not None:
        pre = " ".join(quote(w) for w in path)
        if display_set:
            out = render_path(dict((k, v) for k, v in tree.items() if k != META), path, True)
            for p in marks.get("inactive", ()):
                if not pre or p == pre or p.startswith(pre + " "):
                    out.append("deactivate " + p)
            return out
        if node.kind in ("leaf", "leaf-list") or (node.kind == "list" and not keyed):
            return render_curly({path[-1]: sub}, _Single(node), 0, None, marks, path[:-1])
        return render_curly(sub, node, 0, None, marks, path)
    if node.kind in ("leaf", "leaf-list") or (node.kind == "list" and not keyed):
        # render the statement itself inside a one-node wrapper
        parent_sub = {path[-1]: sub}
        holder = _Single(node)
        pre = " ".join(quote(w) for w in path[:-1])
        if display_set:
            return render_set(parent_sub, holder, pre)
        return render_curly(parent_sub, holder)
    if display_set:
        return render_set(sub, node, " ".join(quote(w) for w in path))
    return render_curly(sub, node)


class _Single:
    def __init__(self, node):
        self.children = [node]


# --- diff -------------------------------------------------------------------------------

def compare(old, new):
    """Junos-style `show | compare`: [edit PATH] headers, then -/+ statements."""
    a = render_set(old, verb="")
    b = render_set(new, verb="")
    aset = {}
    for line in a:
        aset[line] = True
    bset = {}
    for line in b:
        bset[line] = True
    groups = []   # [(header, [lines])]
    index = {}
    for sign, lines, other in (("-", a, bset), ("+", b, aset)):
        for line in lines:
            if line in other:
                continue
            words = tokenize(line)
            head, stmt = _split_statement(words)
            if head not in index:
                index[head] = len(groups)
                groups.append((head, []))
            text = "%s  %s;" % (sign, " ".join(quote(w) for w in stmt))
            if _is_secret(words):
                text += " ## SECRET-DATA"
            groups[index[head]][1].append(text)
    out = []
    for head, lines in groups:
        out.append("[edit%s]" % (" " + head if head else ""))
        out.extend(lines)
    return out


def _is_secret(words):
    try:
        t = resolve(words)
    except ConfigError:
        return False
    return t.node.kind == "leaf" and t.node.type.secret


def _split_statement(words):
    """Split a set line's words into the block path and the statement in it."""
    try:
        t = resolve(words)
    except ConfigError:
        return " ".join(words[:-1]), words[-1:]
    node = t.node
    if node.kind in ("leaf", "leaf-list"):
        n = len(t.path) - 1
    elif node.kind == "list" and t.keyed:
        n = len(t.path) - 2
    else:
        n = len(t.path) - 1
    return " ".join(quote(w) for w in t.path[:n]), words[n:]


# --- commit-time validation ------------------------------------------------------------------

def validate_tree(tree, view, node=None, path=None):
    """Mandatory statements and every node's validate hook; raises ConfigError."""
    node = node or ROOT
    path = path or []
    for child in node.children:
        here = path + [child.name]
        present = child.name in tree
        if child.kind == "leaf":
            if not present:
                if child.mandatory:
                    raise ConfigError(here, None, "missing mandatory statement")
                continue
            v = tree[child.name]
            if child.validate is not None:
                err = child.validate(v, view, here)
                if err:
                    raise ConfigError(here, _shown(child, child.type.format(v)), err)
        elif child.kind == "leaf-list":
            if present and child.validate is not None:
                err = child.validate(tree[child.name], view, here)
                if err:
                    raise ConfigError(here, None, err)
        elif child.kind == "list":
            if not present:
                continue
            entries = tree[child.name]
            if len(entries) > child.max_entries:
                raise ConfigError(here, None, "too many entries (max %d)" % child.max_entries)
            for key in _keys(entries):
                p = here + [key]
                validate_tree(entries[key], view, child, p)
                if child.validate is not None:
                    err = child.validate(entries[key], view, p)
                    if err:
                        raise ConfigError(p, None, err)
        else:
            if not present:
                continue
            validate_tree(tree[child.name], view, child, here)
            if child.validate is not None:
                err = child.validate(tree[child.name], view, here)
                if err:
                    raise ConfigError(here, None, err)


# --- the read-only view --------------------------------------------------------------------

_MISSING = object()


class Section:
    __slots__ = ("sub", "node")

    def __init__(self, sub, node):
        self.sub = sub
        self.node = node

    def get(self, leaf):
        v = self.sub.get(leaf)
        if v is not None:
            return v
        child = self.node.child(leaf)
        if child is None:
            raise KeyError(leaf)      # a typo in a feature module, not bad input
        return getattr(child, "default", None)


class Config:
    """A committed (or candidate) configuration, read by feature modules:

        cfg.get("system host-name")                        -> value or its default
        cfg.get("services convergence-services station alice extension")
        cfg.entries("services convergence-services station") -> sorted keys
        cfg.has("system root-authentication")
        cfg.subtree("system syslog")                        -> dict or None
        cfg.changed(other, "system syslog")                 -> subtrees differ
    """

    def __init__(self, tree):
        self.tree = tree
        self._derived = {}

    def derived(self, key, build):
        """build(self), computed once per view and kept with it: the feature
        hooks' check and apply read the same settings (a 50-station parse
        costs some 400 KB of garbage on MicroPython, so once, not four times).
        The result is shared: treat it as read-only, like the view."""
        v = self._derived.get(key)
        if v is None:
            v = self._derived[key] = build(self)
        return v

    def _path(self, path):
        return path.split() if isinstance(path, str) else list(path)

    def get(self, path, default=_MISSING):
        words = self._path(path)
        v = get_subtree(self.tree, words)
        if v is not None:
            return v
        if default is not _MISSING:
            return default
        node, keyed = node_at(words)
        return getattr(node, "default", None)

    def has(self, path):
        return get_subtree(self.tree, self._path(path)) is not None

    def section(self, path):
        """The container or list entry at path, for reading many of its
        leaves: section.get(leaf) is one dict lookup (or the schema default),
        not a walk of the whole path per leaf."""
        words = self._path(path)
        sub = get_subtree(self.tree, words)
        return Section(sub if isinstance(sub, dict) else {}, node_at(words)[0])

    def entries(self, path):
        v = get_subtree(self.tree, self._path(path))
        return _keys(v) if isinstance(v, dict) else []

    def subtree(self, path):
        return get_subtree(self.tree, self._path(path))

    def changed(self, other, path):
        a = self.subtree(path)
        b = other.subtree(path) if other is not None else None
        return a != b

    def set_lines(self):
        return render_set(self.tree)

    def __eq__(self, other):
        return isinstance(other, Config) and self.tree == other.tree


def is_password_target(t):
    return t.node.kind == "leaf" and isinstance(t.node.type, PlainPassword)
