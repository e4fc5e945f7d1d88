"""The whole appliance on an impaired simulated network (tests/sim/simnet.py):
a WAN partition between the appliance and the peer call server stops calls
through the peer (the INVITE and its retransmissions die on the cut link and
the callee never rings), and after heal() calls go through again; a lossy,
jittery WAN still carries registrations and a call with two-way audio, by
retransmission.  Nothing is left behind.  (The partition is shorter than
the survivability failure timeout configured here.)"""
from tests.sim.analog_world import World, B, count_tone, drain
from tests.sim.test_analog_fxs import _hang_up_all


def test_a_wan_partition_stops_calls_through_the_peer_and_heal_restores_them(tmp_path):
    # a cut shorter than the survivability failure timeout (the monitor would
    # otherwise hand control to the local call server: tests/sim/test_survivability.py)
    w = World(tmp_path, seed=61, extra=(B + "survivability probe-interval 60",
                                        B + "survivability failure-timeout 120",
                                        B + "survivability failback-window 120"))
    try:
        w.settle()
        net = w.network
        net.partition("appliance", "peer")
        p1, p2 = w.phones[1], w.phones[2]
        p1.off_hook()
        w.run(200)
        p1.dial_dtmf("1002")
        w.run(40000)                   # Timer B: 64 * T1 = 32 s
        assert not p2.ringing and not p2.caller_ids, w.seed
        assert w.fxs(1).state != "talk" and w.fxs(2).state == "idle", (w.fxs(1).state, w.seed)
        st = net.stats("appliance", "peer")
        # the INVITE and its Timer A retransmissions (0.5, 1, 2, 4, 8, 16 s)
        assert st["partitioned"] >= 7, (st, w.seed)
        p1.on_hook()
        w.run(1200)
        net.heal()
        before = net.stats("appliance", "peer")["delivered"]
        w.call(1, "1002", 2)
        assert net.stats("appliance", "peer")["delivered"] > before
        _hang_up_all(w, (1, 2))
        w.assert_no_leaks()
    finally:
        w.close()


def test_a_lossy_jittery_wan_still_carries_registration_and_a_call(tmp_path):
    # the SRX default failure timeout: a 25 % lossy WAN is not declared dead
    w = World(tmp_path, seed=67, extra=(B + "survivability failure-timeout 32",))
    try:
        w.network.link("appliance", "peer", loss=0.25, latency=30, jitter=20)
        w.run(20000)                   # registrations, retransmitted where lost
        w.settle()
        w.call(1, "1002", 2)
        drain(w.phones[1].audio)
        drain(w.phones[2].audio)
        w.phone_talks(1, 1000)
        w.run(1000)
        got2, lost2 = drain(w.phones[2].audio)
        # the media flows between the appliance's own ports, off the WAN
        assert count_tone(got2, 1000) >= 45, (count_tone(got2, 1000), w.seed)
        st = w.network.stats("appliance", "peer")
        assert st["lost"] > 0 and st["delivered"] > 0, (st, w.seed)
        assert w.network.stats("appliance", "appliance")["delivered"] > 100
        _hang_up_all(w, (1, 2))
        w.assert_no_leaks()
    finally:
        w.close()
