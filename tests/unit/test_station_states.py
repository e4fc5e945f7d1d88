"""`show sip registrations all` on the in-process appliance (virtual clock,
sim board): every configured station with its state, SIP and analog, with
the local call server and with a peer call server in control."""
from tests.sim.appliance import simulated

BASE = "set services convergence-services "


def _cli(app, *lines):
    app.config.mode = "configure"
    out = [app.commands.execute(app, "run " + l[4:]) if l.startswith("run ") else
           app.config.commands.execute(app, l) for l in lines]
    app.config.mode = "operational"
    return out


def _rows(app):
    out = app.commands.execute(app, "show sip registrations all")
    return [l.split(None, 3) for l in out.split("\n")]


def test_every_station_is_listed_with_its_state(tmp_path):
    app = simulated(tmp_path)
    assert app.commands.execute(app, "show sip registrations all") == "no station is configured"
    out = _cli(app, BASE + "station bob extension 2001", BASE + "station bob password Bobs-phone-7",
               BASE + "station alice extension 1001", BASE + "station alice fxs-port 1", "commit")
    assert out[-1] == "commit complete"
    app.sched.run(until=app.clock.now() + 2000)
    rows = _rows(app)
    assert rows[0] == ["Station", "Extension", "Type", "State"]
    assert ["bob", "2001", "SIP", "not registered"] in rows
    assert ["alice", "1001", "FXS",
            "FXS port 1, served by this appliance (no registration needed)"] in rows
    # a peer call server in control: the analog station registers there
    out = _cli(app, BASE + "peer-call-server hq address 127.0.0.3",
               BASE + "station alice password Alices-phone-7",
               # nothing answers at 127.0.0.3: give the monitor time before it fails over
               BASE + "survivability failure-timeout 30", "commit")
    assert out[-1] == "commit complete", out
    app.sched.run(until=app.clock.now() + 3000)
    assert not app.control.local            # the peer is in control until it fails
    row = [r for r in _rows(app) if r[0] == "alice"][0]
    assert row[3] == "FXS port 1, registering at the peer", row
    assert "{" not in app.commands.execute(app, "show sip registrations all")
