"""Issue 12 item 8, end to end: `show configuration | match "(a+)+b"` on a
configuration with a long run of a's used to backtrack for hours on the
cooperative scheduler, and SIP stopped answering.  Now the match is linear
and pauses for the scheduler: OPTIONS sent meanwhile get their 200."""
import time

from tests.harness import Booted, UdpClient, call_id, status, options


def test_a_catastrophic_console_pattern_does_not_starve_sip(tmp_path):
    cfg = tmp_path / "long.conf"
    cfg.write_text("set system domain-name %s.example\n" % ("a" * 40))
    with Booted.pipes(domain="example.com", extra=("--config", str(cfg))) as app:
        c = UdpClient(app.port)
        try:
            t0 = time.monotonic()
            app.send('show configuration | match "(a+)+b"')
            c.send(options("m1", app.port, c.port, "m1"))
            got = c.responses(lambda d: call_id(d) == "m1", 5.0, final=True)
            assert got and status(got[-1]) == 200, "SIP starved by the console"
            assert app.output() == "", "no line matches (a+)+b"
            out = app.command('show configuration | match "(a+)+a\\.example"')
            assert "domain-name %s.example;" % ("a" * 40) in out, out
            assert time.monotonic() - t0 < 10
            assert app.command("show log | match watchdog | count").strip() == "Count: 0 lines"
        finally:
            c.close()
