"""The serial console: prompt, line input and command dispatch.

Runs as one scheduler task over a console stream (firmware/term.py).  On a
terminal it echoes and edits; from a pipe it reads plain lines.  End of input
shuts the appliance down cleanly.
"""
from firmware.commands import CommandError

MAX_LINE = 512  # longer input lines are cut and the user told


class Console:
    def __init__(self, app, stream):
        self.app = app
        self.stream = stream
        self.buf = bytearray()
        self.prompt_shown = False

    def prompt(self):
        return "%s@%s> " % (self.app.user, self.app.hostname)

    def write(self, text):
        if text:
            self.stream.write(text.replace("\n", "\r\n") if self.stream.is_tty else text)

    async def run(self):
        self.write(self.prompt())
        while True:
            await self.app.sched.readable(self.stream)
            data = self.stream.read()
            if not data:
                self.write("\n")
                self.app.shutdown("end of console input")
                return
            for b in data:
                line = self._feed(b)
                if line is not None:
                    self.handle(line)
                    if self.app.stopping:
                        return
                    self.write(self.prompt())

    def _feed(self, b):
        """Feed one byte; returns a complete line or None."""
        if b in (10, 13):
            if b == 10 and self._last_cr:
                self._last_cr = False
                return None
            self._last_cr = b == 13
            if self.stream.is_tty:
                self.write("\n")
            line = self.buf.decode()
            self.buf = bytearray()
            return line
        self._last_cr = False
        if b in (8, 127):
            if self.buf:
                self.buf = self.buf[:-1]
                if self.stream.is_tty:
                    self.write("\b \b")
            return None
        if b == 3:  # Ctrl-C drops the line
            self.buf = bytearray()
            self.write("^C\n")
            return ""
        if b < 32 or len(self.buf) >= MAX_LINE:
            return None
        self.buf.append(b)
        if self.stream.is_tty:
            self.stream.write(bytes((b,)))
        return None

    _last_cr = False

    def handle(self, line):
        try:
            out = self.app.commands.execute(self.app, line.strip())
        except CommandError as e:
            out = "error: %s" % e
        if out:
            self.write(out if out.endswith("\n") else out + "\n")
