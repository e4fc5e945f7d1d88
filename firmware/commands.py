"""The command registry shared by the console and every feature module.

A command is a sequence of keywords (`show version`) bound to a handler
`handler(ctx, args) -> str` and a help text.  Feature modules register their
own show/request commands here; the console resolves unambiguous
abbreviations (`sh ver`) against the registry.
"""


class CommandError(Exception):
    pass


class Registry:
    def __init__(self):
        self.commands = {}   # tuple(words) -> (handler, help)

    def register(self, words, handler, help_text):
        key = tuple(words.split()) if isinstance(words, str) else tuple(words)
        self.commands[key] = (handler, help_text)

    def completions(self, prefix_words):
        """Keywords that can follow prefix_words, with help, sorted."""
        n = len(prefix_words)
        out = {}
        for key, (_, text) in self.commands.items():
            if len(key) > n and key[:n] == tuple(prefix_words):
                word = key[n]
                out[word] = text if len(key) == n + 1 else out.get(word, "")
        return sorted(out.items())

    def resolve(self, words):
        """Expand abbreviations; returns (key, remaining args) or raises CommandError."""
        key = []
        i = 0
        best = None
        while i < len(words):
            options = [w for w, _ in self.completions(key)]
            word = words[i]
            matches = [o for o in options if o.startswith(word)]
            if word in options:
                matches = [word]
            if not matches:
                break
            if len(matches) > 1:
                raise CommandError("'%s' is ambiguous: %s" % (word, ", ".join(matches)))
            key.append(matches[0])
            i += 1
            if tuple(key) in self.commands:
                best = (tuple(key), i)
        if best is None:
            if key:
                raise CommandError("incomplete command: %s ... (possible: %s)" % (
                    " ".join(key), ", ".join(w for w, _ in self.completions(key))))
            raise CommandError("unknown command: %s" % (words[0] if words else ""))
        return best[0], words[best[1]:]

    def execute(self, ctx, line):
        words = line.split()
        if not words:
            return ""
        key, args = self.resolve(words)
        handler = self.commands[key][0]
        return handler(ctx, args)
