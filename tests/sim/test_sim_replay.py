# portable: micropython
# mpy-heapsize: 4M
"""A whole-appliance simulation replays exactly from its seed: the call
server, two simulated phones and a lossy, jittery, reordering, duplicating
network run a registration, a call and its hang-up twice with the same seed,
and every delivered datagram (time, source, destination, first line) and the
phones' counters are identical; another seed gives another run."""
from tests.portable import tmpdir, rmtree
from tests.sim.appliance import simulated, network, APPLIANCE_HOST, SIP_PORT
from tests.sim.sipphone import PhoneNet

B = "set services convergence-services "
DOMAIN = "branch.example.com"
TRACE = 1500
LOSS = 0.15


def scenario(seed):
    state = tmpdir("replay")
    conf = state + "/replay.conf"
    with open(conf, "w") as f:
        f.write("\n".join([B + "sip domain " + DOMAIN,
                           B + "station a extension 2001", B + "station a password Secret-2001",
                           B + "station b extension 2002", B + "station b password Secret-2002",
                           ""]))
    net = network(seed, trace=TRACE)
    app = phones = None
    try:
        app = simulated(state + "/state", seed, args=("--config", conf), net=net)
        phones = PhoneNet(app.sched, seed=seed, network=net)
        server = (APPLIANCE_HOST, SIP_PORT)
        a = phones.add("2001", "Secret-2001", DOMAIN, server)
        b = phones.add("2002", "Secret-2002", DOMAIN, server)
        app.sched.max_tasks += phones.tasks_needed()
        phones.start()
        net.link([a.host, b.host], "appliance", loss=LOSS, latency=5, jitter=20,
                 reorder=0.05, dup=0.02)

        def run(ms):
            app.sched.run(until=app.clock.now() + ms)

        a.register()
        b.register()
        run(10000)
        c = a.call("2002")
        run(10000)
        a.hangup(c)
        run(40000)
        lost = net.stats(a.host, "appliance")["lost"] + net.stats("appliance", a.host)["lost"]
        return net.traced(), phones.counters(), lost, app.sched.crashes
    finally:
        if phones is not None:
            phones.close()
        if app is not None:
            app.close()
        rmtree(state)


def test_the_same_seed_replays_the_whole_appliance_run_and_another_seed_does_not():
    t1, c1, lost1, crashes1 = scenario(31)
    lines = [e[3] for e in t1]
    assert len(t1) > 20 and len(t1) < TRACE, len(t1)       # the ring kept the whole run
    assert [ln for ln in lines if ln.startswith("INVITE ")], lines
    assert [ln for ln in lines if ln.startswith("BYE ")], lines
    assert lost1 > 0 and crashes1 == 0, (lost1, crashes1)
    t2, c2, lost2, crashes2 = scenario(31)
    assert t1 == t2, "seed 31 did not replay: first difference at %r" % (
        [i for i in range(min(len(t1), len(t2))) if t1[i] != t2[i]][:1],)
    assert c1 == c2 and lost1 == lost2
    t3, c3, lost3, crashes3 = scenario(32)
    assert t3 != t1, "seed 32 gave seed 31's run"
