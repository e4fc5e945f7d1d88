"""RFC 4475 torture messages against the running appliance, over UDP.

Boots `python -m firmware --board sim --sip-port 0 --domain example.com` with
its console on pipes, sends each of the 49 messages of
../shared/conformance/rfc4475 to 127.0.0.1, and compares the answer with
manifest.tsv:
  * a number: the first final response carrying the message's Call-ID has
    exactly that status (ALSO_ACCEPTED lists the manifest's "X also
    acceptable" notes);
  * "drop": no response within DROP_WAIT_S (a receive deadline);
  * "parse": any response or none, and the appliance must still answer an
    OPTIONS probe with 200 right after.
After the run the appliance must be alive, answer OPTIONS, and its log (read
with `show log` on the console) must not mention a crashed task.
"""
import os
import re

from tests.harness import (Booted, UdpClient, call_id, status, options,
                                        ROOT)

CORPUS = os.path.join(ROOT, "..", "shared", "conformance", "rfc4475")
DROP_WAIT_S = 1.0
ANSWER_WAIT_S = 3.0
ALSO_ACCEPTED = {"mismatch02": (400,)}


def load_manifest():
    rows = []
    with open(os.path.join(CORPUS, "manifest.tsv")) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            name, section, cls, expected, note = line.rstrip("\n").split("\t", 4)
            rows.append((name, section, expected, note))
    return rows


def _probe(client, n):
    cid = "probe-%d" % n
    client.send(options(cid, 0, client.port, "probe%d" % n))
    got = client.responses(lambda d: call_id(d) == cid, ANSWER_WAIT_S, final=True)
    return status(got[-1]) if got else None


def _cseq_line(data):
    for line in data.split(b"\r\n"):
        if line.lower().startswith(b"cseq:"):
            return line.split(b":", 1)[1].strip()
    return None


def run_corpus(app):
    client = UdpClient(app.port)
    results = []
    try:
        for n, (name, section, expected, note) in enumerate(load_manifest()):
            with open(os.path.join(CORPUS, name + ".dat"), "rb") as f:
                data = f.read()
            cid = call_id(data)
            cseq = _cseq_line(data)
            if cid is not None:
                match = (lambda c: lambda d: call_id(d) == c)(cid)
            else:
                match = (lambda c: lambda d: status(d) is not None and _cseq_line(d) == c)(cseq)
            client.drain()
            client.send(data)
            if expected == "drop":
                got = client.responses(match, DROP_WAIT_S)
                ok = not got
                seen = [status(d) for d in got]
            else:
                wait = ANSWER_WAIT_S if expected != "parse" else DROP_WAIT_S
                got = client.responses(match, wait, final=expected != "parse")
                seen = [status(d) for d in got]
                finals = [s for s in seen if s is not None and s >= 200]
                if expected == "parse":
                    ok = True
                else:
                    want = (int(expected),) + ALSO_ACCEPTED.get(name, ())
                    ok = bool(finals) and finals[0] in want
            probe = _probe(client, n)
            if probe != 200:
                ok = False
            results.append((name, expected, seen, probe, ok))
    finally:
        client.close()
    return results


def test_rfc4475_torture_corpus():
    with Booted.pipes(domain="example.com") as app:
        results = run_corpus(app)
        failed = [r for r in results if not r[4]]
        score = len(results) - len(failed)
        print("RFC 4475 score: %d/%d" % (score, len(results)))
        for name, expected, seen, probe, ok in results:
            print("  %-10s expected %-5s got %-14s probe %s %s" % (
                name, expected, ",".join(str(s) for s in seen) or "-", probe,
                "ok" if ok else "FAIL"))
        assert app.alive(), "appliance died: %s" % app.out[-2000:]
        client = UdpClient(app.port)
        try:
            assert _probe(client, 999) == 200
        finally:
            client.close()
        log = app.command("show log")
        stats = app.command("show sip statistics")
        print(stats)
        assert "crashed" not in log, log
        assert " error " not in log, log
        assert re.search(r"handler errors +0\b", stats), stats
        assert re.search(r"tu errors +0\b", stats), stats
        assert "SIP statistics" in stats
        assert len(results) == 49, "manifest has %d rows" % len(results)
        assert not failed, "RFC 4475: %d/49; failed: %s" % (
            score, ", ".join("%s (want %s, got %s, probe %s)" % (r[0], r[1], r[2], r[3])
                             for r in failed))
