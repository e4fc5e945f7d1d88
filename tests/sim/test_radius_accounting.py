"""RADIUS accounting of a whole simulated appliance on the virtual clock:
the configuration (secret hidden, precise errors), Start / Interim-Update /
Stop of calls from the call-event stream, retransmission with back-off and
failover between two servers, a backlog on flash while every server is down
that survives a reboot and is replayed in order with nothing lost or
duplicated, a Stop for a call live at the reboot, and `show accounting
radius`.  The servers are tests/sim/radius_server.py (pyrad decodes)."""
import pytest

from firmware.config.schema import ConfigError
from tests.sim.appliance import simulated, network
from tests.sim.radius_server import SimRadiusServer

A = "set system accounting radius "
S1, S2 = "192.0.2.10", "192.0.2.11"
T0 = 1796212800000       # 2026-12-02 12:00 UTC


def _config(app, *extra):
    app.config.load_file("radius.conf", "\n".join((
        A + "server %s secret one-secret" % S1,
        A + "server %s secret two-secret" % S2,
        A + "server %s port 1812" % S2,
        A + "timeout 2", A + "retries 2", A + "dead-time 30",
        A + "nas-identifier branch-7") + extra))


class World:
    def __init__(self, tmp_path, seed=3, configure=True, extra=(), wall=T0):
        self.net = network(seed)
        self.app = simulated(tmp_path, seed=seed, net=self.net)
        self.app.time.set(wall, self.app.clock.now())
        self.r1 = SimRadiusServer(self.net, self.app.sched, S1, b"one-secret")
        self.r2 = SimRadiusServer(self.net, self.app.sched, S2, b"two-secret", port=1812)
        if configure:
            _config(self.app, *extra)
        self.run(10)

    def run(self, ms):
        self.app.sched.run(until=self.app.clock.now() + ms)

    def call(self, calling="1001", called="1002", answer=True):
        c = self.app.calls
        rec = c.setup("callserver", calling, called, ("station", "alice"), ("station", "bob"),
                      "cid-%s-%s" % (calling, called))
        if answer:
            self.run(1000)
            c.answered(rec)
        return rec

    def show(self):
        return self.app.commands.execute(self.app, "show accounting radius")


def test_configuration_hides_the_secret_and_refuses_bad_values(tmp_path):
    w = World(tmp_path, configure=False)
    app = w.app
    assert "no server configured" in w.show()
    _config(app, A + "interim-interval 300")
    w.run(10)
    shown = app.commands.execute(app, "show configuration system accounting")
    assert "one-secret" not in shown and "$9$" in shown
    assert "port 1812;" in shown and "interim-interval 300;" in shown
    for line, why in ((A + "interim-interval 30", "interim-interval must be 0 (off) or 60..86400"),
                      (A + "server 192.0.2.20 port 1813", "needs a secret"),
                      (A + "timeout 31", "value out of range 1..30"),
                      (A + "backlog-size 5", "value out of range 16..4096")):
        with pytest.raises(ConfigError) as e:
            app.config.load_file("bad.conf", line)
        assert why in str(e.value), (line, str(e.value))
    r = app.radius
    assert [s.addr for s in r.client.servers] == [(S1, 1813), (S2, 1812)]
    assert r.client.servers[0].secret == b"one-secret"
    assert (r.client.timeout_ms, r.client.retries, r.client.dead_ms) == (2000, 2, 30000)
    out = w.show()
    assert "%s:1813" % S1 in out and "Backlog: 0 of 1024 records" in out


def test_a_call_gives_start_interim_updates_and_stop_with_the_cdr_fields(tmp_path):
    w = World(tmp_path, extra=(A + "interim-interval 60",))
    rec = w.call()
    w.run(150 * 1000)
    w.app.calls.ended(rec, 0, "caller bye", "caller")
    rej = w.app.calls.rejected("callserver", "1001", "1999", 404, "Not Found")
    w.run(1000)
    got = [(a.status, a.sid) for a in w.r1.arrived]
    sid = rec.id
    assert got == [("Start", sid), ("Interim-Update", sid), ("Interim-Update", sid),
                   ("Stop", sid), ("Start", rej.id), ("Stop", rej.id)]
    assert w.r2.arrived == []
    start, i1, i2, stop = [a.pkt for a in w.r1.arrived[:4]]
    assert start["NAS-Identifier"] == ["branch-7"] and start["NAS-IP-Address"] == ["127.0.0.1"]
    assert start["Calling-Station-Id"] == ["1001"] and start["Called-Station-Id"] == ["1002"]
    assert start["User-Name"] == ["alice"]
    assert start["Event-Timestamp"] == [T0 // 1000 + 0]
    assert (i1["Acct-Session-Time"], i2["Acct-Session-Time"]) == ([60], [120])
    assert stop["Acct-Session-Time"] == [150] and stop["Acct-Terminate-Cause"] == ["User-Request"]
    assert b"disposition=answered" in stop["Cisco-AVPair"] or \
        "disposition=answered" in stop["Cisco-AVPair"]
    rstop = w.r1.arrived[5].pkt
    assert rstop["Acct-Session-Time"] == [0] and rstop["Acct-Terminate-Cause"] == ["Host-Request"]
    out = w.show()
    assert "sending" not in out and "Backlog: 0 of 1024" in out
    line = [l for l in out.split("\n") if S1 in l][0].split()
    assert line[1:6] == ["up", "6", "6", "0", "0"]


def test_a_call_ended_by_a_timeout_gets_a_session_timeout_stop(tmp_path):
    w = World(tmp_path)
    rec = w.call()
    w.run(5000)
    w.app.calls.ended(rec, 408, "session timer expired", "system")
    w.run(1000)
    stop = w.r1.arrived[-1].pkt
    assert stop["Acct-Status-Type"] == ["Stop"] and stop["Acct-Terminate-Cause"] == ["Session-Timeout"]


def test_retransmission_backs_off_then_fails_over_to_the_second_server(tmp_path):
    w = World(tmp_path)
    w.r1.up = False                     # receives, never answers
    rec = w.call(answer=False)
    t0 = w.app.clock.now()
    w.run(20000)
    # timeout 2 s doubling, 2 retransmissions: sent at 0, 2, 6; down at 14 s
    assert [a.at - t0 for a in w.r1.arrived] == [0, 2000, 6000]
    assert [a.delay for a in w.r1.arrived] == [0, 2, 6]
    assert len({a.id for a in w.r1.arrived}) == 3       # each new delay: a new Identifier
    (a,) = w.r2.arrived
    assert a.at - t0 == 14000 and a.delay == 14 and a.sid == rec.id and a.status == "Start"
    out = w.show()
    assert "Failovers: 1" in out and "down 2" in out
    # the client stays with the server that answers, after the dead time too
    w.app.calls.ended(rec, 487, "caller cancel", "caller")
    w.run(40000)
    assert [x.status for x in w.r2.arrived] == ["Start", "Stop"] and len(w.r1.arrived) == 3


def test_a_stop_is_sent_for_a_call_whose_start_was_never_acknowledged(tmp_path):
    w = World(tmp_path)
    w.r1.up = w.r2.up = False
    rec = w.call()
    w.run(3000)
    w.app.calls.ended(rec, 0, "callee bye", "callee")
    w.run(26000)                # each server tried 14 s, then skipped for 30 s
    assert "all servers down" in w.show()
    w.run(40000)                # probes go on
    assert {a.status for a in w.r1.arrived + w.r2.arrived} == {"Start"}
    w.r1.up = w.r2.up = True
    w.run(60000)
    u = w.r1.unique() + w.r2.unique()
    assert [(a.status, a.sid) for a in u] == [("Start", rec.id), ("Stop", rec.id)]
    assert u[1].pkt["Acct-Session-Time"] == [3]


def test_backlog_survives_a_reboot_and_is_replayed_in_order_once(tmp_path):
    w = World(tmp_path, extra=(A + "interim-interval 60",))
    w.r1.up = w.r2.up = False
    recs = []
    for i in range(12):
        recs.append(w.call("10%02d" % i, "2000"))
        w.run(2000)
        if i < 11:              # the last call is live when the appliance goes down
            w.app.calls.ended(recs[-1], 0, "caller bye", "caller")
    w.run(70000)                # one Interim-Update of the live call too
    assert len(w.app.radius.journal.pending) == 11 * 2 + 1 + 1
    assert "Backlog: 24 of 1024" in w.show()
    before = len(w.r1.arrived) + len(w.r2.arrived)
    w.app.radius.stop()         # power cut: nothing more from this appliance, no shutdown

    down = w.app.clock.now() + 120000           # the first life, then two minutes off
    # the same flash: configuration and backlog
    w2 = World(tmp_path, seed=4, configure=False, wall=T0 + down)
    assert w2.app.radius.loaded == 24
    w2.run(60000)
    u = w2.r1.unique() + w2.r2.unique()
    made = []                   # the order the records were made in the first life
    for r in recs[:11]:
        made += [("Start", r.id), ("Stop", r.id)]
    made += [("Start", recs[11].id), ("Interim-Update", recs[11].id),
             ("Stop", recs[11].id)]    # the last at the next boot: the call was live
    assert [(a.status, a.sid) for a in u] == made
    last = u[-1].pkt
    assert last["Acct-Terminate-Cause"] == ["NAS-Reboot"] and last["Acct-Session-Time"] == [60]
    # nothing twice: every request answered is a distinct record (no duplicate after the reboot)
    assert len(w2.r1.answered) + len(w2.r2.answered) == 25
    # delays span the reboot on the wall clock: the first Start waited for minutes
    assert u[0].delay == (down - 10) // 1000
    assert not w2.app.radius.journal.pending and before > 0


def test_a_shutdown_ends_live_calls_with_an_admin_reboot_stop_sent_after_the_boot(tmp_path):
    w = World(tmp_path)
    w.r1.up = w.r2.up = False
    rec = w.call()
    w.run(5000)
    w.app.close()               # request system reboot: the stream ends the live call
    down = w.app.clock.now() + 60000
    w2 = World(tmp_path, seed=4, configure=False, wall=T0 + down)
    assert w2.app.radius.loaded == 2
    w2.run(10000)
    u = w2.r1.unique() + w2.r2.unique()
    assert [(a.status, a.sid) for a in u] == [("Start", rec.id), ("Stop", rec.id)]
    stop = u[1].pkt
    assert stop["Acct-Session-Time"] == [5] and stop["Acct-Terminate-Cause"] == ["Admin-Reboot"]
    assert "cause=appliance shutdown" in stop["Cisco-AVPair"]
    assert len(w2.r1.answered) + len(w2.r2.answered) == 2      # no NAS-Reboot Stop besides


def test_real_sip_calls_through_the_call_server_are_accounted_as_their_cdrs(tmp_path):
    from tests.sim.cs_world import CsWorld
    w = CsWorld(tmp_path, seed=161, sip_exts=("2001", "2002", "2003"),
                extra=(A + "server %s secret one-secret" % S1,
                       A + "nas-identifier branch-sip"))
    srv = SimRadiusServer(w.network, w.app.sched, S1, b"one-secret")
    ended = []

    class Seen:
        def call_ended(self, rec):
            ended.append(rec.as_dict())
    w.app.calls.subscribe(Seen())
    try:
        w.register_all(("2001", "2002", "2003"))
        c = w.phones["2001"].call("2002")
        w.run_until(lambda: c.state == "connected", 5000)
        waiting = w.phones["2003"].call("2002")     # call waiting: rings, then the caller gives up
        w.run(2000)
        w.phones["2003"].hangup(waiting)
        unknown = w.phones["2003"].call("2999")     # 404: refused before a call exists
        w.run_until(lambda: unknown.state == "terminated", 3000)
        w.run(7000)
        w.phones["2001"].hangup(c)
        w.run(3000)
        assert len(ended) == 3
        u = srv.unique()
        for d in ended:
            mine = [a for a in u if a.sid == d["id"]]
            assert [a.status for a in mine] == ["Start", "Stop"], (d, mine)
            stop = mine[1].pkt
            assert stop["Calling-Station-Id"] == [d["calling"]]
            assert stop["Called-Station-Id"] == [d["called"]]
            assert stop["Acct-Session-Time"] == [d["billsec"]]
            assert stop["NAS-Identifier"] == ["branch-sip"]
            pairs = stop["Cisco-AVPair"]
            assert "disposition=%s" % d["disposition"] in pairs
            assert "sip-status=%d" % d["sip_status"] in pairs
            if d["call_ids"]:
                assert "call-id=%s" % ",".join(d["call_ids"]) in pairs
        answered = [d for d in ended if d["disposition"] == "answered"]
        assert len(answered) == 1 and answered[0]["billsec"] >= 7
        assert not w.app.radius.journal.pending
    finally:
        w.close()
