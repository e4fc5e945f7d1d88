"""The survivability monitor on the simulated network (tests/sim/simnet.py),
with the recommended timers (probe every 1 s, failure after 3 s, failback
window 16 s at 80 %, hold-down 10 s): a WAN cut gives control to the local
call server within 5 s of the cut, and the survivability LED follows; after
the WAN is restored control goes back to the peer only after window +
hold-down; 50 % loss on the WAN for 10 minutes of virtual time changes
control at most once; every change is logged with its cause and `show
survivability` shows it.  Survival mode: FXS calls work at once in process,
PSTN break-out goes out of the FXO line, a call set up in survival mode keeps
its media after failback and can be hung up, and new calls go through the
peer again."""
from tests.sim.analog_world import World, B, count_tone, drain
from tests.sim.test_analog_fxs import _hang_up_all

RECOMMENDED = (B + "survivability probe-interval 1", B + "survivability failure-timeout 3",
               B + "survivability failback-window 16", B + "survivability failback-threshold 80",
               B + "survivability hold-down 10")


def _led(w):
    return w.app.hardware.hw.leds.pattern["survivability"]


def cut_and_restore(w):
    """-> (ms from the cut to LOCAL, ms from the restore to PEER)."""
    ctl = w.app.control
    net = w.network
    net.partition("appliance", "peer")
    t_cut = w.now()
    t_local = w.run_until(lambda: ctl.local, 10000, step=10)
    w.run(5000)
    net.heal()
    t_heal = w.now()
    t_peer = w.run_until(lambda: not ctl.local, 60000, step=10)
    return t_local - t_cut, t_peer - t_heal


def test_wan_cut_local_within_5_s_and_failback_after_window_and_hold_down(tmp_path):
    w = World(tmp_path, seed=71, extra=RECOMMENDED)
    try:
        w.settle()
        ctl = w.app.control
        assert not ctl.local and _led(w) == "off", (ctl.state, w.seed)
        down, back = cut_and_restore(w)
        print("seed %d: cut -> local %d ms, restore -> peer %d ms" % (w.seed, down, back))
        assert down <= 5000, (down, w.seed)
        assert back >= 16000 + 10000 - 1000, (back, w.seed)   # window + hold-down
        assert back <= 16000 + 10000 + 3000, (back, w.seed)
        causes = [c for t, s, c in ctl.history]
        assert any("nothing alive heard" in c or "passive" in c for c in causes), causes
        assert any("failback" in c for c in causes), causes
        assert _led(w) == "off", w.seed
        text = w.app.commands.execute(w.app, "show survivability")
        assert "Peer hq (priority 100): up" in text, text
        assert "Control: peer call server hq since" in text, text
        assert "%s:%d" % (w.peer.host, w.peer.port) in text and " ms " in text, text
    finally:
        w.close()


def test_the_led_is_on_in_survival_mode(tmp_path):
    w = World(tmp_path, seed=72, extra=RECOMMENDED)
    try:
        w.settle()
        w.network.partition("appliance", "peer")
        w.run_until(lambda: w.app.control.local, 10000)
        assert _led(w) == "on", w.seed
        assert w.app.survival.monitor.peers[0].state == "down"
    finally:
        w.close()


def test_half_the_probes_lost_for_10_minutes_changes_control_at_most_once(tmp_path):
    w = World(tmp_path, seed=73, extra=RECOMMENDED)
    try:
        w.settle()
        ctl = w.app.control
        before = len(ctl.history)
        w.network.link("appliance", "peer", loss=0.5)
        w.run(600000)
        changes = ctl.history[before:]
        print("seed %d: %d change(s) of control under 50 %% loss: %r" % (
            w.seed, len(changes), changes))
        assert len(changes) <= 1, (changes, w.seed)
        m = w.app.survival.monitor
        a = m.peers[0].addrs[0]
        assert a.sent > 100 and a.answered > 0, (a.sent, a.answered, w.seed)
    finally:
        w.close()


def _two_way_audio(w, a, b):
    drain(w.phones[a].audio)
    drain(w.phones[b].audio)
    w.phone_talks(a, 1000)
    w.phone_talks(b, 600)
    w.run(600)
    w.silence()
    ga, _ = drain(w.phones[a].audio)
    gb, _ = drain(w.phones[b].audio)
    return count_tone(gb, 1000), count_tone(ga, 600)


def test_survival_mode_local_calls_at_once_and_a_survival_call_outlives_failback(tmp_path):
    w = World(tmp_path, seed=74, extra=RECOMMENDED)
    try:
        w.settle()
        ctl = w.app.control
        w.network.partition("appliance", "peer")
        w.run_until(lambda: ctl.local, 5000)
        invites = len([m for m, u in w.peer.log if m == "INVITE"])
        # FXS to FXS at once, in process: no re-registration, nothing to the peer
        w.call(1, "1002", 2)
        n = _two_way_audio(w, 1, 2)
        assert n[0] >= 20 and n[1] >= 20, (n, w.seed)
        # PSTN break-out through FXO by the dial plan
        line = w.lines[1]
        p3 = w.phones[3]
        p3.off_hook()
        w.run(200)
        p3.dial_dtmf("95551234#")
        w.run_until(lambda: line.seized, 6000)
        # the WAN comes back: control returns, the survival call goes on
        w.network.heal()
        w.run_until(lambda: not ctl.local, 60000)
        assert w.fxs(1).state == "talk" and w.fxs(2).state == "talk", (w.fxs(1).state, w.seed)
        n = _two_way_audio(w, 1, 2)
        assert n[0] >= 20 and n[1] >= 20, (n, w.seed)
        assert len([m for m, u in w.peer.log if m == "INVITE"]) == invites, w.seed
        # hung up from the callee's side: both ends are released
        w.phones[2].on_hook()
        w.run(1500)
        assert w.fxs(1).state != "talk", (w.fxs(1).state, w.seed)
        _hang_up_all(w, (1, 3))
        w.settle()
        # new calls go through the peer again
        w.call(4, "1001", 1)
        assert len([m for m, u in w.peer.log if m == "INVITE"]) > invites, w.seed
        _hang_up_all(w, (4, 1))
        w.assert_no_leaks()
    finally:
        w.close()


def test_the_backup_peer_takes_control_before_the_local_call_server(tmp_path):
    from tests.sim.sippeer import SipPeer
    from tests.sim.analog_world import USERS, PEER_HOST
    backup_host = "192.0.2.20"
    w = World(tmp_path, seed=75, extra=RECOMMENDED + (B + "peer-call-server hq priority 10",))
    backup = None
    try:
        w.network.add_host("backup", backup_host)
        backup = SipPeer(None, USERS, host=backup_host, network=w.network)
        port = backup.bind()
        backup.start(w.app.sched)
        w.app.config.load_file("b.conf", "\n".join((
            B + "peer-call-server dr address " + backup_host,
            B + "peer-call-server dr port %d" % port,
            B + "peer-call-server dr priority 20")))
        w.settle()
        ctl = w.app.control
        assert ctl.peer["name"] == "hq", ctl.peer
        w.network.partition("appliance", "peer")
        w.run_until(lambda: ctl.peer is not None and ctl.peer["name"] == "dr", 5000)
        assert not ctl.local, w.seed
        w.run_until(lambda: sorted(backup.bindings) == ["1001", "1002", "1003", "1004"], 5000)
        w.network.partition("appliance", "backup")
        w.run_until(lambda: ctl.local, 5000)
        assert PEER_HOST != backup_host
    finally:
        if backup is not None:
            backup.close()
        w.close()


def test_a_call_through_the_peer_at_the_cut_keeps_media_and_hangs_up_from_either_side(tmp_path):
    for seed, who in ((76, 2), (77, 1)):
        d = tmp_path / str(seed)
        d.mkdir()
        w = World(d, seed=seed, extra=RECOMMENDED)
        try:
            w.settle()
            w.call(1, "1002", 2)
            w.network.partition("appliance", "peer")
            w.run_until(lambda: w.app.control.local, 5000)
            n = _two_way_audio(w, 1, 2)
            assert n[0] >= 20 and n[1] >= 20, (n, w.seed)
            other = 3 - who
            w.phones[who].on_hook()
            w.run(1500)
            # the BYE to the dead peer cannot arrive: the other port is released here
            assert w.fxs(other).state not in ("talk",), (w.fxs(other).state, w.seed)
            assert w.gw.counters["survival_local_hangups"] == 1, (w.gw.counters, w.seed)
            w.phones[other].on_hook()
            w.run(1200)
            w.assert_no_leaks()
        finally:
            w.close()
