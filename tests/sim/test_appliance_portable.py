# portable: micropython
"""The whole appliance on the virtual clock, on both interpreters: boot with a
configuration file, chip bring-up, dial tone, an outbound call attempt whose
peer never answers, an inbound FXO call with caller ID, and no leaks or task
crashes afterwards, on the simulated network (tests/sim/simnet.py).  Under
MicroPython this is the proof that the runtime, the SIP stack, the drivers
and the chip models fit and run together."""
import gc

from firmware import cli
from firmware.app import Appliance
from firmware.compat import Random
from firmware.sched import VirtualClock
from tests.portable import tmpdir, rmtree
from tests.sim.appliance import network, APPLIANCE_HOST, SIP_PORT
from firmware.proxy.monitor import MAX_OUTSTANDING

B = "set services convergence-services "
CONFIG = "\n".join((
    B + "peer-call-server hq address %s",
    B + "peer-call-server hq port %d",
    B + "peer-call-server hq registration disable",   # no REGISTER retries toward the absent peer
    B + "station a extension 1001", B + "station a fxs-port 1", B + "station a display-name Alice",
    B + "station b extension 1002", B + "station b fxs-port 2",
    B + "trunk t fxo-port 1", B + "trunk t did-target 1002", B + "trunk t prefix 9",
)) + "\n"


PEER_HOST = "192.0.2.10"


def _free_udp_port(rng):
    # a port nobody answers on: the peer call server is deliberately absent
    return 20000 + rng.randbelow(20000)


def test_whole_appliance_runs_a_day_in_the_life_without_leaks():
    rng = Random(7)
    state = tmpdir("state")
    conf = state + "/boot.conf"
    with open(conf, "w") as f:
        f.write(CONFIG % (PEER_HOST, _free_udp_port(rng)))
    net = network(7)
    net.add_host("peer", PEER_HOST)       # up, but nothing listens on the peer's port
    opts = cli.parse(["--board", "sim", "--state", state, "--console", "none",
                      "--sip-host", APPLIANCE_HOST, "--sip-port", str(SIP_PORT),
                      "--config", conf])
    app = Appliance(opts, clock=VirtualClock(), rng=Random(7), network=net)
    app.boot()
    app.start()

    def run(ms):
        app.sched.run(until=app.clock.now() + ms)

    try:
        run(2000)
        assert app.commands.execute(app, "show ports").count("ready") == 6
        gw = app.gateway
        phone = app.hardware.sim.phones[1]
        phone.off_hook()
        run(200)
        assert app.hardware.hw.fxs[1].tone == (350, 440)      # dial tone
        phone.dial_dtmf("1002")
        run(1000)
        assert gw.fxs[1].state == "calling", (gw.fxs[1].state, app.commands.execute(app, "show log"))
        assert net.stats("appliance", "peer")["no_listener"] >= 1    # the INVITE went there
        line = app.hardware.sim.lines[1]
        line.ring(caller_id=("5551234", "PSTN CALLER"))
        run(5000)
        assert gw.fxo[1].last_cid == ("5551234", "PSTN CALLER")
        phone.on_hook()
        run(60000)                                             # every SIP timer runs out
        assert gw.fxs[1].state == "idle"
        # what is left are the survivability monitor's OPTIONS probes to the
        # silent peer, bounded; nothing else
        probes = len([t for t in app.sip.layer.transactions() if t.kind == "nict"
                      and t.request is not None and t.request.method == "OPTIONS"])
        assert probes <= MAX_OUTSTANDING + 6, probes
        assert gw.leaks() == {"sessions": 0, "transactions": probes, "dialogs": 0, "rtp": 0}
        log = app.commands.execute(app, "show log")
        assert "crashed" not in log, log
        assert app.sched.crashes == 0
        gc.collect()
    finally:
        app.close()
        rmtree(state)
