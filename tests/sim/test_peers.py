"""Peer call servers by DNS name, on the simulated network with a simulated
DNS server (tests/sim/dnsserver.py) and the virtual clock: every A/AAAA
address is probed, SRV (RFC 3263) finds the port when none is configured,
the FXS stations register at the resolved address, a name that stops
resolving counts as a passive failure, a changed record is picked up when
its TTL expires; a change to the peer's configuration restarts the monitor;
FXS refreshes fall at 80-100 % of the interval and the re-registrations
after a failback are spread, never a burst."""
from tests.sim.analog_world import World, B, PEER_HOST
from tests.sim.dnsserver import SimDns
from tests.sim.test_survivability import RECOMMENDED

DNS_HOST = "192.0.2.53"
NAME = "hq.example.com"


def _world(tmp_path, seed, zone, extra=()):
    w = World(tmp_path, seed=seed, extra=RECOMMENDED + (
        "set system name-server " + DNS_HOST,
        B + "peer-call-server hq address " + NAME) + tuple(extra))
    w.dns = SimDns(w.network, DNS_HOST)
    w.dns.zone.update(zone)
    w.dns.start(w.app.sched)
    return w


def _registered(w):
    return sorted(w.peer.bindings) == ["1001", "1002", "1003", "1004"]


def test_a_peer_by_name_is_resolved_probed_at_every_address_and_registered_to(tmp_path):
    w = _world(tmp_path, 81, {NAME: [("A", 300, PEER_HOST), ("AAAA", 300, "2001:db8::10")]})
    try:
        w.run_until(lambda: _registered(w), 10000)
        ctl = w.app.control
        assert not ctl.local and ctl.peer["address"] == PEER_HOST, (ctl.peer, w.seed)
        m = w.app.survival.monitor
        addrs = [a.addr for a in m.peers[0].addrs]
        assert addrs == [(PEER_HOST, w.peer.port), ("2001:db8::10", w.peer.port)], addrs
        w.run(5000)
        v4 = m.peers[0].addrs[0]
        assert v4.sent >= 4 and v4.answered >= 4, (v4.sent, v4.answered)
        assert m.peers[0].addrs[1].sent + m.peers[0].addrs[1].skipped >= 4   # probed too
        assert ("hq.example.com", 1) in w.dns.asked and ("hq.example.com", 28) in w.dns.asked
        text = w.app.commands.execute(w.app, "show survivability")
        assert "DNS hq.example.com: %s:%d [2001:db8::10]:%d" % (
            PEER_HOST, w.peer.port, w.peer.port) in text, text
        text = w.app.commands.execute(w.app, "show dns")
        assert "hq.example.com" in text and PEER_HOST in text and DNS_HOST in text, text
        # calls from the peer's resolved address reach the ports
        w.call(1, "1002", 2)
        assert w.fxs(2).state == "talk", (w.fxs(2).state, w.seed)
    finally:
        w.close()


def test_srv_gives_the_target_and_port_when_no_port_is_configured(tmp_path):
    w = _world(tmp_path, 82, {}, extra=(
        "delete services convergence-services peer-call-server hq port",))
    try:
        port = w.peer.port
        w.dns.zone["_sip._udp." + NAME] = [("SRV", 60, (10, 0, port, "sip1." + NAME)),
                                          ("SRV", 60, (20, 0, 5999, "sip2." + NAME))]
        w.dns.zone["sip1." + NAME] = [("A", 300, PEER_HOST)]
        w.dns.zone["sip2." + NAME] = [("A", 300, "192.0.2.99")]
        w.run_until(lambda: _registered(w), 15000)
        m = w.app.survival.monitor
        assert [a.addr for a in m.peers[0].addrs] == [(PEER_HOST, port), ("192.0.2.99", 5999)]
        assert w.app.control.peer["port"] == port
    finally:
        w.close()


def test_a_name_that_stops_resolving_is_a_passive_failure_and_ttl_expiry_re_resolves(tmp_path):
    w = _world(tmp_path, 83, {NAME: [("A", 20, PEER_HOST)]})
    try:
        w.run_until(lambda: _registered(w), 10000)
        ctl = w.app.control
        asked = len(w.dns.asked)
        # the record changes: seen when the 20 s TTL expires, not before
        w.dns.zone[NAME] = [("A", 20, PEER_HOST), ("A", 20, "192.0.2.77")]
        m = w.app.survival.monitor
        w.run(15000)
        assert len(m.peers[0].addrs) == 1
        w.run(7000)
        assert len(w.dns.asked) > asked, "the answer's TTL expired: asked again"
        assert [a.addr[0] for a in m.peers[0].addrs] == [PEER_HOST, "192.0.2.77"]
        assert not ctl.local, "one live address of two keeps the peer in control"
        # the name server fails and the peer falls silent: a DNS failure is counted
        w.dns.mode = "servfail"
        w.network.partition("appliance", "peer")
        w.run_until(lambda: ctl.local, 5000)
        w.run_until(lambda: w.app.survival.counters["dns_failures"] >= 1, 25000)
        assert "DNS" in " ".join(str(e) for e in w.app.log.entries[-20:])
        # the stale addresses are kept and probed: the peer comes back
        assert len(m.peers[0].addrs) == 2
        w.dns.mode = "answer"
        w.network.heal()
        w.run_until(lambda: not ctl.local, 60000)
        assert ctl.peer["address"] == PEER_HOST
    finally:
        w.close()


def test_dns_silence_and_a_dead_peer_give_control_to_the_local_call_server(tmp_path):
    w = _world(tmp_path, 84, {NAME: [("A", 300, PEER_HOST)]})
    try:
        w.run_until(lambda: _registered(w), 10000)
        w.dns.mode = "drop"
        w.app.dns.res.cache.clear()     # the next probe round finds no cached answer
        w.app.survival._resolve(w.app.survival.peers[0], "address", w.app.survival.generation)
        w.network.partition("appliance", "peer")
        w.run_until(lambda: w.app.control.local, 5000)
        causes = " ".join(c for t, s, c in w.app.control.history)
        assert "nothing alive" in causes or "passive" in causes, causes
    finally:
        w.close()


def test_a_name_that_never_resolves_leaves_the_local_call_server_in_control(tmp_path):
    w = _world(tmp_path, 85, {})
    try:
        w.run(8000)
        ctl = w.app.control
        assert ctl.local, ctl.cause
        s = w.app.survival
        assert s.counters["dns_failures"] >= 1 and s.monitor.peers[0].state == "down"
        text = w.app.commands.execute(w.app, "show survivability")
        assert "DNS hq.example.com: not resolved" in text, text
        assert w.peer.bindings == {}
    finally:
        w.close()


def test_a_peer_configuration_change_restarts_the_monitor_cleanly(tmp_path):
    w = World(tmp_path, seed=86, extra=RECOMMENDED)
    try:
        w.run_until(lambda: _registered(w), 10000)
        s = w.app.survival
        old = s.monitor
        w.app.config.load_file("r.conf", B + "peer-call-server hq registrar-address " + PEER_HOST
                               + "\n" + B + "peer-call-server hq register-expires 600")
        assert s.monitor is not old, "a changed peer must restart the monitor"
        assert s.monitor.peers[0].addrs[0].sent >= 1
        w.run(10000)
        assert not w.app.control.local
        assert old.peers[0].addrs[0].sent <= 12, "the old monitor stopped probing"
        w.run_until(lambda: _registered(w), 10000)
    finally:
        w.close()


def test_refreshes_spread_over_80_to_100_percent_and_failback_re_registers_spread(tmp_path):
    w = World(tmp_path, seed=87, extra=RECOMMENDED + (
        B + "peer-call-server hq register-expires 100",))
    try:
        w.run_until(lambda: _registered(w), 10000)
        regs = w.gw.registrations.values()
        due = [r.timer.deadline - r.registered_at for r in regs]
        assert all(80000 <= d <= 100000 for d in due), due
        assert len(set(due)) > 1, due
        # failover, then failback: the re-registrations are spread
        w.network.partition("appliance", "peer")
        w.run_until(lambda: w.app.control.local, 5000)
        before = len([m for m, u in w.peer.log if m == "REGISTER"])
        w.network.heal()
        w.run_until(lambda: not w.app.control.local, 60000)
        t0 = w.now()
        times = []
        n = before
        while w.now() < t0 + 5000:
            w.run(10)
            k = len([m for m, u in w.peer.log if m == "REGISTER"])
            times.extend([w.now()] * (k - n))
            n = k
        assert len(times) >= 4, times
        assert max(times) - min(times) >= 500, "a burst: %r" % times
    finally:
        w.close()


def _tcp_world(tmp_path, seed):
    from tests.sim.tcppeer import TcpPeer
    w = World(tmp_path, seed=seed, extra=RECOMMENDED)
    w.tcp = TcpPeer(w.network, "192.0.2.30")
    port = w.tcp.start(w.app.sched)
    w.app.config.load_file("tcp.conf", "\n".join((
        B + "peer-call-server hq address 192.0.2.30",
        B + "peer-call-server hq port %d" % port,
        B + "peer-call-server hq transport tcp")))
    return w


def test_a_tcp_peer_gets_one_connection_reused_and_reopened_after_it_closed(tmp_path):
    w = _tcp_world(tmp_path, 88)
    try:
        tcp = w.tcp
        w.run_until(lambda: sorted(tcp.bindings) == ["1001", "1002", "1003", "1004"], 10000)
        w.run(5000)
        probes = [t for m, t in tcp.log if m == "OPTIONS"]
        assert len(probes) >= 5 and set(probes) == {"TCP"}, probes
        assert set(t for m, t in tcp.log if m == "REGISTER") == {"TCP"}
        assert tcp.accepted == 1, "every message reuses the one connection"
        assert not w.app.control.local
        # the peer closes it: the next probe opens a new one, control stays
        tcp.drop_connections()
        w.run(3000)
        assert tcp.accepted == 2, tcp.accepted
        assert not w.app.control.local
        assert w.app.sip.transports.counters["tcp_connected"] == 2
    finally:
        w.tcp.close()
        w.close()


def test_a_tcp_connection_reset_or_refused_is_a_passive_failure(tmp_path):
    w = _tcp_world(tmp_path, 89)
    try:
        w.run_until(lambda: sorted(w.tcp.bindings) == ["1001", "1002", "1003", "1004"], 10000)
        w.run(3000)
        ctl = w.app.control
        # the peer's host reboots: connections reset, new ones refused
        w.network.partition("appliance", "192.0.2.30", reset=True)
        t0 = w.now()
        t = w.run_until(lambda: ctl.local, 5000, step=10)
        causes = " ".join(c for _, _, c in ctl.history)
        assert "tcp connection re" in causes, causes
        assert t - t0 < 3000, "faster than the failure timeout: %d ms" % (t - t0)
        assert w.app.sip.transports.counters["tcp_conn_errors"] >= 1
    finally:
        w.tcp.close()
        w.close()


def test_icmp_port_unreachable_from_a_dead_peer_process_is_a_passive_failure(tmp_path):
    # the peer's host is up but its SIP process is gone: the host answers our
    # datagrams with ICMP port unreachable, seen by a connected UDP socket
    w = World(tmp_path, seed=90, extra=RECOMMENDED + (
        B + "survivability failure-timeout 10",))
    try:
        w.run_until(lambda: _registered(w), 10000)
        w.run(3000)
        ctl = w.app.control
        w.peer.close()
        t0 = w.now()
        t = w.run_until(lambda: ctl.local, 5000, step=10)
        assert t - t0 <= 3000, "ICMP, not the 10 s failure timeout: %d ms" % (t - t0)
        causes = " ".join(c for _, _, c in ctl.history)
        assert "ICMP port unreachable" in causes, causes
        assert w.app.survival.counters["icmp_errors"] >= 1
    finally:
        w.close()
