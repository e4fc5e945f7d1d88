"""Issue 12 item 1, end to end: the booted appliance (python -m firmware) draws
its tags from the OS random source, so two boots given the same --seed answer
the same OPTIONS with different To tags, and the seed is logged as ignored."""
import re

from tests.harness import Booted, UdpClient, call_id, status, options


def _to_tags(app, n=3):
    c = UdpClient(app.port)
    tags = []
    try:
        for i in range(n):
            cid = "rnd%d" % i
            c.send(options(cid, app.port, c.port, cid))
            got = c.responses(lambda d: call_id(d) == cid, 3.0, final=True)
            assert got and status(got[-1]) == 200, got
            m = re.search(rb"^To:.*;tag=([0-9a-zA-Z]+)", got[-1], re.M | re.I)
            tags.append(m.group(1))
    finally:
        c.close()
    return tags


def test_two_boots_with_the_same_seed_draw_different_tags():
    with Booted.pipes(domain="example.com", extra=("--seed", "4475")) as a:
        first = _to_tags(a)
        log = a.command("show log")
    with Booted.pipes(domain="example.com", extra=("--seed", "4475")) as b:
        second = _to_tags(b)
    assert len(set(first)) == 3
    assert not set(first) & set(second), (first, second)
    assert "--seed 4475 ignored" in log, log
