"""Read the CDR log into Asterisk Master.csv columns or JSON.

    tools/cdr [--format csv|json] [-o FILE] PATH...

PATH is the log directory (STATE/cdr), the state directory, one segment
file (cdr-NNNNNNNN.log), or a raw flash image (any other file: every intact
record is carved out of it, ordered by its segment's sequence number, each
record once).  Records come oldest first; a torn tail is reported on stderr
and skipped.  Layout: tools/cdrformat.py (docs/cdr.md).

CSV columns (Asterisk cdr_csv, Master.csv):
    accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp,
    lastdata, start, answer, end, duration, billsec, disposition, amaflags,
    uniqueid, userfield
dcontext is the mode (gateway/survivable); disposition is Asterisk's
(ANSWERED, NO ANSWER, BUSY, FAILED); the precise one, the SIP status, the
release cause and side, the redirect and the RTP counters are in userfield.
Times are UTC "YYYY-MM-DD HH:MM:SS"; a record written before the clock was
set has empty times and its ms since boot in userfield.
"""
import csv
import io
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tools import cdrformat as F  # noqa: E402

COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
           "lastdata", "start", "answer", "end", "duration", "billsec", "disposition",
           "amaflags", "uniqueid", "userfield")
ASTERISK = {"answered": "ANSWERED", "busy": "BUSY", "no-answer": "NO ANSWER",
            "cancelled": "NO ANSWER", "failed": "FAILED", "rejected": "FAILED"}
CHANNEL = {"station": "SIP", "trunk": "SIP", "peer": "SIP", "fxs": "FXS", "fxo": "FXO"}


class CdrToolError(Exception):
    pass


def _segments_in(path):
    names = sorted(n for n in os.listdir(path) if n.startswith("cdr-") and n.endswith(".log"))
    return [os.path.join(path, n) for n in names]


def read_path(path, warn):
    """Record dicts of one PATH, oldest first."""
    if os.path.isdir(path):
        sub = os.path.join(path, "cdr")
        segs = _segments_in(sub) if os.path.isdir(sub) else _segments_in(path)
        if not segs:
            raise CdrToolError("%s: no CDR segments (cdr-NNNNNNNN.log) found" % path)
        out = []
        for s in segs:
            out.extend(_read_segment(s, warn))
        return out
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CdrToolError("%s: %s" % (path, e.strerror or e))
    if data[:4] == b"CDRS":
        return _segment_records(path, data, warn)
    return F.carve(data)


def _read_segment(p, warn):
    with open(p, "rb") as f:
        return _segment_records(p, f.read(), warn)


def _segment_records(p, data, warn):
    h, recs, torn = F.read_segment(data)
    if h is None:
        warn("%s: no valid segment header; skipped" % p)
        return []
    if torn:
        warn("%s: torn or damaged tail of %d bytes skipped" % (p, torn))
    return recs


def _utc(ms):
    import datetime
    t = datetime.datetime.fromtimestamp(ms / 1000.0, datetime.timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _channel(kind, name):
    if not kind:
        return ""
    return "%s/%s" % (CHANNEL.get(kind, "SIP"), name)


def csv_row(d):
    times = [_utc(d[k]) if d["clock_set"] and d[k] is not None else "" for k in ("start", "answer", "end")]
    extra = ["disposition=%s" % d["disposition"], "status=%d" % d["sip_status"]]
    for k in ("cause", "released_by", "redirect", "original_called", "codec"):
        if d[k]:
            extra.append("%s=%s" % (k, d[k]))
    if d["codec"]:
        extra.append("rtp=%d/%d/%d" % (d["rtp_sent"], d["rtp_received"], d["rtp_lost"]))
    if not d["clock_set"]:
        extra.append("uptime-start-ms=%s" % d["start"])
    if d["call_ids"]:
        extra.append("call-ids=%s" % ",".join(d["call_ids"]))
    dst_chan = _channel(d["dst_kind"], d["dst"])
    return ["", d["calling"], d["called"], d["mode"], '"" <%s>' % d["calling"],
            _channel(d["src_kind"], d["src"]), dst_chan, "Dial", dst_chan,
            times[0], times[1], times[2], str(d["duration"]), str(d["billsec"]),
            ASTERISK.get(d["disposition"], "FAILED"), "DOCUMENTATION", d["id"], ";".join(extra)]


def to_csv(records, header=False):
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    if header:
        w.writerow(COLUMNS)
    for d in records:
        w.writerow(csv_row(d))
    return buf.getvalue()


def to_json(records):
    return json.dumps(records, indent=1) + "\n"


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="tools/cdr", description="Read CDR logs (docs/cdr.md)")
    ap.add_argument("paths", nargs="+", metavar="PATH",
                    help="log directory, state directory, segment file or flash image")
    ap.add_argument("--format", choices=("csv", "json"), default="csv")
    ap.add_argument("--header", action="store_true", help="CSV: a first line naming the columns")
    ap.add_argument("-o", "--output", help="write here instead of stdout")
    a = ap.parse_args(argv)
    records = []
    try:
        for p in a.paths:
            records.extend(read_path(p, lambda m: print("cdr: " + m, file=sys.stderr)))
    except CdrToolError as e:
        print("cdr: %s" % e, file=sys.stderr)
        return 1
    text = to_json(records) if a.format == "json" else to_csv(records, a.header)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
