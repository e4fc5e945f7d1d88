"""Routing defects of issue 13, on the virtual clock with the peer call
server up (PEER in control): emergency numbers leave through a local FXO
line as dialled (never through the peer, never rewritten by a prefix), a
second line takes them when the first is out of service; longest trunk
prefix first, then priority, overflow past a line that cannot take the call;
class of restriction for calls from no station; two peer call servers
commit as primary and backup."""
from firmware.config.schema import ConfigError
from firmware.voice.config import settings_of
from tests.sim.analog_world import World, B
from tests.sim.test_analog_fxo import _outbound
from tests.sim.test_analog_config import _commit_error
from tests.sim.appliance import simulated


def _peer_invites(w, user):
    return [u for m, u in w.peer.log if m == "INVITE" and ("sip:%s@" % user) in u]


def test_911_leaves_a_local_line_as_dialled_while_the_peer_is_up(tmp_path):
    # pstn2 (line 2): prefix 78 -> 8; the bug dialled 8911 on it
    w = World(tmp_path, seed=41, extra=(B + "trunk pstn1 priority 200",
                                         B + "trunk pstn2 prefix 78",
                                         B + "trunk pstn2 replace-prefix 8"))
    try:
        w.settle()
        assert not w.app.control.local, w.seed
        digits = _outbound(w, 1, "911", 2)
        assert digits == "911", (digits, w.seed)
        assert _peer_invites(w, "911") == [], (w.peer.log, w.seed)
        assert not w.lines[1].seized, w.seed
    finally:
        w.close()


def test_112_takes_the_second_line_when_the_first_is_out_of_service(tmp_path):
    w = World(tmp_path, seed=42)
    try:
        w.settle()
        w.app.hardware.port_state[("fxo", 1)] = "fault"
        digits = _outbound(w, 3, "112", 2)
        assert digits == "112", (digits, w.seed)
        assert not w.lines[1].seized, w.seed
        assert _peer_invites(w, "112") == [], w.seed
    finally:
        w.close()


def test_longest_prefix_first_then_priority_then_overflow(tmp_path):
    # pstn1 prefix 9, pstn2 prefix 91 (configured second): 9155512 takes pstn2
    w = World(tmp_path, seed=43, extra=(B + "trunk pstn2 prefix 91",
                                         B + "trunk pstn2 replace-prefix 1"))
    try:
        w.settle()
        digits = _outbound(w, 1, "9155512", 2)
        assert digits == "155512", (digits, w.seed)
        assert not w.lines[1].seized, w.seed
    finally:
        w.close()


def test_same_prefix_by_priority_and_overflow_when_out_of_service(tmp_path):
    w = World(tmp_path, seed=44, extra=(B + "trunk pstn2 prefix 9",
                                         B + "trunk pstn2 priority 10"))
    try:
        w.settle()
        digits = _outbound(w, 1, "95551234", 2)      # pstn2 has the better priority
        assert digits == "5551234", (digits, w.seed)
        assert not w.lines[1].seized, w.seed
    finally:
        w.close()
    w = World(tmp_path, seed=45, extra=(B + "trunk pstn2 prefix 9",
                                         B + "trunk pstn2 priority 10"))
    try:
        w.settle()
        w.app.hardware.port_state[("fxo", 2)] = "fault"
        digits = _outbound(w, 1, "95551234", 1)      # overflow to pstn1
        assert digits == "5551234", (digits, w.seed)
        assert not w.lines[2].seized, w.seed
    finally:
        w.close()


def test_calls_from_no_station_have_a_class_and_no_emergency(tmp_path):
    w = World(tmp_path, seed=46, extra=(B + "call-server unknown-source trunk",))
    try:
        b2b = w.app.callserver.b2b
        # a trunk / unknown-source call (caller None) may not go out of a line
        assert b2b._resolve("90114412345", None, True) == (403, "Forbidden (Class Of Restriction)")
        assert b2b._resolve("95551234", None, True)[0] == 403
        assert b2b._resolve("911", None, True) == (403, "Emergency Calls Only From Local Stations")
        st = w.app.callserver.settings.by_ext["1001"]
        assert b2b._resolve("911", st, False) == ("trunk", "911")
        assert b2b._resolve("90114412345", st, False) == ("trunk", "90114412345")
        w.app.config.load_file("c.conf", B + "call-server trunk-call-class local")
        assert b2b._resolve("95551234", None, True) == ("trunk", "95551234")
        assert b2b._resolve("90114412345", None, True)[0] == 403
    finally:
        w.close()


def test_two_peer_call_servers_commit_as_primary_and_backup(tmp_path):
    app = simulated(tmp_path)
    try:
        e = _commit_error(app, [B + "peer-call-server a address 192.0.2.10",
                                B + "peer-call-server b address 192.0.2.20"])
        assert "peer-call-server b priority 100: same priority as peer-call-server a" in e, e
        app.config.load_file("p.conf", "\n".join([
            B + "peer-call-server a address 192.0.2.10", B + "peer-call-server a priority 20",
            B + "peer-call-server b address 192.0.2.20", B + "peer-call-server b priority 10"]))
        s = settings_of(app.config.committed)
        assert [p["name"] for p in s.peers] == ["b", "a"], s.peers
        assert s.peer["name"] == "b"
        assert app.control.peer["name"] == "b", app.control.peer
    finally:
        app.close()


def test_a_sip_phone_911_leaves_a_local_line_while_the_peer_is_up(tmp_path):
    from tests.sim.sipphone import PhoneNet
    w = World(tmp_path, seed=47, extra=(B + "station sam extension 2001",
                                         B + "station sam password pw-sam-2001"))
    net = None
    try:
        w.settle()
        assert not w.app.control.local, w.seed
        net = PhoneNet(w.app.sched, seed=47, network=w.network)
        p = net.add("2001", "pw-sam-2001", "hq.example", ("127.0.0.1", w.app.sip_port))
        net.start()
        c = p.call("911")
        w.run_until(lambda: w.lines[1].seized or w.lines[2].seized, 8000)
        w.run_until(lambda: w.fxo(1).state in ("talk", "alerting"), 6000)
        from tests.sim.test_analog_fxo import _dialled_digits
        from tests.sim.analog_world import drain
        w.run(2000)
        frames, _ = drain(w.lines[1].rx)
        assert _dialled_digits(frames) == "911", (_dialled_digits(frames), w.seed)
        assert _peer_invites(w, "911") == [], w.seed
        p.hangup(c)
        w.run(2000)
    finally:
        if net is not None:
            net.close()
        w.close()
