"""A one-line progress bar on stderr for the long steps of tools/mkimage and
tools/qemu-image (a plain line per step when stderr is not a terminal)."""
import sys


class Progress:
    def __init__(self, what, total, stream=None, width=30):
        self.what = what
        self.total = max(1, total)
        self.done = 0
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self._last = -1
        if not self.tty:
            self.stream.write("%s ...\n" % what)
            self.stream.flush()

    def step(self, n=1, label=""):
        self.done = min(self.total, self.done + n)
        if not self.tty:
            return
        pct = self.done * 100 // self.total
        if pct == self._last and self.done != self.total:
            return
        self._last = pct
        fill = self.width * self.done // self.total
        self.stream.write("\r%s [%s%s] %3d%% %-30s" % (
            self.what, "#" * fill, " " * (self.width - fill), pct, label[-30:]))
        self.stream.flush()

    def finish(self, note="done"):
        if self.tty:
            self.stream.write("\r%s [%s] 100%% %-30s\n" % (self.what, "#" * self.width, note))
        else:
            self.stream.write("%s: %s\n" % (self.what, note))
        self.stream.flush()
