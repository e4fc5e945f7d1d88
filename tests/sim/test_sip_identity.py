"""The appliance's SIP identity has one owner (firmware/sipstack/identity.py):
a live commit of `sip port` reaches the analog gateway's registrations, their
refreshes and the calls the peer call server sends, which used to keep the
old port (refreshes then failed with 408)."""
import socket

from tests.sim.analog_world import World, B


def _free_udp_tcp_port(network):
    """A port of the simulated network that neither UDP nor TCP uses."""
    for _ in range(20):
        u = network.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = network.socket(socket.AF_INET, socket.SOCK_STREAM)
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
    w = World(tmp_path, seed=53)
    try:
        w.settle()
        gw = w.gw
        old = w.app.sip_port
        new = _free_udp_tcp_port(w.network)
        w.app.config.load_file("port.conf", B + "sip port %d\n" % new)
        assert w.app.sip_port == new and w.app.identity.port == new
        # every FXS station registers again with a Contact on the new port
        w.run_until(lambda: all(r.state == "registered" for r in gw.registrations.values())
                    and all(":%d;" % new in w.peer.bindings.get(u, ("",))[0]
                            for u in ("1001", "1002", "1003", "1004")), 5000)
        # a refresh at 80-95 % of the expiry still succeeds (it failed with 408)
        r = gw.registrations["1001"]
        before = r.count
        w.run_until(lambda: r.count > before, 3700 * 1000, step=60000)
        assert r.state == "registered" and r.status == 200, (r.state, r.status, w.seed)
        assert ":%d;" % new in w.peer.bindings["1001"][0], w.peer.bindings["1001"]
        # the peer's INVITE reaches the port on the new port
        p1, p2 = w.phones[1], w.phones[2]
        p1.off_hook()
        w.run(200)
        p1.dial_dtmf("1002")
        w.run_until(lambda: p2.ringing, 5000)
        p2.off_hook()
        w.run_until(lambda: w.fxs(1).state == "talk" and w.fxs(2).state == "talk", 3000)
        p1.on_hook()
        w.run_until(lambda: w.fxs(2).state != "talk", 3000)
        p2.on_hook()
        assert old != new
    finally:
        w.close()
