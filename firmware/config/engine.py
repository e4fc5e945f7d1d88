"""The configuration engine: candidate and committed trees, configuration
mode commands, atomic commit with apply hooks, commit confirmed on the
scheduler clock, rollback and persistence through config/store.py.

    app.config = ConfigEngine(app)       # in Appliance.__init__
    app.config.boot()                    # loads the committed config from flash, applies it
    app.config.get("system host-name")   # committed value (or the schema default)
    app.config.committed                 # tree.Config view: get / entries / has / subtree

One candidate is shared by every session, as with Junos `configure`.
"""
from firmware.commands import Registry, CommandError, Prompt
from firmware.config import schema as S
from firmware.config.schema import ConfigError, ROOT
from firmware.config.store import Store, FileFlash, MAX_ROLLBACK
from firmware.config.tree import (Config, tokenize, resolve, tree_set, tree_delete, copy_tree,
                                  render_curly, render_path, render_set, compare, validate_tree,
                                  is_password_target, node_at, get_subtree, quote, base_target,
                                  META, effective)

# Modules whose import declares schema nodes and commit hooks; later features
# add theirs here (or import themselves before ConfigEngine.boot()).
FEATURES = ["firmware.config.system", "firmware.config.voice", "firmware.voice.config",
            "firmware.callserver.config", "firmware.sipstack.security",
            "firmware.voice.events_config",
            "firmware.sipstack.tlsconfig",
            "firmware.cdr.config",
            "firmware.radius.config",
            "firmware.callserver.features_config",
            ]
DEFAULT_CONFIRM_MINUTES = 10
MAX_CONFIRM_MINUTES = 65535


MAX_MARKS = 64        # inactive statements, and annotations, in one configuration
MAX_NOTE = 200       # characters of one annotation
MAX_LOAD_BYTES = 65536
MAX_LOAD_LINES = 2000


def flash_text(tree):
    """A tree as the flash keeps it: set lines, then deactivate and annotate lines."""
    lines = render_set(tree)
    m = tree.get(META)
    if m:
        for p in m.get("inactive", ()):
            lines.append("deactivate " + p)
        notes = m.get("notes", {})
        for p in sorted(notes):
            lines.append("annotate %s %s" % (p, quote(notes[p])))
    return "\n".join(lines)


def _drop_dangling(tree):
    """Marks of statements deleted since they were marked go with them."""
    m = tree.get(META)
    if not m:
        return

    def alive(p):
        try:
            return get_subtree(tree, resolve(tokenize(p)).path) is not None
        except ConfigError:
            return False
    if "inactive" in m:
        m["inactive"] = [p for p in m["inactive"] if alive(p)]
    if "notes" in m:
        for p in [p for p in m["notes"] if not alive(p)]:
            del m["notes"][p]
    _prune_meta(tree)


def _prune_meta(tree):
    m = tree.get(META)
    if m is None:
        return
    for k in ("inactive", "notes"):
        if k in m and not m[k]:
            del m[k]
    if not m:
        del tree[META]


def load_features():
    for m in FEATURES:
        __import__(m)


class ConfigEngine:
    def __init__(self, app, flash=None):
        load_features()
        self.app = app
        self.flash = flash
        self.store = None
        self.committed = Config({})   # what the services run: no inactive statement
        self.full = {}                # the committed tree with its META (inactive, notes)
        self.candidate = {}
        self.edit_path = []
        self.mode = "operational"     # or "configure"
        self.confirm = None           # (token, deadline ms, tree to restore, task)
        self._confirm_seq = 0
        self.last_gen = 0
        self.boot_notice = None       # a configuration fallback at boot (see _note_fallback)
        self.safe_state = False       # no valid generation: booted empty
        self.screen_length = None     # `set cli screen-length` (session); None: config
        self.loaded = None            # what the candidate was loaded from (rollback-N, load)
        self.warnings = []            # from the commit checks: shown, logged, not fatal
        self.commands = Registry()    # configuration-mode commands
        self._register(app.commands, self.commands)

    # -- reading ----------------------------------------------------------------
    def get(self, path, default=None):
        v = self.committed.get(path)
        return default if v is None else v

    def dirty(self):
        return self.candidate != self.full

    def login_required(self):
        return self.committed.has("system root-authentication encrypted-password")

    def check_login(self, user, password):
        h = self.committed.get("system root-authentication encrypted-password")
        return bool(h) and user == "root" and S.check_password(password, h)

    # -- boot -----------------------------------------------------------------------
    def boot(self):
        """Load the committed configuration from flash and apply it."""
        app = self.app
        if self.store is None:
            self.store = Store(self.flash or FileFlash(app.state_dir + "/config"))
        self.store.cleanup()
        tree = {}
        rec, skipped = self.store.latest_checked()
        self._note_fallback(rec, skipped)
        if rec is not None:
            gen, meta, text = rec
            self.last_gen = gen
            tree = self.parse(text, lenient=True)
            if meta.get("confirm"):
                prev = self.store.rollback(1)
                app.log.write("warning", "commit confirmed (generation %d) was not confirmed "
                                         "before the restart: rolled back" % gen)
                tree = self.parse(prev[2], lenient=True) if prev else {}
                self.last_gen = self.store.save(flash_text(tree), self._meta(
                    "automatic rollback: commit confirmed not confirmed before restart",
                    via="confirmed-timeout"))
        view = Config(effective(tree))
        try:
            self._apply(Config({}), view)
        except ConfigError as e:
            app.log.error("configuration could not be applied at boot: %s" % e)
        self.committed = view
        self.full = tree
        self.candidate = copy_tree(tree)

    def _note_fallback(self, rec, skipped):
        """A corrupt newest generation (or all of them) is never silent: every
        skipped generation and the outcome go to the system log (error), and
        boot_notice keeps the outcome for the console banner and `show system
        commit`.  No valid generation at all: safe_state, an empty
        configuration (no stations, trunks or calls; no console password),
        said loudly everywhere until a commit replaces it."""
        self.boot_notice = None
        self.safe_state = False
        if not skipped:
            return
        log = self.app.log
        for gen, why in skipped:
            log.error("configuration: generation %d is unusable: %s" % (gen, why))
        bad = ", ".join("generation %d unusable (%s)" % (g, w) for g, w in skipped)
        if rec is not None:
            self.boot_notice = ("configuration fallback: %s; booted generation %d, the newest "
                                "valid one" % (bad, rec[0]))
        else:
            self.safe_state = True
            self.boot_notice = ("SAFE STATE: no valid configuration generation (%s); "
                                "booted an EMPTY configuration: no stations, trunks or "
                                "passwords. Commit a configuration to leave the safe state" % bad)
        log.error(self.boot_notice)

    def parse(self, text, lenient=False, name="configuration", tree=None):
        """A tree from `set`/`delete` lines (applied to tree, default empty);
        lenient skips (and logs) bad lines."""
        tree = {} if tree is None else tree
        n = 0
        for line in text.split("\n"):
            n += 1
            try:
                self.statement(tree, line)
            except ConfigError as e:
                if not lenient:
                    raise ConfigError("", None, "%s line %d: %s" % (name, n, e))
                self.app.log.error("%s line %d skipped: %s" % (name, n, e))
        return tree

    def statement(self, tree, line, base=None):
        """Apply one configuration-file line (set/delete/comment) to tree."""
        text = line.strip()
        if not text or text.startswith("#"):
            return
        words = tokenize(text)
        verb = words[0]
        if "set".startswith(verb) and verb != "":
            self._set(tree, words[1:], base)
        elif "delete".startswith(verb) and len(verb) >= 2:
            self._delete(tree, words[1:], base)
        elif verb in ("deactivate", "activate"):
            from firmware.config import junos
            junos.activate(tree, words[1:], base, verb == "activate")
        elif verb == "annotate":
            from firmware.config import junos
            junos.annotate(tree, words[1:], base)
        else:
            raise ConfigError("", None, "expected set, delete, deactivate, activate or annotate, "
                              "not %r" % verb)

    def _base(self):
        return base_target(self.edit_path) if self.edit_path else None

    def _set(self, tree, words, base=None, password=None):
        if not words and base is None:
            raise ConfigError("set", None, "missing statement")
        if "[" in words:
            from firmware.config import junos
            for t in junos.bracket_targets(words, base):
                tree_set(tree, t)
            return None
        t = resolve(words, base)
        node = t.node
        if node.kind == "list" and not t.keyed:
            raise ConfigError(t.path, None, "missing %s name" % node.name)
        if is_password_target(t):
            plain = t.text if t.text is not None else password
            if plain is None:
                return t
            try:
                node.type.parse(plain)
                stored = node.type.store(plain, self.app, tree, t.path)
            except ValueError as e:
                raise ConfigError(t.path, "(secret)", str(e))
            t.path[-1] = node.type.store_as
            t.node = node_at(t.path)[0]
            t.value = t.text = stored
        elif node.kind in ("leaf", "leaf-list") and t.text is None:
            raise ConfigError(t.path, None, "missing value: %s" % node.type.describe())
        tree_set(tree, t)
        return None

    def _delete(self, tree, words, base=None):
        if "[" in words:
            from firmware.config import junos
            for t in junos.bracket_targets(words, base):
                tree_delete(tree, t)
            return
        t = resolve(words, base)
        if not t.path:
            for k in list(tree.keys()):
                del tree[k]
            return
        if t.node.kind == "list" and not t.keyed and get_subtree(tree, t.path) is None:
            raise ConfigError(t.path, None, "statement not found")
        tree_delete(tree, t)

    def warn(self, text):
        """A commit check's warning: the commit goes on, and says it."""
        if len(self.warnings) < 16:
            self.warnings.append(text)

    # -- commit --------------------------------------------------------------------------
    def _meta(self, comment=None, confirm=0, via=None):
        """A generation's record: monotonic ms, the time of day (unix seconds,
        only once synchronised: sync=1), user, how it was made (via: console,
        config-file, confirmed-timeout; "+rollback-N"/"+load" when the candidate
        came from a rollback or a load), comment."""
        app = self.app
        tod = app.time.now() if getattr(app, "time", None) is not None else None
        via = via or "console"
        if via == "console" and self.loaded:
            via += "+" + self.loaded
        return {"ms": app.clock.now(), "wall": tod // 1000 if tod is not None else 0,
                "sync": tod is not None, "user": app.user, "confirm": confirm,
                "comment": comment, "via": via}

    def check(self, tree, view=None):
        """Validate a whole tree (view: the Config of its effective tree, when
        the caller has one); returns its flash text.  Raises ConfigError."""
        view = view or Config(effective(tree))
        self.warnings = []
        validate_tree(view.tree, view)
        text = flash_text(tree)
        limit = self.store.max_bytes if self.store else None
        if limit is not None and len(text) + 128 > limit:
            raise ConfigError("", None, "configuration is %d bytes, more than the %d bytes flash allows" % (
                len(text) + 128, limit))
        old = self.committed
        for name, apply, check in S.HOOKS:
            if check is not None:
                check(self.app, old, view)
        return text

    def _apply(self, old, new):
        """Run every apply hook (old, new: Config views); on a refusal undo
        the ones that ran, re-raise."""
        done = []
        for hook in S.HOOKS:
            try:
                hook[1](self.app, old, new)
            except Exception as e:
                for h in reversed(done):
                    try:
                        h[1](self.app, new, old)
                    except Exception as e2:
                        self.app.log.error("undo of %s failed: %s" % (h[0], e2))
                if isinstance(e, ConfigError):
                    raise
                raise ConfigError("", None, "%s: %s" % (hook[0], e))
            done.append(hook)

    def commit(self, tree=None, check_only=False, confirm=0, comment=None, via=None):
        """Validate, apply and persist tree (default: the candidate) as one step.
        Returns a message; raises ConfigError and changes nothing on failure."""
        tree = copy_tree(self.candidate if tree is None else tree)
        _drop_dangling(tree)
        view = Config(effective(tree))  # one view: hooks' derived settings are built once
        text = self.check(tree, view)
        warned = ["warning: " + w for w in self.warnings]
        if check_only:
            return "\n".join(warned + ["configuration check succeeds"])
        old = self.committed
        old_tree = self.full
        unchanged = tree == old_tree
        pending = self.confirm is not None
        self._apply(old, view)
        if not (unchanged and not pending and not confirm and self.last_gen):
            try:
                self.last_gen = self.store.save(text, self._meta(comment, confirm, via))
            except Exception as e:
                try:
                    self._apply(view, old)
                except ConfigError as e2:
                    self.app.log.error("undo after a failed write: %s" % e2)
                if isinstance(e, ConfigError):
                    raise
                raise ConfigError("", None, "cannot write the configuration to flash: %s" % e)
        self.committed = view
        self.full = tree
        if via is None:
            self.loaded = None
        msg = warned
        for w in self.warnings:
            self.app.log.write("warning", "commit: " + w)
        if self.safe_state:
            self.safe_state = False
            self.boot_notice += " [left by the commit of generation %d]" % self.last_gen
            self.app.log.info("configuration: safe state left by the commit of generation %d"
                              % self.last_gen)
        if confirm:
            restore = self.confirm[2] if pending else old_tree
            self._arm_confirm(confirm, restore)
            msg.append("commit confirmed will be automatically rolled back in %d minute%s "
                       "unless confirmed" % (confirm, "" if confirm == 1 else "s"))
        elif pending:
            self._disarm_confirm()
            self.app.log.info("commit confirmed: confirmed by %s" % self.app.user)
        self.app.log.info("commit complete: generation %d by %s%s" % (
            self.last_gen, self.app.user, " (confirmed %d min)" % confirm if confirm else ""))
        msg.append("commit complete")
        return "\n".join(msg)

    def _arm_confirm(self, minutes, restore):
        self._disarm_confirm()
        self._confirm_seq += 1
        token = self._confirm_seq
        deadline = self.app.clock.now() + minutes * 60000
        task = self.app.sched.spawn(self._confirm_timer(token, deadline), "commit-confirmed")
        self.confirm = (token, deadline, restore, task)

    def _disarm_confirm(self):
        if self.confirm is not None:
            task = self.confirm[3]
            self.confirm = None
            if task is not None and not task.done():
                task.cancel()

    async def _confirm_timer(self, token, deadline):
        await self.app.sched.sleep_until(deadline)
        if self.confirm is None or self.confirm[0] != token:
            return
        restore = self.confirm[2]
        self.confirm = None
        try:
            self.commit(restore, comment="automatic rollback: commit confirmed not confirmed",
                        via="confirmed-timeout")
        except ConfigError as e:
            self.app.log.error("commit confirmed: automatic rollback failed: %s" % e)
            return
        self.candidate = copy_tree(restore)
        text = "Commit was not confirmed; automatic rollback complete"
        self.app.log.write("warning", "commit confirmed: " + text)
        console = getattr(self.app, "console", None)
        if console is not None and hasattr(console, "notify"):
            console.notify(text)

    def rollback(self, n):
        """Load rollback n into the candidate."""
        if self.store is None:
            raise ConfigError("rollback", n, "no configuration store")
        rec = self.store.rollback(n)
        if rec is None:
            raise ConfigError("rollback", n, "no such rollback (0..%d, %d kept)" % (
                MAX_ROLLBACK, len(self.store.records())))
        self.candidate = self.parse(rec[2], lenient=True)
        self.loaded = "rollback-%d" % n
        return "load complete"

    def load_file(self, path, text):
        """--config FILE: apply every line to a copy of the candidate and commit
        it; a bad line raises ConfigError('config FILE line N: ...')."""
        tree = self.parse(text, name="config " + path, tree=copy_tree(self.full))
        try:
            msg = self.commit(tree, comment="loaded from %s" % path, via="config-file")
        except ConfigError as e:
            raise ConfigError("", None, "config %s: commit failed: %s" % (path, e))
        self.candidate = copy_tree(self.full)
        return msg

    # -- commands -------------------------------------------------------------------------
    def _register(self, op, cf):
        op.register("configure", _configure, "Manipulate the software configuration")
        op.register("show configuration", _show_configuration, "Show the committed configuration",
                    args=_complete_committed)
        op.register("show system commit", _show_commit, "Show the commit history (rollbacks)")
        op.register("set cli screen-length", _cli_screen_length,
                    "Set the lines per page for this session (0: no paging)",
                    args=lambda app, a, p: [("<0..512>", "Lines per page")] if not a else [])
        cf.register("set", _cf_set, "Set a parameter", args=_complete_candidate)
        cf.register("delete", _cf_delete, "Delete a data element", args=_complete_candidate)
        cf.register("show", _cf_show, "Show a parameter", args=_complete_candidate)
        cf.register("edit", _cf_edit, "Edit a particular level of the hierarchy",
                    args=_complete_blocks)
        cf.register("up", _cf_up, "Go up one or more levels of the hierarchy",
                    args=lambda app, a, p: [("<count>", "Levels to go up (default 1)")] if not a else [])
        cf.register("top", _cf_top, "Go to the top level of the hierarchy")
        cf.register("exit", _cf_exit, "Exit from this level (or configuration mode)",
                    args=lambda app, a, p: [("configuration-mode", "Exit from configuration mode")]
                    if not a and "configuration-mode".startswith(p) else [])
        cf.register("quit", _cf_exit, "Quit from this level (or configuration mode)")
        cf.register("commit", _cf_commit, "Commit the candidate configuration", args=_complete_commit)
        cf.register("rollback", _cf_rollback, "Load a previous configuration into the candidate",
                    args=_complete_rollback)
        cf.register("run", _cf_run, "Run an operational-mode command", args=_complete_run)
        cf.register("status", _cf_status, "Show whether the candidate has uncommitted changes")
        cf.register("deactivate", _junos("_cf_deactivate"), "Keep a statement but have the services ignore it",
                    args=_complete_candidate)
        cf.register("activate", _junos("_cf_activate"), "Make a deactivated statement count again",
                    args=_complete_candidate)
        cf.register("annotate", _junos("_cf_annotate"), 'Comment a statement: annotate STATEMENT "text"',
                    args=_complete_candidate)
        cf.register("rename", _junos("_cf_rename"), "Rename a named entry: rename station bob to station robert",
                    args=_complete_candidate)
        cf.register("copy", _junos("_cf_copy"), "Copy a named entry: copy station bob to station carol",
                    args=_complete_candidate)
        cf.register("load merge", _junos("load_merge"),
                    "Merge statements from a file or the terminal into the candidate",
                    args=_complete_load)
        cf.register("load override", _junos("load_override"),
                    "Replace the candidate with a file's or the terminal's configuration",
                    args=_complete_load)
        cf.register("load set", _junos("load_set"),
                    "Run set/delete/deactivate/annotate lines from a file or the terminal",
                    args=_complete_load)
        for reg, fn in ((op, "help_operational"), (cf, "help_configuration")):
            reg.register("help", _junos(fn), "Show the commands of this mode with their help",
                         args=_complete_help(reg))


# --- handlers (app, args) -> str | Prompt ------------------------------------------

def _junos(name):
    """A configuration-mode command of firmware/config/junos.py, loaded on first use."""
    def run(app, args):
        from firmware.config import junos
        return getattr(junos, name)(app, args)
    return run


def _complete_load(app, args, partial):
    if args:
        return []
    return [o for o in (("terminal", "Read the configuration from the console (end with Ctrl-D)"),
                        ("<filename>", "File, absolute or relative to the state directory"))
            if o[0][:1] == "<" or o[0].startswith(partial)]


def _complete_help(reg):
    def fn(app, args, partial):
        return [(w, h) for w, h in reg.completions(args) if w.startswith(partial)]
    return fn


def _modifiers(args):
    words = [a for a in args if not a.startswith("|")]
    mods = [a for a in args if a.startswith("|")]
    return words, "|display set" in mods, "|compare" in mods


def _configure(app, args):
    eng = app.config
    eng.mode = "configure"
    eng.edit_path = []
    out = ["Entering configuration mode"]
    if eng.dirty():
        out.append("The configuration has been changed but not committed")
    return "\n".join(out)


def _show_configuration(app, args):
    eng = app.config
    words, dset, _ = _modifiers(args)
    t = resolve(words) if words else None
    path = t.path if t else []
    lines = render_path(eng.full, path, dset)
    if not words and not dset and eng.last_gen:
        lines.insert(0, "## Last commit: generation %d" % eng.last_gen)
    return "\n".join(lines)


def _show_commit(app, args):
    eng = app.config
    if eng.store is None:
        return ""
    out = []
    if eng.boot_notice:
        out.append("Boot: " + eng.boot_notice)
    for i, (gen, meta, _) in enumerate(eng.store.records()):
        if meta.get("sync") and getattr(app, "time", None) is not None:
            when = app.time.local(meta.get("wall", 0) * 1000)
        else:
            ms = meta.get("ms", 0)
            when = "time not synchronised (%d.%03d s after boot)" % (ms // 1000, ms % 1000)
        line = "%-3d %s by %s via %s, generation %d" % (
            i, when, meta.get("user", "?"), meta.get("via") or "console", gen)
        if meta.get("confirm"):
            line += " commit confirmed, rollback in %d mins" % meta["confirm"]
        if meta.get("comment"):
            line += "\n    " + meta["comment"]
        out.append(line)
    return "\n".join(out)


def _cli_screen_length(app, args):
    if len(args) != 1 or not args[0].isdigit() or int(args[0]) > 512:
        raise CommandError("set cli screen-length: expected 0..512")
    app.config.screen_length = int(args[0])
    return "Screen length set to %s" % args[0]


def _cf_set(app, args):
    eng = app.config
    words, _, _ = _modifiers(args)
    t = eng._set(eng.candidate, words, eng._base())
    if t is None:
        return ""

    def first(pw):
        def second(again):
            if again != pw:
                raise CommandError("passwords do not match")
            eng._set(eng.candidate, words, eng._base(), password=pw)
            return ""
        try:
            t.node.type.parse(pw)
        except ValueError as e:
            raise CommandError(str(e))
        return Prompt("Retype new password: ", second, secret=True)
    return Prompt("New password: ", first, secret=True)


def _cf_delete(app, args):
    eng = app.config
    words, _, _ = _modifiers(args)
    if not words and not eng.edit_path:
        return Prompt("Delete everything under this level? [yes,no] (no) ",
                      lambda a: (eng._delete(eng.candidate, [], None) or "")
                      if a.strip() in ("y", "yes") else "", default="no")
    eng._delete(eng.candidate, words, eng._base())
    return ""


def _cf_show(app, args):
    eng = app.config
    words, dset, cmp_ = _modifiers(args)
    if cmp_:
        out = compare(eng.full, eng.candidate)
        if META in eng.full or META in eng.candidate:
            from firmware.config import junos
            out += junos.compare_marks(eng.full, eng.candidate)
        return "\n".join(out)
    t = resolve(words, eng._base())
    lines = render_path(eng.candidate, t.path, dset)
    return "\n".join(lines)


def _cf_edit(app, args):
    eng = app.config
    t = resolve(args, eng._base())
    if t.node.kind in ("leaf", "leaf-list") or (t.node.kind == "list" and not t.keyed):
        raise ConfigError(t.path, None, "edit needs a block (container or named entry)")
    eng.edit_path = t.path
    return ""


def _cf_up(app, args):
    eng = app.config
    words = _modifiers(args)[0]
    if len(words) > 1 or (words and not words[0].isdigit()):
        raise CommandError("up: expected a number of levels, not '%s'" % " ".join(words))
    n = int(words[0]) if words else 1
    for _ in range(n):
        eng.edit_path = _parent_level(eng.edit_path)
    return ""


def _parent_level(path):
    if not path:
        return path
    path = path[:-1]
    # stepping out of a list entry leaves the list too (edit station a -> up)
    if path:
        node, keyed = node_at(path)
        if node.kind == "list" and not keyed:
            path = path[:-1]
    return path


def _cf_top(app, args):
    app.config.edit_path = []
    return ""


def _cf_exit(app, args):
    eng = app.config
    if args and "configuration-mode".startswith(args[0]):
        return _leave(eng)
    if args:
        raise CommandError("exit: unexpected %s" % args[0])
    if eng.edit_path:
        eng.edit_path = _parent_level(eng.edit_path)
        return ""
    if eng.dirty():
        def answer(a):
            if a.strip().lower() in ("", "y", "yes"):
                return _leave(eng)
            return ""
        return Prompt("The configuration has been changed but not committed\n"
                      "Exit with uncommitted changes? [yes,no] (yes) ", answer, default="yes")
    return _leave(eng)


def _leave(eng):
    eng.mode = "operational"
    eng.edit_path = []
    if eng.dirty():
        return "Exiting configuration mode (the candidate keeps the uncommitted changes)"
    return "Exiting configuration mode"


def _cf_commit(app, args):
    eng = app.config
    check = False
    confirm = 0
    comment = None
    quit_after = False
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("|"):
            i += 1
        elif "check".startswith(a) and len(a) >= 2:
            check = True
            i += 1
        elif "confirmed".startswith(a) and len(a) >= 2:
            confirm = DEFAULT_CONFIRM_MINUTES
            i += 1
            if i < len(args) and args[i].isdigit():
                confirm = int(args[i])
                if not 1 <= confirm <= MAX_CONFIRM_MINUTES:
                    raise ConfigError("commit confirmed", confirm,
                                      "value out of range 1..%d" % MAX_CONFIRM_MINUTES)
                i += 1
        elif "comment".startswith(a) and len(a) >= 3:
            if i + 1 >= len(args):
                raise CommandError("commit comment: missing text")
            comment = args[i + 1]
            i += 2
        elif "and-quit".startswith(a):
            quit_after = True
            i += 1
        else:
            raise CommandError("commit: unexpected %r (check, confirmed [MINUTES], comment TEXT, and-quit)" % a)
    msg = eng.commit(check_only=check, confirm=confirm, comment=comment)
    if quit_after and not check:
        msg += "\n" + _leave(eng)
    return msg


def _cf_rollback(app, args):
    n = 0
    if args:
        if not args[0].isdigit():
            raise ConfigError("rollback", args[0], "expected a number 0..%d" % MAX_ROLLBACK)
        n = int(args[0])
    return app.config.rollback(n)


def _cf_run(app, args):
    if not args:
        raise CommandError("run: missing command")
    words = [quote(a) if not a.startswith("|") else a for a in args]
    line = []
    for w in words:
        line.append("| " + w[1:] if w.startswith("|") else w)
    out, _ = app.commands.run(app, " ".join(line))
    return out


def _cf_status(app, args):
    eng = app.config
    out = ["uncommitted changes" if eng.dirty() else "no uncommitted changes"]
    if eng.confirm is not None:
        left = (eng.confirm[1] - app.clock.now() + 59999) // 60000
        out.append("commit confirmed pending: rollback in %d minute%s" % (left, "" if left == 1 else "s"))
    return "\n".join(out)


# --- completers (app, args, partial) -> [(word, help)] --------------------------------

def schema_completions(tree, words, partial, base=None, blocks_only=False):
    try:
        t = resolve(words, base)
    except ConfigError:
        return []
    node = t.node
    out = []
    if node.kind in ("leaf", "leaf-list"):
        if t.text is not None or node.type.flag:
            return [] if partial else [("<[Enter]>", "Execute this command")]
        choices = getattr(node.type, "choices", None)
        if choices:
            out = [(c, "") for c in choices]
        elif node.type.kind == "boolean":
            out = [("true", ""), ("false", "")]
        elif node.type.kind == "dscp":
            out = [("<0..63>", node.type.describe())] + [(n, "DSCP %d" % v) for n, v in S.DSCP_NAMES]
        else:
            out = [(node.type.hint(), node.help or node.type.describe())]
        return [c for c in out if c[0].startswith(partial) or c[0].startswith("<")]
    if node.kind == "list" and not t.keyed:
        sub = get_subtree(tree, t.path)
        out = [("<%s>" % node.key.kind, node.key_help)]
        if isinstance(sub, dict):
            out += [(k, "") for k in sorted(sub.keys())]
        return [c for c in out if c[0].startswith(partial) or c[0].startswith("<")]
    for c in node.children:
        if blocks_only and c.kind in ("leaf", "leaf-list"):
            continue
        if c.name.startswith(partial):
            out.append((c.name, c.help))
    if not partial and t.path:
        out.append(("<[Enter]>", "Execute this command"))
    return out


def _complete_candidate(app, args, partial):
    eng = app.config
    return schema_completions(eng.candidate, args, partial, eng._base())


def _complete_blocks(app, args, partial):
    eng = app.config
    return schema_completions(eng.candidate, args, partial, eng._base(), blocks_only=True)


def _complete_committed(app, args, partial):
    return schema_completions(app.config.committed.tree, args, partial)


def _complete_commit(app, args, partial):
    opts = (("check", "Check correctness of syntax; do not apply changes"),
            ("confirmed", "Automatically roll back if not confirmed"),
            ("comment", "Message to write to the commit log"),
            ("and-quit", "Quit configuration mode if commit succeeds"))
    if args and "confirmed".startswith(args[-1]) and len(args[-1]) >= 2:
        return [("<1..65535>", "Minutes before the automatic rollback (default 10)")]
    return [o for o in opts if o[0].startswith(partial)]


def _complete_rollback(app, args, partial):
    if args:
        return []
    eng = app.config
    out = []
    recs = eng.store.records() if eng.store else []
    for i, (gen, meta, _) in enumerate(recs):
        if str(i).startswith(partial):
            out.append((str(i), "generation %d by %s" % (gen, meta.get("user", "?"))))
    return out


def _complete_run(app, args, partial):
    from firmware.commands import complete
    text = " ".join(args) + (" " if args else "") + partial
    return complete(app.commands, app, text)
