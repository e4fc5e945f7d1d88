"""`show sip modules`: the router's table is the one place that says who
handles what, in order, with what each module took."""
from tests.sim.cs_world import CsWorld


def test_the_router_table_of_a_branch_with_phones_and_analog_ports(tmp_path):
    w = CsWorld(tmp_path, seed=17, sip_exts=("2001", "2002"), fxs=True)
    try:
        w.register_all()
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 5000)
        w.phones["2001"].hangup(c)
        w.run(2000)
        out = w.cli("show sip modules")
        names = [l.split()[1] for l in out.split("\n")[2:] if l[:6].strip().isdigit()]
        assert names == ["security", "dialogs", "gateway", "registrar", "events",
                         "call-server", "outbound-proxy", "built-in"], out
        taken = dict((m.name, w.app.sip.router.taken[m.name]) for m in w.app.sip.router.modules)
        # two REGISTERs per phone (401, then 200); the INVITE twice (407, then with credentials)
        assert taken["registrar"] == 4 and taken["call-server"] == 2, taken
        assert taken["dialogs"] >= 2, taken       # the caller's ACK and BYE
        assert taken["built-in"] == 0, taken
        assert taken["outbound-proxy"] == 0, taken   # no peer: standby
        assert taken["events"] == 0 and "no (no SUBSCRIBE yet)" in out, out
        allow = w.app.sip.allow()
        for m in ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "REFER", "SUBSCRIBE"):
            assert m in allow, allow
    finally:
        w.close()
