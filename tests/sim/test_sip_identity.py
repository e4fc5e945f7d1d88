"""The appliance's SIP identity has one owner (firmware/sipstack/identity.py):
a live commit of `sip port` reaches the analog gateway's registrations and
calls, which used to keep the old port (refreshes then failed with 408)."""
import socket

from tests.sim.cs_world import CsWorld, B


def _free_udp_tcp_port():
    for _ in range(20):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise AssertionError("no free port")


def test_new_sip_port_reaches_fxs_registrations_refreshes_and_calls(tmp_path):
    w = CsWorld(tmp_path, seed=53, sip_exts=("2001",), fxs=True)
    try:
        gw = w.app.gateway
        w.register_all()
        w.run_until(lambda: len(gw.registrations) == 2 and
                    all(r.state == "registered" for r in gw.registrations.values()), 5000)
        old = w.app.sip_port
        new = _free_udp_tcp_port()
        w.app.config.load_file("port.conf", B + "sip port %d\n" % new)
        assert w.app.sip_port == new and w.app.identity.port == new
        assert "Call server in control: local call server (127.0.0.1:%d)" % new in w.cli("show gateway")
        # the FXS stations register again, to the new port and with a new Contact
        w.run_until(lambda: len(gw.registrations) == 2 and
                    all(r.state == "registered" and r.dest == ("127.0.0.1", new)
                        for r in gw.registrations.values()), 5000)
        for name in ("a1001", "a1002"):
            contacts = [b.contact for b in w.cs.registrar.contacts(name)]
            assert any(":%d;line=fxs" % new in c for c in contacts), contacts
        # the SIP phone follows the new port
        ph = w.phones["2001"]
        ph.server = ("127.0.0.1", new)
        ph.register()
        w.run(2000)
        assert ph.registered and w.cs.registrar.contacts("s2001")
        # a refresh at 80 % of the expiry still succeeds (it failed with 408)
        r = gw.registrations["1001"]
        before = r.count
        w.run_until(lambda: r.count > before, 3700 * 1000, step=60000)
        assert r.state == "registered" and r.status == 200, (r.state, r.status)
        # and the phone calls the analog phone through the new port
        w.run_until(lambda: gw.port_ready("fxs", 1), 3000)
        sim = w.app.hardware.sim
        c = ph.call("1001")
        w.run_until(lambda: sim.phones[1].ringing, 5000)
        sim.phones[1].off_hook()
        w.run_until(lambda: c.state == "connected" and gw.fxs[1].state == "talk", 3000)
        ph.hangup(c)
        w.run_until(lambda: gw.fxs[1].state != "talk", 3000)
        sim.phones[1].on_hook()
        assert old != new
    finally:
        w.close()
