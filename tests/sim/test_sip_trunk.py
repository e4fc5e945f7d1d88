"""SIP trunks to a service provider (firmware/voice/trunks.py) on the
simulated network and the virtual clock.  The provider (ITSP) is a SipPeer
(registrar with digest, proxy that challenges INVITEs); a "PSTN" phone
registers with it.  Covered: the trunk registers with digest; the OPTIONS
health check takes it out of service after N misses and back after the
recovery time; a station's call leaves through the trunk with the prefix
handled and the INVITE's 407 answered; two trunks of one prefix are tried by
priority, with overflow past a busy one and past one out of service; a DID
call from the provider rings the station with that DID, an unassigned DID
the auto attendant, and a number not on the trunk gets 404; emergency
numbers leave through a SIP trunk as dialled and are refused inbound;
`show sip-trunks` and the commit errors."""
from firmware.config.schema import ConfigError
from tests.sim.cs_world import CsWorld, B
from tests.sim.sippeer import SipPeer
from sip.message import parse

ITSP = "192.0.2.70"
ITSP2 = "192.0.2.71"
PSTN_NUMBER = "4085551234"
TRUNK_USER = "branch1"
TRUNK_PW = "trunk-pw-1"
USERS = {TRUNK_USER: TRUNK_PW, PSTN_NUMBER: "pstn-pw-1"}


class BusyPeer(SipPeer):
    """A provider whose every new INVITE is answered 486 (all channels busy)."""

    def _proxy(self, req, addr):
        if req.method == "INVITE" and (req.to is None or req.to.tag is None):
            self._reply(req, 486, "Busy Here")
            return
        SipPeer._proxy(self, req, addr)


def _trunk(name, host, port, *more):
    t = B + "sip-trunk %s " % name
    return (t + "proxy " + host, t + "port %d" % port, t + "health-check interval 5",
            t + "health-check failures 2", t + "health-check recovery 10") + tuple(
        t + m for m in more)


class TrunkWorld(CsWorld):
    def __init__(self, tmp_path, seed, trunks=(("itsp", ITSP, SipPeer, ()),), extra=()):
        self.providers = {}
        # the providers must exist (and have ports) before the configuration
        from tests.sim.appliance import network
        net = network(seed)
        lines = []
        for name, host, cls, more in trunks:
            net.add_host(name, host)
            p = cls(None, USERS, realm="itsp.example", host=host, network=net,
                    challenge_invites=True)
            p.bind()
            self.providers[name] = p
            lines.extend(_trunk(name, host, p.port, *more))
        import tests.sim.cs_world as cw
        real = cw.simulated
        cw.simulated = lambda *a, **k: real(*a, net=net, **k)
        try:
            CsWorld.__init__(self, tmp_path, seed=seed, sip_exts=("2001", "2002"),
                             extra=tuple(lines) + tuple(extra))
        finally:
            cw.simulated = real
        for p in self.providers.values():
            p.start(self.app.sched)
            p.gateways.append(("408555", "127.0.0.1", self.app.sip_port))
        itsp = self.providers["itsp"]
        self.pstn = self.net.add(PSTN_NUMBER, USERS[PSTN_NUMBER], "%s:%d" % (ITSP, itsp.port),
                                 (ITSP, self.providers["itsp"].port))
        self.net.start()

    def close(self):
        for p in self.providers.values():
            p.close()
        CsWorld.close(self)

    def trunk(self, name="itsp"):
        return self.app.sip_trunks.trunks[name]


def test_the_trunk_registers_and_the_health_check_takes_it_out_and_back(tmp_path):
    w = TrunkWorld(tmp_path, 101, trunks=(("itsp", ITSP, SipPeer, (
        "registration enable", "username " + TRUNK_USER, "password " + TRUNK_PW)),))
    try:
        itsp = w.providers["itsp"]
        w.run_until(lambda: TRUNK_USER in itsp.bindings, 5000)
        ts = w.trunk()
        assert ts.reg.state == "registered" and itsp.counters["challenges"] >= 1
        w.run(11000)
        assert ts.state == "in-service" and ts.answered >= 2, (ts.state, ts.answered)
        text = w.cli("show sip-trunks")
        assert "SIP trunk itsp: in-service" in text and "registration: registered" in text, text
        # the provider goes silent: out of service after 2 misses (probe every 5 s,
        # each one given up after 32 s of retransmissions)
        w.network.partition("appliance", "itsp")
        w.run_until(lambda: ts.state == "out-of-service", 60000)
        assert "2 in a row" in ts.cause, ts.cause
        assert "out-of-service" in w.cli("show sip-trunks")
        # back: the next check after the recovery time finds it
        w.network.heal()
        w.run_until(lambda: ts.state == "in-service", 45000)
        assert "answered" in ts.cause, ts.cause
    finally:
        w.close()


def _call(w, phone, number, ms=3000):
    c = w.phones[phone].call(number)
    w.run(ms)
    return c


def test_a_station_calls_out_through_the_trunk_with_digest_and_prefix(tmp_path):
    w = TrunkWorld(tmp_path, 102, trunks=(("itsp", ITSP, SipPeer, (
        "username " + TRUNK_USER, "password " + TRUNK_PW, "prefix 8")),))
    try:
        w.register_all(("2001",))
        w.pstn.register()
        w.run_until(lambda: w.pstn.registered, 5000)
        _call(w, "2001", "8" + PSTN_NUMBER)
        itsp = w.providers["itsp"]
        invites = [u for m, u in itsp.log if m == "INVITE"]
        assert invites and invites[0].startswith("sip:%s@%s" % (PSTN_NUMBER, ITSP)), invites
        assert itsp.counters["challenges"] >= 1        # the 407 was answered
        w.run_until(lambda: "connected" in w.cli("show calls"), 5000)
        assert w.app.sip_trunks.counters["calls_out"] == 1
        w.phones["2001"].hangup_all()
        w.run(3000)
    finally:
        w.close()


def test_same_prefix_by_priority_overflow_past_busy_and_out_of_service(tmp_path):
    w = TrunkWorld(tmp_path, 103, trunks=(
        ("itsp", ITSP, SipPeer, ("username " + TRUNK_USER, "password " + TRUNK_PW,
                                 "prefix 8", "priority 20")),
        ("cheap", ITSP2, BusyPeer, ("username " + TRUNK_USER, "password " + TRUNK_PW,
                                    "prefix 8", "priority 10"))))
    try:
        w.register_all(("2001",))
        w.pstn.register()
        w.run_until(lambda: w.pstn.registered, 5000)
        # the preferred trunk answers busy: the call overflows to the other one
        _call(w, "2001", "8" + PSTN_NUMBER)
        cheap, itsp = w.providers["cheap"], w.providers["itsp"]
        assert [m for m, u in cheap.log if m == "INVITE"], cheap.log
        w.run_until(lambda: "connected" in w.cli("show calls"), 5000)
        assert [m for m, u in itsp.log if m == "INVITE"]
        w.phones["2001"].hangup_all()
        w.run(3000)
        # the preferred trunk out of service: not tried at all
        w.network.partition("appliance", "cheap")
        w.run_until(lambda: w.trunk("cheap").state == "out-of-service", 60000)
        before = len([m for m, u in cheap.log if m == "INVITE"])
        w.network.heal()        # (the next check is only after the recovery time)
        _call(w, "2001", "8" + PSTN_NUMBER)
        assert len([m for m, u in cheap.log if m == "INVITE"]) == before
        w.run_until(lambda: "connected" in w.cli("show calls"), 5000)
        w.phones["2001"].hangup_all()
        w.run(3000)
    finally:
        w.close()


def test_did_calls_from_the_provider_and_emergency_numbers(tmp_path):
    w = TrunkWorld(tmp_path, 104, trunks=(("itsp", ITSP, SipPeer, (
        "did 4085550102", "did 4085550199", "priority 5")),), extra=(
        B + "station s2002 did 4085550102",))
    try:
        w.register_all(("2001", "2002"))
        w.pstn.register()
        w.run_until(lambda: w.pstn.registered, 5000)
        c = w.pstn.call("4085550102")
        w.run_until(lambda: c.state in ("connected", "confirmed", "answered") or
                    "connected" in w.cli("show calls"), 5000)
        assert w.app.sip_trunks.counters["calls_in"] == 1
        w.pstn.hangup_all()
        w.run(3000)
        # an unassigned DID, no attendant: 404 Unassigned DID; a number that is
        # no DID of this trunk: 404 too, with its own reason
        for number, reason in (("4085550199", "Unassigned DID"),
                               ("4085550100", "Not A DID Of This Trunk")):
            c = w.pstn.call(number)
            w.run(3000)
            got = [st for st, meth in w.providers["itsp"].responses if meth == "INVITE"]
            assert got and got[-1] == 404, got
        assert w.app.sip_trunks.counters["refused_in"] == 2
        # emergency: leaves through the SIP trunk as dialled (no prefix needed)
        _call(w, "2001", "911")
        invites = [u for m, u in w.providers["itsp"].log if m == "INVITE"]
        assert any(u.startswith("sip:911@") for u in invites), invites
        w.phones["2001"].hangup_all()
        w.run(3000)
    finally:
        w.close()


def test_an_unassigned_did_rings_the_auto_attendant(tmp_path):
    w = TrunkWorld(tmp_path, 105, trunks=(("itsp", ITSP, SipPeer, ("did 4085550199",)),),
                   extra=(B + "auto-attendant extension 2999",))
    try:
        w.pstn.register()
        w.run_until(lambda: w.pstn.registered, 5000)
        w.pstn.call("4085550199")
        w.run(3000)
        assert w.app.sip_trunks.counters["calls_in"] == 1
        text = w.cli("show calls")
        assert "4085551234 (trunk)  2999    attendant" in text, text
    finally:
        w.close()


def _commit_error(app, lines):
    try:
        app.config.load_file("t.conf", "\n".join(lines))
    except ConfigError as e:
        return str(e)
    raise AssertionError("commit accepted: %r" % (lines,))


def test_commit_errors_for_sip_trunks(tmp_path):
    w = CsWorld(tmp_path, seed=106, sip_exts=("2001",))
    try:
        t = B + "sip-trunk itsp "
        e = _commit_error(w.app, [t + "port 5060"])
        assert "proxy" in e, e
        e = _commit_error(w.app, [t + "proxy sip.itsp.example", t + "registration enable"])
        assert "sip-trunk itsp registration enable: registration needs username and password" in e, e
        e = _commit_error(w.app, [t + "proxy 192.0.2.70", t + "transport sctp"])
        assert "transport sctp" in e, e
        e = _commit_error(w.app, [t + "proxy 192.0.2.70", t + "prefix 2"])
        assert "sip-trunk itsp prefix 2: extension 2001 starts with the trunk prefix" in e, e
        e = _commit_error(w.app, [t + "proxy 192.0.2.70", t + "did 5550100",
                                  B + "sip-trunk b proxy 192.0.2.71", B + "sip-trunk b did 5550100"])
        assert "did 5550100: DID already on sip-trunk" in e, e
        e = _commit_error(w.app, [t + "proxy 192.0.2.70", t + "replace-prefix 1"])
        assert "replace-prefix needs a prefix" in e, e
        e = _commit_error(w.app, [t + "proxy 192.0.2.70", t + "health-check interval 2"])
        assert "interval 2" in e, e
        assert w.cli("show sip-trunks") == "no SIP trunk is configured"
    finally:
        w.close()
