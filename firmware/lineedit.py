"""A sans-I/O line editor for a bare UART or terminal (VT100 keys).

    ed = LineEditor(complete=fn)       # fn(text_before_cursor) -> [(word, help)]
    ed.start("root@br1> ")             # new line: prompt written to ed.output
    ev = ed.feed(b"sh ver\\r")          # -> ("line", "sh ver"), ("interrupt",) or None
    uart.write(ed.take_output())

Keys: printable ASCII inserts; Left/Right, Ctrl-B/Ctrl-F move; Home/End,
Ctrl-A/Ctrl-E; Up/Down, Ctrl-P/Ctrl-N walk the history (MAX_HISTORY lines, the
oldest dropped); Backspace/Ctrl-H, Delete and Ctrl-D delete; Ctrl-K kills to
the end, Ctrl-U the whole line, Ctrl-W the word before the cursor; Ctrl-L
redraws; Ctrl-C abandons the line; Tab completes the word before the cursor
(or lists the choices); `?` lists the possible completions with help and
redisplays the line (`?` inside double quotes is literal).  Bytes after a
completed line stay queued for the next start().  A line longer than
MAX_LINE characters takes no more input (the terminal bell rings).
"""
from firmware.compat import const

EOT = "\x04"           # the line Ctrl-D on an empty line gives
MAX_HISTORY = const(50)
MAX_LINE = const(512)
MAX_PENDING = const(4096)   # typed-ahead bytes kept; more are dropped and counted

_ESC = 27
BELL = b"\x07"


def format_help(items):
    """`?` output: "Possible completions:" and the aligned choices."""
    if not items:
        return "No valid completions"
    width = 0
    for w, _ in items:
        width = max(width, len(w))
    width = min(width, 28)
    lines = ["Possible completions:"]
    for w, h in items:
        lines.append(("  %-" + str(width) + "s  %s") % (w, h) if h else "  " + w)
    return "\n".join(lines)


def common_prefix(words):
    if not words:
        return ""
    p = words[0]
    for w in words[1:]:
        i = 0
        while i < len(p) and i < len(w) and p[i] == w[i]:
            i += 1
        p = p[:i]
    return p


class LineEditor:
    def __init__(self, complete=None, history_max=MAX_HISTORY, max_line=MAX_LINE):
        self.complete = complete
        self.history_max = history_max
        self.max_line = max_line
        self.history = []
        self.output = bytearray()
        self.pending = bytearray()
        self.dropped = 0
        self.prompt = ""
        self.echo = True
        self.buf = ""
        self.pos = 0
        self._hist = None     # index into history while browsing
        self._saved = ""      # the line being edited before browsing
        self._esc = None      # bytes of an escape sequence being read
        self._last_cr = False
        self.active = False

    # -- driving -----------------------------------------------------------------
    def start(self, prompt, echo=True):
        self.prompt = prompt
        self.echo = echo
        self.buf = ""
        self.pos = 0
        self._hist = None
        self._esc = None
        self.active = True
        self._out(prompt)

    def feed(self, data):
        """Queue data and process it until a line is complete.  Returns
        ("line", text), ("interrupt",) or None (more input needed).  Ctrl-D
        on an empty line gives the line EOT (`load merge terminal` ends there)."""
        if data:
            room = MAX_PENDING - len(self.pending)
            if len(data) > room:
                self.dropped += len(data) - room
                data = data[:room]
            self.pending.extend(data)
        while self.active and self.pending:
            b = self.pending[0]
            self.pending = self.pending[1:]
            ev = self._key(b)
            if ev is not None:
                self.active = False
                return ev
        return None

    def take_output(self):
        out = bytes(self.output)
        self.output = bytearray()
        return out

    def redisplay(self):
        """Show prompt and line again (after a notice printed over them)."""
        self._out(self.prompt + (self.buf if self.echo else ""))
        self._back(len(self.buf) - self.pos)

    # -- output helpers -------------------------------------------------------------
    def _out(self, text):
        if text:
            self.output.extend(text.encode() if isinstance(text, str) else text)

    def _back(self, n):
        if n > 0 and self.echo:
            self._out("\b" * n)

    def _tail(self, erase=0):
        """Rewrite from the cursor to the end, blank erase cells, return the cursor."""
        if not self.echo:
            return
        rest = self.buf[self.pos:]
        self._out(rest + " " * erase)
        self._back(len(rest) + erase)

    def _refresh(self):
        if not self.echo:
            return
        self._out("\r" + self.prompt + self.buf + "\x1b[K")
        self._back(len(self.buf) - self.pos)

    # -- edits ----------------------------------------------------------------------------
    def _insert(self, text):
        if len(self.buf) + len(text) > self.max_line:
            self._out(BELL)
            text = text[:max(0, self.max_line - len(self.buf))]
            if not text:
                return
        self.buf = self.buf[:self.pos] + text + self.buf[self.pos:]
        self.pos += len(text)
        if self.echo:
            self._out(text)
            self._tail()

    def _delete_back(self, n):
        n = min(n, self.pos)
        if n <= 0:
            return
        self.buf = self.buf[:self.pos - n] + self.buf[self.pos:]
        self.pos -= n
        self._back(n)
        self._tail(n)

    def _delete_fwd(self):
        if self.pos < len(self.buf):
            self.buf = self.buf[:self.pos] + self.buf[self.pos + 1:]
            self._tail(1)

    def _move(self, to):
        to = max(0, min(len(self.buf), to))
        if to < self.pos:
            self._back(self.pos - to)
        elif to > self.pos and self.echo:
            self._out(self.buf[self.pos:to])
        self.pos = to

    def _set_line(self, text):
        old = len(self.buf)
        self._move(0)
        self.buf = text
        self.pos = len(text)
        if self.echo:
            self._out(text + " " * max(0, old - len(text)))
            self._back(max(0, old - len(text)))

    def _history(self, step):
        if not self.history:
            self._out(BELL)
            return
        if self._hist is None:
            if step > 0:
                return
            self._saved = self.buf
            idx = len(self.history)
        else:
            idx = self._hist
        idx += step
        if idx < 0:
            self._out(BELL)
            return
        if idx >= len(self.history):
            self._hist = None
            self._set_line(self._saved)
            return
        self._hist = idx
        self._set_line(self.history[idx])

    def _remember(self, line):
        if not line.strip() or (self.history and self.history[-1] == line):
            return
        self.history.append(line)
        if len(self.history) > self.history_max:
            self.history.pop(0)

    # -- help and completion ------------------------------------------------------------------
    def _in_quotes(self):
        return self.buf[:self.pos].count('"') % 2 == 1

    def _help(self):
        items = self.complete(self.buf[:self.pos]) if self.complete else []
        self._out("?\r\n")
        self._out(format_help(items).replace("\n", "\r\n") + "\r\n")
        self.redisplay()

    def _tab(self):
        if self.complete is None:
            return
        before = self.buf[:self.pos]
        items = self.complete(before)
        i = max(before.rfind(" "), before.rfind("\t"))
        partial = before[i + 1:]
        words = [w for w, _ in items if not w.startswith("<") and w != "|"]
        if len(words) == 1:
            w = words[0]
            if w.startswith(partial):
                self._insert(w[len(partial):] + " ")
            return
        p = common_prefix(words)
        if len(p) > len(partial) and p.startswith(partial):
            self._insert(p[len(partial):])
            return
        if not items:
            self._out(BELL)
            return
        self._out("\r\n" + format_help(items).replace("\n", "\r\n") + "\r\n")
        self.redisplay()

    # -- the key dispatcher -----------------------------------------------------------------
    def _key(self, b):
        if self._esc is not None:
            return self._escape(b)
        if b == 10 and self._last_cr:
            self._last_cr = False
            return None
        self._last_cr = b == 13
        if b in (13, 10):
            line = self.buf
            self._out("\r\n")
            if self.echo:
                self._remember(line)
            self._hist = None
            return ("line", line)
        if 32 <= b < 127:
            ch = chr(b)
            if ch == "?" and self.complete is not None and self.echo and not self._in_quotes():
                self._help()
            else:
                self._insert(ch)
        elif b in (8, 127):
            self._delete_back(1)
        elif b == 1:
            self._move(0)
        elif b == 5:
            self._move(len(self.buf))
        elif b == 2:
            self._move(self.pos - 1)
        elif b == 6:
            self._move(self.pos + 1)
        elif b == 4:
            if not self.buf:        # Ctrl-D on an empty line: end of a terminal load
                self._out("\r\n")
                return ("line", EOT)
            self._delete_fwd()
        elif b == 11:
            n = len(self.buf) - self.pos
            self.buf = self.buf[:self.pos]
            self._tail(n)
        elif b == 21:
            self._move(len(self.buf))
            self._delete_back(len(self.buf))
        elif b == 23:
            i = self.pos
            while i > 0 and self.buf[i - 1] == " ":
                i -= 1
            while i > 0 and self.buf[i - 1] != " ":
                i -= 1
            self._delete_back(self.pos - i)
        elif b == 3:
            self._out("^C\r\n")
            self._hist = None
            return ("interrupt",)
        elif b == 12:
            self._out("\r\n")
            self.redisplay()
        elif b == 16:
            self._history(-1)
        elif b == 14:
            self._history(1)
        elif b == 9:
            if self.echo:
                self._tab()
        elif b == _ESC:
            self._esc = bytearray()
        return None

    def _escape(self, b):
        seq = self._esc
        seq.append(b)
        if len(seq) == 1:
            if b in (91, 79):   # '[' or 'O'
                return None
            self._esc = None    # a lone ESC-x: ignored
            return None
        if 48 <= b <= 57 and len(seq) < 6:   # digits of ESC [ n ~
            return None
        self._esc = None
        final = chr(b)
        num = bytes(seq[1:-1]).decode() if len(seq) > 2 else ""
        if final == "A":
            self._history(-1)
        elif final == "B":
            self._history(1)
        elif final == "C":
            self._move(self.pos + 1)
        elif final == "D":
            self._move(self.pos - 1)
        elif final == "H" or (final == "~" and num in ("1", "7")):
            self._move(0)
        elif final == "F" or (final == "~" and num in ("4", "8")):
            self._move(len(self.buf))
        elif final == "~" and num == "3":
            self._delete_fwd()
        return None
