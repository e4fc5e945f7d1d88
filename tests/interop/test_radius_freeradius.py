"""RADIUS accounting against a real FreeRADIUS (Debian `freeradius`) on
loopback: two servers (127.0.0.1 and 127.0.0.2, each `freeradius -f -l stdout -d DIR`
with a minimal configuration generated in a temporary directory, its own
secret, and a `detail` module that writes every accounting request it
accepts to a file).  The appliance runs in-process on the real clock with
real UDP sockets; its calls come from the call-event stream (app.calls).

  1. Calls while both servers run: each Start and Stop arrives in the first
     server's detail file with every field as the CDR has it.
  2. Every server stops (outage): the calls made meanwhile wait in the
     backlog on flash; `show accounting radius` says so.  The appliance
     reboots (a new Appliance on the same flash), the servers come back, and
     the backlog is replayed in order: the count of records sent equals the
     count received, with no duplicate and none lost.
"""
import datetime
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from firmware import cli
from firmware.app import Appliance
from firmware.sched import RealClock
from tests.harness import read_line

SECRETS = {"127.0.0.1": "first-Secret-1", "127.0.0.2": "second-Secret-2"}
A = "set system accounting radius "

RADIUSD_CONF = """
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
logdir = {dir}
raddbdir = {dir}
radacctdir = {dir}
name = freeradius
confdir = {dir}
modconfdir = {dir}/mods-config
run_dir = {dir}
db_dir = {dir}
libdir = /usr/lib/freeradius
pidfile = {dir}/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {{
	destination = stdout
}}
security {{
	allow_core_dumps = no
}}
thread pool {{
	start_servers = 1
	max_servers = 2
	min_spare_servers = 1
	max_spare_servers = 2
}}
client appliance {{
	ipaddr = 127.0.0.0/8
	secret = {secret}
}}
modules {{
	detail {{
		filename = {dir}/detail
		header = "%t"
		permissions = 0600
		escape_filenames = no
	}}
}}
server default {{
	listen {{
		type = acct
		ipaddr = {addr}
		port = {port}
	}}
	accounting {{
		detail
	}}
}}
"""


def free_udp_port(host):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class FreeRadius:
    def __init__(self, base, addr):
        self.addr = addr
        self.port = free_udp_port(addr)
        self.dir = os.path.join(base, "raddb-" + addr)
        os.mkdir(self.dir, 0o700)
        with open(os.path.join(self.dir, "radiusd.conf"), "w") as f:
            f.write(RADIUSD_CONF.format(dir=self.dir, secret=SECRETS[addr], addr=addr, port=self.port))
        open(os.path.join(self.dir, "dictionary"), "w").close()    # no local attributes
        self.detail = os.path.join(self.dir, "detail")
        self.proc = None

    def start(self, deadline_s=20):
        # -f: foreground, normal log level (no per-request debug output to fill the pipe);
        # readiness is the "Ready to process requests" line, read with a deadline
        self.proc = subprocess.Popen(["freeradius", "-f", "-l", "stdout", "-d", self.dir],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.out = []
        end = time.monotonic() + deadline_s
        while True:
            try:
                line = read_line(self.proc.stdout, end)
            except TimeoutError:
                raise AssertionError("freeradius not ready in %d s: %s" % (deadline_s, "".join(self.out)))
            assert line, "freeradius exited: %s" % "".join(self.out)
            self.out.append(line)
            if "Ready to process requests" in line:
                return

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.proc.stdout.close()
        self.proc = None

    def records(self):
        """The detail file: one dict per accounting request (attribute -> value)."""
        if not os.path.exists(self.detail):
            return []
        out = []
        with open(self.detail) as f:
            for block in f.read().split("\n\n"):
                lines = [l for l in block.split("\n") if l.strip()]
                if not lines:
                    continue
                rec = {}
                for line in lines[1:]:
                    k, _, v = line.strip().partition(" = ")
                    v = v[1:-1] if v.startswith('"') and v.endswith('"') else v
                    rec.setdefault(k, []).append(v)
                out.append(rec)
        return out


def boot(state):
    opts = cli.parse(["--board", "sim", "--state", state, "--console", "none",
                      "--sip-host", "127.0.0.1", "--sip-port", "0"])
    app = Appliance(opts, clock=RealClock())
    app.boot()
    app.start()
    return app


def run_until(app, cond, limit_s, what):
    end = app.clock.now() + int(limit_s * 1000)
    while app.clock.now() < end:
        app.sched.run(until=app.clock.now() + 50)
        if cond():
            return
    raise AssertionError("%s: not within %s s\n%s" % (what, limit_s, app.radius.show()))


def call(app, n, answer=True, talk_ms=1200):
    c = app.calls
    rec = c.setup("callserver", "10%02d" % n, "20%02d" % n, ("station", "s10%02d" % n),
                  ("station", "s20%02d" % n), "call-%d@branch" % n)
    app.sched.run(until=app.clock.now() + 100)
    if answer:
        c.answered(rec, "leg2-%d@branch" % n)
        app.sched.run(until=app.clock.now() + talk_ms)
        c.media(rec, "PCMU", 60, 59, 1)
        c.ended(rec, 0, "caller bye", "caller")
    else:
        c.ended(rec, 486, "Busy Here", "callee")
    return rec


@pytest.fixture
def rig():
    assert shutil.which("freeradius"), "freeradius not found: install the Debian package freeradius"
    base = tempfile.mkdtemp(prefix="radius-interop-")
    servers = [FreeRadius(base, "127.0.0.1"), FreeRadius(base, "127.0.0.2")]
    state = os.path.join(base, "state")
    apps = []
    try:
        yield base, servers, state, apps
    finally:
        for a in apps:
            a.close()
            if getattr(a, "radius", None) is not None:
                a.radius.stop()
        for s in servers:
            s.stop()
        shutil.rmtree(base, ignore_errors=True)


def _event_time(text):
    return datetime.datetime.strptime(" ".join(text.split()), "%b %d %Y %H:%M:%S UTC").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_freeradius_receives_every_field_and_the_whole_backlog_after_an_outage(rig):
    base, servers, state, apps = rig
    for s in servers:
        s.start()
    app = boot(state)
    apps.append(app)
    app.time.set(int(time.time() * 1000), app.clock.now())     # as an NTP answer would
    lines = []
    for s in servers:
        lines += [A + "server %s secret %s" % (s.addr, SECRETS[s.addr]),
                  A + "server %s port %d" % (s.addr, s.port)]
    lines += [A + "timeout 1", A + "retries 1", A + "dead-time 5", A + "nas-identifier branch-it"]
    app.config.load_file("radius.conf", "\n".join(lines))
    shown = app.commands.execute(app, "show configuration system accounting radius")
    assert SECRETS["127.0.0.1"] not in shown and "$9$" in shown

    # 1. both servers up: every field arrives at the first
    recs = [call(app, 0), call(app, 1, answer=False)]
    first = servers[0]
    run_until(app, lambda: len(first.records()) == 4 and not app.radius.journal.pending, 15,
              "4 records at the first server")
    got = first.records()
    assert [(g["Acct-Status-Type"][0], g["Acct-Session-Id"][0]) for g in got] == [
        ("Start", recs[0].id), ("Stop", recs[0].id), ("Start", recs[1].id), ("Stop", recs[1].id)]
    for g, rec in ((got[0], recs[0]), (got[1], recs[0]), (got[3], recs[1])):
        d = rec.as_dict()
        assert g["NAS-Identifier"] == ["branch-it"] and g["NAS-IP-Address"] == ["127.0.0.1"]
        assert g["User-Name"] == [d["src"]]
        assert g["Calling-Station-Id"] == [d["calling"]] and g["Called-Station-Id"] == [d["called"]]
        assert g["NAS-Port-Type"] == ["Virtual"]
        assert g["Acct-Delay-Time"] == ["0"]
        assert abs(_event_time(g["Event-Timestamp"][0]) - time.time()) < 30
        ids = d["call_ids"] if g is not got[0] else d["call_ids"][:1]   # the Start knew one leg
        assert "call-id=%s" % ",".join(ids) in g["Cisco-AVPair"]
        assert "mode=survivable" in g["Cisco-AVPair"]
    stop = got[1]
    assert stop["Acct-Session-Time"] == ["1"] and stop["Acct-Terminate-Cause"] == ["User-Request"]
    for want in ("disposition=answered", "sip-status=200", "cause=caller bye", "released-by=caller",
                 "dst-kind=station", "dst=s2000", "src=s1000", "codec=PCMU", "rtp-sent=60",
                 "rtp-received=59", "rtp-lost=1", "duration=1"):
        assert want in stop["Cisco-AVPair"], (want, stop["Cisco-AVPair"])
    busy = got[3]
    assert busy["Acct-Session-Time"] == ["0"] and busy["Acct-Terminate-Cause"] == ["Host-Request"]
    assert "disposition=busy" in busy["Cisco-AVPair"] and "sip-status=486" in busy["Cisco-AVPair"]
    assert servers[1].records() == []

    # 2. every server down: the calls wait on flash, through a reboot
    for s in servers:
        s.stop()
    for n in range(2, 10):
        recs.append(call(app, n, answer=(n % 3 != 0), talk_ms=200))
    run_until(app, lambda: "all servers down" in app.radius.show(), 20, "every server marked down")
    out = app.commands.execute(app, "show accounting radius")
    assert "Backlog: 16 of 1024 records" in out, out
    live = app.calls.setup("callserver", "1099", "2099", ("station", "s1099"), ("station", "s2099"))
    app.calls.answered(live)
    app.sched.run(until=app.clock.now() + 100)
    app.close()                 # request system reboot: the live call ends (Admin-Reboot)
    app.radius.stop()           # the process ends: sockets and tasks gone
    apps.remove(app)

    app = boot(state)           # the same flash: configuration and backlog
    apps.append(app)
    app.time.set(int(time.time() * 1000), app.clock.now())
    assert app.radius.loaded == 18
    for s in servers:
        s.start()
    made = 4 + 16 + 1 + 1       # + the Start of the live call and its Stop at the shutdown
    run_until(app, lambda: not app.radius.journal.pending, 30, "the backlog replayed")
    got = servers[0].records() + servers[1].records()
    keys = [(g["Acct-Session-Id"][0], g["Acct-Status-Type"][0]) for g in got]
    assert len(got) == made and len(set(keys)) == made, keys     # sent == received, none twice
    want = []
    for r in recs:
        want += [(r.id, "Start"), (r.id, "Stop")]
    want += [(live.id, "Start"), (live.id, "Stop")]
    # the replay went to one server (the first that answered), in the order made
    replay = servers[0].records()[4:] or servers[1].records()
    assert [(g["Acct-Session-Id"][0], g["Acct-Status-Type"][0]) for g in replay] == want[4:]
    assert replay[-1]["Acct-Terminate-Cause"] == ["Admin-Reboot"]
    assert "cause=appliance shutdown" in replay[-1]["Cisco-AVPair"]
    assert int(replay[0]["Acct-Delay-Time"][0]) >= 1      # it waited through the outage
    s = app.radius.client.servers
    assert sum(x.acked for x in s) == made - 4
