"""The serial console: login, prompt, line editing, command dispatch, paging.

Runs as one scheduler task over a console stream (firmware/term.py).  On a
terminal the line editor (firmware/lineedit.py) echoes, edits, completes and
answers `?`; from a pipe or script plain lines are read without echo (a line
ending in `?` still lists the completions).  End of input shuts the
appliance down cleanly; `exit`/`quit` at the operational prompt only end the
session (log out where a login is set, else wait for Enter to begin a new
one; a piped console goes on with its next line): `request system
halt|reboot` stop the appliance.

Modes follow Junos: operational (`root@host> `) and configuration
(`[edit ...]` banner, `root@host# `), entered with `configure`.  Once
`system root-authentication` is committed the console asks `login:` and
`Password:` first; a failed login is logged and answered after a delay on
the scheduler clock.
"""
from firmware.commands import CommandError, Prompt, complete, filter_steps
from firmware.compat import const
from firmware.config.schema import ConfigError
from firmware.lineedit import LineEditor, MAX_LINE, EOT, format_help
from firmware.sched import TimeoutError

LOGIN_DELAY_MS = const(2000)      # after a failed login, times the failures in a row (max 5)
MAX_LOGIN_DELAY_STEPS = const(5)
MAX_PIPE_LINE = MAX_LINE          # longer piped lines are cut and the user told
INTERRUPT = object()


class Console:
    def __init__(self, app, stream):
        self.app = app
        self.stream = stream
        self.tty = stream.is_tty
        self.editor = LineEditor(complete=self._complete)
        self.logged_in = False
        self.failures = 0
        self._raw = bytearray()      # piped input not yet split into lines
        self._eof = False
        self._reading = False        # the editor shows a prompt (for notify)
        self._started = False        # run() has shown its first prompt
        self.ending = False          # exit/quit ran: end the session after this line
        self._at_prompt = False      # the line being read is a command line

    # -- output ------------------------------------------------------------------------
    def write(self, text):
        if text:
            self.stream.write(text.replace("\n", "\r\n") if self.tty else text)

    def _flush_editor(self):
        out = self.editor.take_output()
        if out:
            self.stream.write(out)

    def notify(self, text):
        """A message from another task (commit confirmed rollback): printed
        above the prompt, which is then shown again."""
        self.write("\n\nMessage from the system: %s\n\n" % text)
        if self._reading and self.tty:
            if self._at_prompt:     # the rollback may have changed host name or mode
                self.editor.prompt = self.prompt()
            self.editor.redisplay()
            self._flush_editor()

    def prompt(self):
        mode = "#" if self._config_mode() else ">"
        return "%s@%s%s " % (self.app.user, self.app.hostname, mode)

    def _config_mode(self):
        cfg = getattr(self.app, "config", None)
        return cfg is not None and cfg.mode == "configure"

    def _banner(self):
        if self._config_mode():
            path = self.app.config.edit_path
            self.write("\n[edit%s]\n" % ("" if not path else " " + " ".join(path)))

    # -- input -----------------------------------------------------------------------------
    def _idle_ms(self):
        cfg = getattr(self.app, "config", None)
        if cfg is None or not self.logged_in or not cfg.login_required():
            return None   # the timeout logs out; without a login there is nothing to end
        minutes = cfg.get("system console idle-timeout", 0)
        return minutes * 60000 if minutes else None

    async def _read(self):
        """Bytes from the stream, b"" at end of input; TimeoutError when idle."""
        await self.app.sched.readable(self.stream, self._idle_ms())
        return self.stream.read()

    async def readline(self, prompt, secret=False):
        """One line: its text, INTERRUPT (Ctrl-C) or None at end of input."""
        if not self.tty:
            return await self._read_piped(prompt)
        ed = self.editor
        ed.start(prompt, echo=not secret)
        ev = ed.feed(b"")
        self._flush_editor()
        self._reading = True
        try:
            while ev is None:
                data = await self._read()
                if not data:
                    return None
                ev = ed.feed(data)
                self._flush_editor()
        finally:
            self._reading = False
        if ev[0] == "interrupt":
            return INTERRUPT
        return ev[1]

    async def _read_piped(self, prompt):
        self.write(prompt)
        while True:
            i = self._raw.find(b"\n")
            if i >= 0:
                line = bytes(self._raw[:i])
                self._raw = self._raw[i + 1:]
                break
            if self._eof:
                if not self._raw:
                    return None
                line = bytes(self._raw)
                self._raw = bytearray()
                break
            data = await self._read()
            if not data:
                self._eof = True
            else:
                self._raw.extend(data)
                if len(self._raw) > MAX_PIPE_LINE * 8 and self._raw.find(b"\n") < 0:
                    self._raw = self._raw[:MAX_PIPE_LINE]   # bound a line with no end
        try:
            text = line.decode().rstrip("\r")
        except UnicodeError:    # a bad line is a bad command, never a crash
            self.write("error: input is not valid UTF-8 text; line ignored\n")
            return ""
        if len(text) > MAX_PIPE_LINE:
            self.write("\nerror: line longer than %d characters ignored\n" % MAX_PIPE_LINE)
            return ""
        return text

    def _complete(self, text):
        reg = self._registry()
        try:
            return complete(reg, self.app, text)
        except Exception as e:   # a completer bug must not kill the console
            self.app.log.error("completion failed: %s" % e)
            return []

    def _registry(self):
        return self.app.config.commands if self._config_mode() else self.app.commands

    # -- the task ----------------------------------------------------------------------------
    async def run(self):
        app = self.app
        if getattr(getattr(app, "opts", None), "console", None) == "pty" and not self._started:
            # Nobody is attached to a new pty at boot, and a client flushes what
            # was written before it opened the pty: the first prompt waits for
            # the first key (Enter), so exactly one prompt answers it.
            await self.app.sched.readable(self.stream)
            data = self.stream.read()
            if not data:
                app.shutdown("end of console input")
                return
            if data[:1] in (b"\r", b"\n"):
                data = data[2:] if data[:2] == b"\r\n" else data[1:]
            if self.tty:
                self.editor.pending.extend(data)
            else:
                self._raw.extend(data)
        self._started = True
        shown = False               # the configuration notice, once per session
        while not app.stopping:
            try:
                if not self._login_required():
                    self.logged_in = True   # a session open when a password is set stays open
                elif not self.logged_in:
                    ok = await self._login()
                    if ok is None:
                        break
                    shown = False
                    continue
                if not shown:
                    self._boot_notice()
                    shown = True
                self._banner()
                self._at_prompt = True
                try:
                    line = await self.readline(self.prompt())
                finally:
                    self._at_prompt = False
                if line is None:
                    break
                if line is INTERRUPT:
                    continue
                await self.handle(line)
                if self.ending:
                    self.ending = False
                    if not await self._end_session():
                        break
            except TimeoutError:
                self._idle_logout()
        if not app.stopping:
            self.write("\n")
            app.shutdown("end of console input")

    def _boot_notice(self):
        """The console banner of a session: a configuration fallback at boot
        (firmware/config/engine.py _note_fallback), until it is over."""
        cfg = getattr(self.app, "config", None)
        text = getattr(cfg, "boot_notice", None)
        if text and (cfg.safe_state or "[left by" not in text):
            self.write("\n*** %s\n*** (show system commit, show log)\n\n" % text)

    def _login_required(self):
        cfg = getattr(self.app, "config", None)
        return cfg is not None and cfg.login_required()

    def _idle_logout(self):
        if self._login_required() and self.logged_in:
            self.write("\nSession timed out after the idle timeout; logged out\n")
            self.app.log.info("console: idle timeout, root logged out")
            self._logout()

    async def _end_session(self):
        """exit/quit at the operational prompt.  With a login: log out, back
        to login:.  Without: the session ends and the next Enter begins a new
        one.  False at end of input."""
        app = self.app
        if self._login_required():
            app.log.info("console: %s logged out" % app.user)
            self._logout()
            return True
        app.log.info("console: session ended by %s" % app.user)
        self._logout()
        if not self.tty:    # a script goes on with its next line, in a new session
            self.write("Session ended.\n")
            self.logged_in = True
            return True
        self.write("\nSession ended. Press Enter to begin a new session.\n")
        line = await self.readline("")
        if line is None:
            return False
        self.logged_in = True
        return True

    def _logout(self):
        self.logged_in = False
        cfg = self.app.config
        cfg.mode = "operational"
        cfg.edit_path = []

    async def _login(self):
        """True on success, False on failure, None at end of input."""
        from firmware import version
        user = await self.readline("login: ")
        if user is None:
            return None
        if user is INTERRUPT or not user.strip():
            return False
        user = user.strip()
        pw = await self.readline("Password:", secret=True)
        if pw is None:
            return None
        if pw is INTERRUPT:
            return False
        if self.app.config.check_login(user, pw):
            self.failures = 0
            self.logged_in = True
            self.app.user = user
            self.app.log.info("console: login by %s" % user)
            self.write("\n--- %s %s\n" % (version.PRODUCT, version.VERSION))
            return True
        self.failures += 1
        self.app.log.write("warning", "console: failed login for %r (%d in a row)" % (
            user, self.failures))
        await self.app.sched.sleep(LOGIN_DELAY_MS * min(self.failures, MAX_LOGIN_DELAY_STEPS))
        self.write("Login incorrect\n")
        return False

    async def handle(self, line):
        app = self.app
        text = line.strip()
        if not text or text == EOT:
            return
        if not self.tty and text.endswith("?") and text.count('"') % 2 == 0:
            self.write(format_help(self._complete(text[:-1])) + "\n")
            return
        more = True
        try:
            out, filters = self._registry().start(app, text)
            if not isinstance(out, Prompt):
                out, more = await self._filter(out or "", filters)
            while isinstance(out, Prompt):
                if not self.tty and out.default is not None:
                    self.write(out.question + out.default + "\n")
                    answer = out.default
                else:
                    q = out.question
                    if "\n" in q:      # the line editor redraws one line: the rest goes first
                        i = q.rindex("\n") + 1
                        self.write(q[:i])
                        q = q[i:]
                    answer = await self.readline(q, secret=out.secret)
                    if answer is None or answer is INTERRUPT:
                        return
                out = out.then(answer)
        except (CommandError, ConfigError) as e:
            out = "error: %s" % e
        except Exception as e:   # a handler's bug: report it, keep the console
            app.log.error("command %r failed: %s: %s" % (text, type(e).__name__, e))
            out = "error: internal error: %s" % e
        await self.page(out, more)

    async def _filter(self, out, filters):
        """Pipe filters on the scheduler: pattern matching pauses every
        CHUNK_STEPS steps so that no console command starves the SIP tasks."""
        for r in filter_steps(out, filters):
            if r is not None:
                return r
            await self.app.sched.sleep(0)
        return out, True

    # -- paging ---------------------------------------------------------------------------------
    def _screen_length(self):
        cfg = self.app.config
        if cfg.screen_length is not None:
            return cfg.screen_length
        return cfg.get("system console screen-length", 0)

    async def page(self, out, more=True):
        if not out:
            return
        lines = out.split("\n")
        if lines[-1] == "":
            lines.pop()
        n = self._screen_length()
        if not (self.tty and more and n and len(lines) > n):
            self.write("\n".join(lines) + "\n")
            return
        i = 0
        step = n - 1
        while i < len(lines):
            chunk = lines[i:i + step]
            self.write("\n".join(chunk) + "\n")
            i += len(chunk)
            if i >= len(lines):
                break
            self.write("---(more)---")
            key = await self._key()
            self.write("\r\x1b[K")
            if key in (b"q", b"Q", b"\x03") or key is None:
                break
            step = 1 if key in (b"\r", b"\n") else n - 1

    async def _key(self):
        ed = self.editor
        if ed.pending:
            k = bytes(ed.pending[:1])
            ed.pending = ed.pending[1:]
            return k
        data = await self._read()
        if not data:
            return None
        ed.pending.extend(data[1:])
        return data[:1]

