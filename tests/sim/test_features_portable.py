# portable: micropython
"""Feature codes on both interpreters (virtual clock, simulated board): an
analog station dials 601 + an extension and 40 1 through the local call
server, hears the confirmation tone, a call to it follows the forward (or is
refused by DND), and the state comes back after a reboot from the state
directory.  Under MicroPython this proves features.py, forward.py and
feature_config.py run there."""
from firmware import cli
from firmware.app import Appliance
from firmware.compat import Random
from firmware.sched import VirtualClock
from tests.portable import tmpdir, rmtree
from tests.sim.appliance import network, APPLIANCE_HOST, SIP_PORT

B = "set services convergence-services "
CONFIG = "\n".join((
    B + "station a extension 1001", B + "station a fxs-port 1",
    B + "station b extension 1002", B + "station b fxs-port 2",
    B + "station c extension 1003", B + "station c fxs-port 3",
)) + "\n"


def _boot(state, conf, seed):
    opts = cli.parse(["--board", "sim", "--state", state, "--console", "none",
                      "--sip-host", APPLIANCE_HOST, "--sip-port", str(SIP_PORT),
                      "--config", conf])
    app = Appliance(opts, clock=VirtualClock(), rng=Random(seed), network=network(seed))
    app.boot()
    app.start()
    return app


def _run(app, ms):
    app.sched.run(until=app.clock.now() + ms)


def _dial(app, port, digits):
    """Dial digits off hook on an FXS port; the state it ends in."""
    phone = app.hardware.sim.phones[port]
    phone.off_hook()
    _run(app, 300)
    phone.dial_dtmf(digits)
    end = app.clock.now() + 15000
    fxs = app.gateway.fxs[port]
    while fxs.state not in ("tone", "calling", "talk") and app.clock.now() < end:
        _run(app, 100)
    return fxs


def test_analog_codes_forward_and_dnd_survive_a_reboot():
    state = tmpdir("features")
    conf = state + "/boot.conf"
    with open(conf, "w") as f:
        f.write(CONFIG)
    app = _boot(state, conf, 11)
    try:
        _run(app, 2000)
        fxs = _dial(app, 2, "6011003")          # 1002 forwards all to 1003
        assert fxs.state == "tone" and fxs.last_status == 480, (fxs.state, fxs.last_status)
        heard = set()
        for _ in range(10):
            _run(app, 50)
            heard.add(app.hardware.sim.phones[2].tone())
        assert (350, 440) in heard and (480, 620) not in heard, heard
        app.hardware.sim.phones[2].on_hook()
        _run(app, 1000)
        fxs = _dial(app, 1, "1002")             # 1001 calls 1002: 1003 rings
        _run(app, 3000)
        assert app.gateway.fxs[3].state == "ringing", app.gateway.fxs[3].state
        assert app.gateway.fxs[2].state == "idle", app.gateway.fxs[2].state
        app.hardware.sim.phones[1].on_hook()
        _run(app, 2000)
        fxs = _dial(app, 3, "401")              # 1003 turns DND on
        assert fxs.last_status == 480
        app.hardware.sim.phones[3].on_hook()
        _run(app, 1000)
        assert "on" in app.commands.execute(app, "show call-server forwarding")
    finally:
        app.close()
    app = _boot(state, conf, 12)
    try:
        fw = app.callserver.forwarding
        by_ext = app.callserver.settings.by_ext
        assert fw.target(by_ext["1002"], "all") == "1003"
        assert fw.dnd(by_ext["1003"]) and not fw.dnd(by_ext["1002"])
        assert fw.counters["state_write_errors"] == 0
    finally:
        app.close()
        rmtree(state)
