"""Text layout for show commands, portable to MicroPython (whose str has no ljust)."""


def table(rows):
    """Left-aligned columns separated by two spaces; rows are tuples of values."""
    if not rows:
        return ""
    widths = [0] * len(rows[0])
    for r in rows:
        for i, c in enumerate(r):
            n = len(str(c))
            if n > widths[i]:
                widths[i] = n
    fmts = ["%-" + str(w) + "s" for w in widths]
    return "\n".join("  ".join(fmts[i] % (c,) for i, c in enumerate(r)).rstrip() for r in rows)


def duration(ms):
    """'1 day, 2:03:04' style."""
    s = ms // 1000
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    out = "%d:%02d:%02d" % (h, m, s)
    return ("%d day%s, " % (d, "" if d == 1 else "s") + out) if d else out
