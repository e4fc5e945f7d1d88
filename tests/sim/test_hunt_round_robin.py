"""Hunt groups default to round robin (issue 14 item 6, as the SRX): each
call starts at the member after the one the previous call started at,
whether or not that member answered."""
from tests.sim.cs_world import CsWorld, B


def test_default_hunt_order_is_round_robin(tmp_path):
    w = CsWorld(tmp_path, seed=171, sip_exts=("2001", "2002", "2003", "2004"),
                extra=(B + "hunt-group desk extension 700",
                       B + "hunt-group desk member 2002", B + "hunt-group desk member 2003",
                       B + "hunt-group desk member 2004", B + "hunt-group desk ring-timeout 5"))
    try:
        assert w.cs.settings.group_by_ext["700"].type == "round-robin"
        w.register_all()
        first = []
        for ext in ("2002", "2003", "2004"):
            w.phones[ext].ring_ms = 300
            w.phones[ext].on_event = lambda p, c, ev, ext=ext: first.append(ext) \
                if ev == "incoming" else None
        order = []
        for _ in range(4):
            del first[:]
            c = w.phones["2001"].call("700")
            w.run_until(lambda: c.state == "connected", 5000)
            order.append(first[0])
            w.phones["2001"].hangup(c)
            w.run_until(lambda: c.state == "terminated", 3000)
            w.run(500)
        assert order == ["2002", "2003", "2004", "2002"], order
        # a member who does not answer still moves the start on
        w.phones["2003"].ring_ms = None
        del first[:]
        c = w.phones["2001"].call("700")          # starts at 2003: rings 5 s, then 2004
        w.run_until(lambda: c.state == "connected", 9000)
        assert first[:2] == ["2003", "2004"], first
        w.phones["2001"].hangup(c)
        w.run_until(lambda: c.state == "terminated", 3000)
        w.phones["2003"].ring_ms = 300
        del first[:]
        c = w.phones["2001"].call("700")
        w.run_until(lambda: c.state == "connected", 5000)
        assert first[0] == "2004", first
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=4)
    finally:
        w.close()
