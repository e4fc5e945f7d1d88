"""Console: the call detail records on flash.

    show cdr [last N] [station NAME] [number DIGITS] [disposition D]
    show cdr summary      calls, answer-seizure ratio, average duration, busiest hour,
                          the dispositions and the log's counters

Records are read from the log on flash one segment at a time; only the
last N matching ones are kept (MAX_SHOW).
"""
from firmware.compat import const
from firmware.commands import CommandError
from firmware.cdr.record import DISPOSITIONS

DEFAULT_SHOW = const(20)
MAX_SHOW = const(1000)
_FILTERS = (("last", "<count>", "Show the last N records (default 20, at most 1000)"),
            ("station", "<name>", "Records of a station (name, extension or FXS port)"),
            ("number", "<digits>", "Records whose calling, called or original number contains DIGITS"),
            ("disposition", "<disposition>", "answered, busy, no-answer, failed, cancelled, rejected"))


def _args(app, args, partial):
    """Completer: filter keywords, then each one's value."""
    if args and len(args) % 2 == 1:
        word = args[-1]
        if word == "disposition":
            return [(d, "") for d in DISPOSITIONS if d.startswith(partial)]
        for k, hint, help_text in _FILTERS:
            if k == word:
                return [(hint, help_text)]
        return []
    used = args[0::2]
    return [(k, h) for k, _, h in _FILTERS if k not in used and k.startswith(partial)]


def parse_filters(args):
    """{"last": n, "station": s, "number": d, "disposition": d}; CommandError names a bad word."""
    out = {"last": DEFAULT_SHOW}
    names = [f[0] for f in _FILTERS]
    i = 0
    while i < len(args):
        k = args[i]
        if k not in names:
            raise CommandError("show cdr: unknown filter '%s' (possible: %s)" % (k, ", ".join(names)))
        if i + 1 >= len(args):
            raise CommandError("show cdr %s: missing value" % k)
        v = args[i + 1]
        if k == "last":
            try:
                n = int(v)
            except ValueError:
                n = 0
            if not 1 <= n <= MAX_SHOW:
                raise CommandError("show cdr last %s: a count 1..%d" % (v, MAX_SHOW))
            v = n
        elif k == "disposition" and v not in DISPOSITIONS:
            raise CommandError("show cdr disposition %s: one of %s" % (v, ", ".join(DISPOSITIONS)))
        out[k] = v
        i += 2
    return out


def _station_keys(app, name):
    """What a station filter matches: its name, extension and FXS port."""
    keys = [name]
    s = getattr(app, "callserver_settings", None)
    st = None
    if s is not None:
        st = s.by_ext.get(name)
        if st is None:
            for x in s.stations:
                if getattr(x, "name", None) == name:
                    st = x
    if st is not None:
        keys.append(st.name)
        keys.append(st.extension)
        if getattr(st, "fxs_port", None) is not None:
            keys.append("fxs:%s" % st.fxs_port)
    return keys


def matches(rec, f, station_keys=None):
    d = f.get("disposition")
    if d is not None and rec.disposition != d:
        return False
    n = f.get("number")
    if n is not None and not (n in rec.calling or n in rec.called or n in rec.original_called):
        return False
    if station_keys is not None:
        ends = (rec.src, rec.dst, rec.calling, rec.called, "%s:%s" % (rec.src_kind, rec.src),
                "%s:%s" % (rec.dst_kind, rec.dst))
        if not [k for k in station_keys if k in ends]:
            return False
    return True


def stamp(app, rec, ms):
    if ms is None:
        return "-"
    if rec.clock_set:
        return app.time.local(ms, zone=False)
    return "uptime %ds" % (ms // 1000)


def _end(kind, name):
    return "%s %s" % (kind, name) if kind else (name or "-")


def show_cdr(app, args):
    f = parse_filters(args)
    keys = _station_keys(app, f["station"]) if "station" in f else None
    last = []
    for rec in app.cdr.log.records():
        if matches(rec, f, keys):
            last.append(rec)
            if len(last) > f["last"]:
                last.pop(0)
    if not last:
        return "No call records%s." % (" match" if len(f) > 1 else "")
    rows = [("Start", "Calling", "Called", "Source", "Destination", "Disposition", "Dur", "Bill",
             "Id")]
    for r in last:
        called = r.called + (" (%s %s)" % (r.redirect or "from", r.original_called)
                             if r.original_called else "")
        rows.append((stamp(app, r, r.start), r.calling or "-", called or "-",
                     _end(r.src_kind, r.src), _end(r.dst_kind, r.dst),
                     "%s %d" % (r.disposition, r.sip_status), str(r.duration()),
                     str(r.billsec()), r.id))
    return _table(rows)


def _table(rows):
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(r[i].ljust(w[i]) for i in range(len(r))).rstrip() for r in rows)


def summarize(app, records):
    """The figures of show cdr summary, from an iterable of records."""
    calls = answered = billsec = 0
    by_disp = {}
    hours = [0] * 24
    untimed = 0
    for r in records:
        calls += 1
        by_disp[r.disposition] = by_disp.get(r.disposition, 0) + 1
        if r.disposition == "answered":
            answered += 1
            billsec += r.billsec()
        if r.clock_set and r.start is not None:
            off = app.time.zone_at(r.start)[0] if app is not None else 0
            hours[(r.start + off * 60000) // 3600000 % 24] += 1
        else:
            untimed += 1
    return {"calls": calls, "answered": answered, "billsec": billsec, "dispositions": by_disp,
            "hours": hours, "untimed": untimed}


def show_summary(app, args):
    s = summarize(app, app.cdr.log.records())
    calls, answered = s["calls"], s["answered"]
    lines = ["Call records on flash: %d" % calls]
    if calls:
        lines.append("Answer-seizure ratio: %d.%d%% (%d of %d answered)" % (
            answered * 100 // calls, answered * 1000 // calls % 10, answered, calls))
    else:
        lines.append("Answer-seizure ratio: - (no calls)")
    if answered:
        avg = s["billsec"] * 10 // answered
        lines.append("Average duration of answered calls: %d.%d s" % (avg // 10, avg % 10))
    else:
        lines.append("Average duration of answered calls: - (none answered)")
    h = s["hours"]
    top = max(h)
    if top:
        i = h.index(top)
        lines.append("Busiest hour: %02d:00-%02d:00 (%d calls)" % (i, (i + 1) % 24, top))
    else:
        lines.append("Busiest hour: - (no record has the time of day)")
    if s["untimed"]:
        lines.append("Records without the time of day (clock not set): %d" % s["untimed"])
    lines.append("Dispositions: " + (", ".join("%s %d" % (d, s["dispositions"][d])
                                                for d in DISPOSITIONS if d in s["dispositions"])
                                     or "-"))
    lines.append("")
    lines.append("Log:")
    for k, v in app.cdr.statistics():
        lines.append("  %s: %s" % (k, v))
    lines.append("Call-event stream:")
    for k, v in app.calls.statistics():
        lines.append("  %s: %s" % (k, v))
    return "\n".join(lines)


def _need_log(fn):
    def run(app, args):
        if getattr(app, "cdr", None) is None:
            raise CommandError("call records are off: delete system accounting cdr disable")
        return fn(app, args)
    return run


def register_commands(reg):
    reg.register("show cdr", _need_log(show_cdr),
                 "Show call detail records: last N, filtered by station, number or disposition",
                 args=_args)
    reg.register("show cdr summary", _need_log(show_summary),
                 "Show calls, answer-seizure ratio, average duration, busiest hour, log counters")
