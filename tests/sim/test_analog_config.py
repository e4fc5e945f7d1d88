"""Configuration of the analog agents: precise commit errors, live changes,
registration failures, and INVITEs challenged by the call server."""
from firmware.config.schema import ConfigError
from tests.sim.appliance import simulated
from tests.sim.analog_world import World
from tests.sim.test_analog_fxs import _hang_up_all

B = "set services convergence-services "


def _commit_error(app, lines):
    eng = app.config
    try:
        eng.load_file("t.conf", "\n".join(lines))
    except ConfigError as e:
        return str(e)
    raise AssertionError("commit accepted: %r" % (lines,))


def test_commit_errors_are_precise(tmp_path):
    app = simulated(tmp_path)
    try:
        base = [B + "station a extension 1001"]
        e = _commit_error(app, base + [B + "station a fxs-port 9"])
        assert "station a fxs-port 9: this board has no FXS port 9 (ports: 1 2 3 4)" in e, e
        e = _commit_error(app, base + [B + "station a fxs-port 1", B + "station b extension 1002",
                                       B + "station b fxs-port 1"])
        assert "station b fxs-port 1: FXS port 1 is already used by station a" in e, e
        e = _commit_error(app, base + [B + "station b extension 1001"])
        assert "extension already used by station a" in e, e
        e = _commit_error(app, base + [B + "trunk t fxo-port 3"])
        assert "trunk t fxo-port 3: this board has no FXO port 3" in e, e
        e = _commit_error(app, base + [B + "trunk t fxo-port 1", B + "trunk t did-target 2000"])
        assert "did-target 2000: no station or hunt group has this extension" in e, e
        e = _commit_error(app, base + [B + "trunk t fxo-port 1", B + "trunk t prefix 1"])
        assert "extension 1001 of station a starts with the trunk prefix" in e, e
        e = _commit_error(app, [B + "dial-plan pattern 9.1"])
        assert "pattern 9.1: '.' must end the pattern" in e, e
        e = _commit_error(app, [B + "analog hook-flash-min 900"])
        assert "hook-flash-min 900: must be less than hook-flash-max (800)" in e, e
        e = _commit_error(app, [B + "peer-call-server hq address hq-.example.com"])
        assert "a label may not start or end with -" in e, e
        e = _commit_error(app, [B + "media rtp-port-min 20001"])
        assert "must be even" in e, e
        # nothing of the refused commits was applied
        assert app.gateway_settings.stations == [] and app.gateway is None
    finally:
        app.close()


def test_wrong_password_fails_registration_and_show_gateway_says_so(tmp_path):
    w = World(tmp_path, seed=41, extra=(B + "station carol password wrong-password",))
    try:
        w.run(3000)
        r = w.gw.registrations["1003"]
        assert r.state == "failed" and r.status == 401, (r.state, r.status, w.seed)
        assert "1003" not in w.peer.bindings
        out = w.app.commands.execute(w.app, "show gateway")
        assert "1003" in out and "failed" in out, out
        # a live commit fixes it: the station registers again at once
        w.app.config.load_file("fix", B + "station carol password pw-carol-1\n")
        w.run(1000)
        assert w.gw.registrations["1003"].state == "registered", w.seed
        assert "1003" in w.peer.bindings
    finally:
        w.close()


def test_invites_challenged_by_the_call_server_are_authenticated(tmp_path):
    w = World(tmp_path, seed=42, challenge_invites=True)
    try:
        w.settle()
        w.call(1, "1002", 2)
        assert w.peer.counters["challenges"] >= 5      # 4 REGISTERs + the INVITE
        assert w.gw.ua.counters["auth_retries"] >= 5
        _hang_up_all(w, (1, 2))
        w.assert_no_leaks()
    finally:
        w.close()


def test_gateway_is_built_by_the_first_commit_on_a_running_appliance(tmp_path):
    from tests.sim.sippeer import SipPeer
    from tests.sim.analog_world import USERS, config_text, PEER_HOST
    app = simulated(tmp_path / "state", seed=43)
    peer = SipPeer(app.sched, USERS, host=PEER_HOST, network=app.network)
    try:
        app.sched.run(until=app.clock.now() + 1000)
        assert app.gateway is None            # nothing configured: no gateway code loaded
        port = peer.start()
        app.config.load_file("live", config_text(port))
        assert app.gateway is not None and app.gateway.started
        app.sched.run(until=app.clock.now() + 2000)
        assert sorted(peer.bindings) == ["1001", "1002", "1003", "1004"], peer.bindings
        app.hardware.sim.phones[1].off_hook()
        app.sched.run(until=app.clock.now() + 200)
        assert app.hardware.hw.fxs[1].tone == (350, 440)
    finally:
        peer.close()
        app.close()
