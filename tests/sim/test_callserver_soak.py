# portable: micropython
# mpy-heapsize: 8M
# (the appliance and 50 simulated phones share one heap; the appliance alone needs < 1 MB)
"""Soak: 24 simulated hours of a busy branch on the call server, on both
interpreters.

50 SIP stations are configured on the appliance through its configuration
engine (a boot configuration file of `set` lines for the domain, the
call-server and security settings, then the stations in commits of ten; the
sim board's 10 ms hardware poll is stopped: it has nothing to do with the
call server and would dominate the run time), and 50 simulated phones
(tests/sim/sipphone.py), each on its own host of the simulated network
(tests/sim/simnet.py; no sockets), register with
digest and keep refreshing (a mix of requested lifetimes: the server's
default, 600 s, 3600 s, and one phone asking for 30 s that gets 423 and then
refreshes every minute or so); now and then an idle phone "reboots"
(unregisters, comes back 30-120 s later).  Calls arrive as a seeded Poisson
process between idle phones: most are answered after a random ring time,
last an exponential time (mean 2 min), are put on hold and resumed by
either side in 20 % of the cases, and are hung up by either side; some are
cancelled by the caller while ringing, rejected busy (486) or declined (603)
by the callee.  Every datagram between a phone and the appliance is lost
with probability LOSS in each direction.

Each call is judged 35 s after the caller's side ended (every BYE/CANCEL
transaction has run out by then) against what its plan says must have
happened at both ends.  After 24 h the traffic stops, the calls finish, and
then nothing may be left: no calls, sessions, dialogs or call transactions in
the appliance, exactly one binding per phone, no calls, dialogs, timers or
call transactions in the phones, no phone errors, no crashed task.  Under
MicroPython the heap in use (gc.collect(); gc.mem_alloc()) at the end must be
within MEMORY_SLACK_PCT of the heap after the first simulated hour (both
measured the same way: new calls held back until every call has ended and
its transactions have run out; registrations go on).

Success bound: every message that decides a call is carried by a transaction
that retransmits it for 32 s (INVITE 7 times, BYE/CANCEL/re-INVITE 11 times,
2xx until ACKed), so with independent 10 % loss each way a leg fails only
when every round trip is lost: about 0.19^7 ~ 1e-5 for an INVITE, less for
the rest; a call crosses two legs and some 6 such transactions.  A correct
system therefore completes practically every call; MIN_SUCCESS_PCT leaves
room for rare races (e.g. a CANCEL crossing the 2xx) and is printed with the
measured rate.  A failure prints the seed, the failed calls with their
histories and message traces, and the tables that leaked.

Run alone: `.venv/bin/python -m pytest -q tests/sim/test_callserver_soak.py -s`
or `.venv/bin/micropython -X heapsize=8M tools/mpytest.py tests/sim/test_callserver_soak.py`;
SOAK_SEED=<n> in the environment picks another seed.
"""
import gc
import math
import os

from firmware.compat import Random, MICROPYTHON
from tests.portable import tmpdir, rmtree
from tests.sim.appliance import simulated
from tests.sim.sipphone import PhoneNet
# Loaded now, while the heap is young: the commit of the stations imports the
# call server, and MicroPython's unix port compiles it from source then, which
# needs contiguous blocks a 50-station commit has already fragmented (a device
# runs precompiled modules and has no such need).
import firmware.callserver.service  # noqa: F401

B = "set services convergence-services "
DOMAIN = "branch.example.com"
SEED = 20240925
STATIONS = 50
HOURS = 24
CALLS_PER_HOUR = 150           # offered load over all 50 phones
REBOOTS_PER_HOUR = 2
LOSS = 0.10
MEAN_CALL_S = 120
MAX_CALL_S = 1800
JUDGE_MS = 35000               # after the caller's side ended
MIN_SUCCESS_PCT = 99.9
MEMORY_SLACK_PCT = 5
MAX_FAILURES = 10              # failure details kept (counters count them all)
STATIONS_PER_COMMIT = 10
# datagrams remembered per phone, for failure reports; 50 phones x 12 entries
# take about 170 KB, too much next to the appliance in MicroPython's 2 MB heap
TRACE = 0 if MICROPYTHON else 12
HOUR_MS = 3600 * 1000
# The appliance with 50 stations and calls in progress and the 50 simulated
# phones share one interpreter: about 1.5 MB in use.  In the unix port's
# default 2 MB heap that ends in fragmentation failures (no 16 KB block left
# for the appliance's UDP receive buffer after some simulated hours).
MIN_MPY_HEAP = 4 * 1024 * 1024


def base_config():
    """The boot configuration file: everything but the stations."""
    return "\n".join([B + "sip domain " + DOMAIN,
             B + "call-server registration default-expires 600",
             B + "call-server registration min-expires 60",
             B + "call-server registration max-expires 3600",
             B + "call-server max-registrations 100",
             B + "call-server max-calls 64",
             B + "security allow-list 127.0.0.0/8"]) + "\n"


def stations_config(n, first=0):
    """Stations first..n-1, committed on the running appliance (see Soak)."""
    lines = []
    for i in range(first, n):
        ext = ext_of(i)
        # the spec's one-line form (`station sNN extension E password P`) is not
        # accepted by the configuration engine: one leaf per line
        lines.append(B + "station s%02d extension %s" % (i, ext))
        lines.append(B + "station s%02d password Secret-%s" % (i, ext))
    return "\n".join(lines) + "\n"


def ext_of(i):
    return "20%02d" % i


def expires_for(i):
    """Requested registration lifetime of phone i (None: no Expires header)."""
    if i == 2:
        return 30                    # below min-expires: 423, then 60 s
    if i % 10 == 0:
        return None                  # the server's default-expires (600)
    if i % 10 == 1:
        return 600
    return 3600


def _heap():
    gc.collect()
    return gc.mem_alloc() if MICROPYTHON else None


class Plan:
    """What one call is meant to do, and what happened to it."""

    def __init__(self, n, a, b, kind):
        self.n = n
        self.a = a
        self.b = b
        self.kind = kind              # answer | busy | decline | cancel
        self.ca = None                # the caller's Call
        self.cb = None                # the callee's Call (None until it rings)
        self.ring_ms = 0
        self.cancel_ms = 0
        self.dur_ms = 0
        self.hold_by = None           # None, "a" or "b"
        self.held = False
        self.resumed = False
        self.hangup_by = "a"
        self.bad = None               # first problem seen while it ran
        self.judging = False


class Soak:
    def __init__(self, seed=SEED, stations=STATIONS, hours=HOURS, rate=CALLS_PER_HOUR,
                 loss=LOSS, reboots=REBOOTS_PER_HOUR, trace=TRACE):
        self.seed = seed
        self.rng = Random(seed + 1)
        self.hours = hours
        self.rate = rate
        self.reboots = reboots
        self.dir = tmpdir("state", Random())
        conf = self.dir + "/soak.conf"
        with open(conf, "w") as f:
            f.write(base_config())
        try:
            self.app = app = simulated(self.dir + "/state", seed, args=("--config", conf))
            # The stations in commits of STATIONS_PER_COMMIT, as an operator
            # might load them: one 50-station commit allocates about 1.1 MB on
            # MicroPython, more than half of its default 2 MB heap, in small
            # pieces that fragment it (measured with gc disabled around
            # load_file).
            for k in range(0, stations, STATIONS_PER_COMMIT):
                gc.collect()
                app.config.load_file("stations", stations_config(
                    min(stations, k + STATIONS_PER_COMMIT), k))
        except Exception:
            rmtree(self.dir)
            raise
        self.cs = app.callserver
        # The sim board's hardware task polls the analog chips every 10 ms:
        # 8.6 M polls per simulated day, which would dominate the run (about
        # ten minutes on CPython, far more on MicroPython) and exercise nothing
        # of the call server; the analog side has its own simulations.
        hw = app.sched.find("hardware")
        if hw is not None:
            hw.cancel()
        server = ("127.0.0.1", app.sip_port)
        self.net = PhoneNet(app.sched, seed=seed, loss=loss, trace=trace, network=app.network)
        for i in range(stations):
            ext = ext_of(i)
            p = self.net.add(ext, "Secret-" + ext, DOMAIN, server, expires=expires_for(i))
            p.on_incoming = self._incoming
            p.on_event = self._event
        self.phones = self.net.phones
        # the phones' tasks are the simulation's, not the appliance's: they do
        # not count against the appliance's task budget
        app.sched.max_tasks += self.net.tasks_needed() + 1
        self.net.start()
        self.plans = {}               # phone -> Plan it is reserved for
        self.off = {}                 # phone -> True while "rebooting"
        self.live = 0                 # plans not judged yet
        self.n = 0
        self.stats = {"offered": 0, "no_idle_pair": 0, "ok": 0, "failed": 0,
                      "unexpected_incoming": 0, "wrong_caller": 0, "reboots": 0,
                      "late_invites": 0, "paused": 0}
        for k in ("answer", "busy", "decline", "cancel"):
            self.stats[k] = 0
            self.stats[k + "_failed"] = 0
        self.reasons = {}             # failure reason -> count
        self.failures = []            # details of the first MAX_FAILURES
        self.traffic_end = None
        self.driver = None
        self.paused = False

    # ---- running ----------------------------------------------------------
    def now(self):
        return self.app.clock.now()

    def run_until(self, t):
        self.app.sched.run(until=t)

    def close(self):
        try:
            self.net.close()
            self.app.close()
        finally:
            rmtree(self.dir)

    def register_all(self):
        for p in self.phones:
            p.call_later(self.rng.randbelow(20000), self._register, p, "driver")

    def _register(self, p):
        p.register()

    def start_traffic(self, end):
        self.traffic_end = end
        self.driver = self.app.sched.spawn(self._arrivals(), "soak-driver")

    def _expo(self, mean_ms):
        u = self.rng.random()
        return int(-math.log(1.0 - u) * mean_ms)

    async def _arrivals(self):
        sched = self.app.sched
        per_hour = self.rate + self.reboots
        mean = HOUR_MS // per_hour
        while True:
            await sched.sleep(self._expo(mean))
            if self.now() >= self.traffic_end:
                return
            if self.rng.randbelow(per_hour) < self.reboots:
                self._reboot()
            else:
                self._offer()

    def _idle(self, p):
        return p not in self.plans and p not in self.off and not p.calls and p.registered

    def _pick(self, idle):
        return idle.pop(self.rng.randbelow(len(idle)))

    def drain(self):
        """Run until every planned call has been judged (no new ones while
        paused or after the traffic's end), then until their transactions
        have run out."""
        end = self.now() + (MAX_CALL_S + 120) * 1000
        while self.live and self.now() < end:
            self.run_until(self.now() + 10000)
        self.run_until(self.now() + 40000)

    def _offer(self):
        if self.paused:
            self.stats["paused"] += 1
            return
        self.stats["offered"] += 1
        idle = [p for p in self.phones if self._idle(p)]
        if len(idle) < 2:
            self.stats["no_idle_pair"] += 1
            return
        a = self._pick(idle)
        b = self._pick(idle)
        r = self.rng.randbelow(100)
        kind = "cancel" if r < 5 else "busy" if r < 8 else "decline" if r < 10 else "answer"
        self.n += 1
        pl = Plan(self.n, a, b, kind)
        self.stats[kind] += 1
        pl.ring_ms = 500 + self.rng.randbelow(7500)
        if kind == "cancel":
            pl.ring_ms = 20000 + self.rng.randbelow(10000)
            pl.cancel_ms = 2000 + self.rng.randbelow(6000)
        pl.dur_ms = max(2000, min(MAX_CALL_S * 1000, self._expo(MEAN_CALL_S * 1000)))
        if kind == "answer" and pl.dur_ms >= 20000 and self.rng.randbelow(100) < 20:
            pl.hold_by = "a" if self.rng.randbelow(2) else "b"
        pl.hangup_by = "a" if self.rng.randbelow(2) else "b"
        self.plans[a] = pl
        self.plans[b] = pl
        self.live += 1
        pl.ca = a.call(b.user)
        pl.ca.user = pl
        if pl.ca.state == "terminated":
            self._caller_done(pl)
        elif kind == "cancel":
            a.call_later(pl.cancel_ms, self._cancel, pl, "driver")

    def _reboot(self):
        idle = [p for p in self.phones if self._idle(p)]
        if not idle or self.paused:
            return
        p = self._pick(idle)
        self.stats["reboots"] += 1
        self.off[p] = True
        p.unregister()
        p.call_later(30000 + self.rng.randbelow(90000), self._back, p, "driver")

    def _back(self, p):
        p.register()

    # ---- phone hooks ------------------------------------------------------
    def _incoming(self, phone, call):
        pl = self.plans.get(phone)
        if pl is None or pl.b is not phone or pl.cb is not None:
            self.stats["unexpected_incoming"] += 1
            self._fail(pl, "unexpected INVITE to %s from %s" % (phone.user, call.remote), call)
            return ("reject", 486)
        pl.cb = call
        call.user = pl
        if call.remote != pl.a.user:
            self.stats["wrong_caller"] += 1
            pl.bad = pl.bad or "callee saw caller %r, not %s" % (call.remote, pl.a.user)
        if pl.judging:
            # the caller has already given up (e.g. cancelled while every INVITE
            # to this phone was lost so far): the server must CANCEL this leg
            # once it rings (RFC 3261 §9.1); judged below: the leg must be over
            self.stats["late_invites"] += 1
            return ("ring",)
        if pl.kind == "busy":
            return ("reject", 486)
        if pl.kind == "decline":
            phone.call_later(pl.ring_ms, self._decline, pl, "driver")
            return ("ring",)
        return ("answer", pl.ring_ms)

    def _event(self, phone, call, event):
        if call is None:
            if event == "registered" and phone in self.off:
                del self.off[phone]
            return
        pl = call.user
        if pl is None:
            return
        if event == "answered" and call is pl.ca:
            if pl.kind != "answer":
                if pl.kind != "cancel":
                    pl.bad = pl.bad or "caller answered in a %s plan" % pl.kind
                return
            if pl.hold_by is not None:
                p = pl.a if pl.hold_by == "a" else pl.b
                p.call_later(pl.dur_ms // 4, self._hold, (pl, 0), "driver")
            p = pl.a if pl.hangup_by == "a" else pl.b
            p.call_later(pl.dur_ms, self._hangup, pl, "driver")
        elif event == "held":
            pl.held = True
            p = pl.a if pl.hold_by == "a" else pl.b
            left = pl.ca.answered_at + pl.dur_ms // 2 - self.now()
            p.call_later(max(1000, left), self._resume, (pl, 0), "driver")
        elif event == "resumed":
            pl.resumed = True
        elif event == "hold_failed":
            pl.bad = pl.bad or "re-INVITE failed"
        if call is pl.ca and call.state == "terminated":
            self._caller_done(pl)

    # ---- plan actions -----------------------------------------------------
    def _cancel(self, pl):
        if pl.ca.state in ("calling", "ringing"):
            pl.a.hangup(pl.ca)

    def _decline(self, pl):
        if pl.cb is not None and pl.cb.state == "ringing":
            pl.b.hangup(pl.cb)      # 603

    def _holder(self, pl):
        return (pl.a, pl.ca) if pl.hold_by == "a" else (pl.b, pl.cb)

    def _hold(self, arg):
        pl, tries = arg
        p, c = self._holder(pl)
        if c is None or c.state != "connected":
            return
        if not p.hold(c):
            if tries < 5:           # e.g. the ACK for our 2xx has not arrived yet
                p.call_later(1000, self._hold, (pl, tries + 1), "driver")
            else:
                pl.bad = pl.bad or "could not start the hold re-INVITE"

    def _resume(self, arg):
        pl, tries = arg
        p, c = self._holder(pl)
        if c is None or c.state != "connected":
            return
        if not p.resume(c):
            if tries < 5:
                p.call_later(1000, self._resume, (pl, tries + 1), "driver")
            else:
                pl.bad = pl.bad or "could not start the resume re-INVITE"

    def _hangup(self, pl):
        if pl.hangup_by == "a":
            if pl.ca.state == "connected":
                pl.a.hangup(pl.ca)
        elif pl.cb is not None and pl.cb.state == "connected":
            pl.b.hangup(pl.cb)

    def _caller_done(self, pl):
        if pl.judging:
            return
        pl.judging = True
        pl.a.call_later(JUDGE_MS, self._judge, pl, "driver")

    # ---- judging ----------------------------------------------------------
    def _verdict(self, pl):
        ca, cb = pl.ca, pl.cb
        if pl.bad:
            return pl.bad
        if pl.kind == "answer":
            if ca.answered_at is None:
                return "caller: %s %s" % (ca.end_reason, ca.status)
            if cb is None:
                return "callee never rang"
            if cb.state != "terminated":
                return "callee still in the call"
            # (not cb.acked alone is no failure: the caller may hang up before a
            # lost ACK was repeated; the BYE then ends the callee's call)
            if pl.hangup_by == "a":
                if ca.end_reason != "bye_sent" or cb.end_reason != "bye_received":
                    return "caller hung up: caller %s, callee %s" % (ca.end_reason, cb.end_reason)
                if ca.bye_status != 200:
                    return "caller's BYE: %s" % ca.bye_status
            else:
                if cb.end_reason != "bye_sent" or ca.end_reason != "bye_received":
                    return "callee hung up: caller %s, callee %s" % (ca.end_reason, cb.end_reason)
                if cb.bye_status != 200:
                    return "callee's BYE: %s" % cb.bye_status
            if pl.hold_by is not None and not (pl.held and pl.resumed):
                return "hold %s resume %s" % (pl.held, pl.resumed)
            return None
        if pl.kind == "cancel":
            if ca.end_reason != "cancelled":
                return "cancelled call: caller %s %s" % (ca.end_reason, ca.status)
            # 200: the answer crossed the CANCEL (or came before any provisional,
            # when the CANCEL may not be sent yet); 408: nothing came back at all
            if ca.status not in (487, 200, 408):
                return "cancelled call: status %s" % ca.status
            if cb is not None and cb.state != "terminated":
                return "cancelled call: callee still in the call"
            return None
        want = 486 if pl.kind == "busy" else 603
        if ca.status != want:
            return "%s: caller got %s %s" % (pl.kind, ca.end_reason, ca.status)
        if cb is None or cb.end_reason != "rejected":
            return "%s: callee %s" % (pl.kind, cb and cb.end_reason)
        return None

    def _judge(self, pl):
        why = self._verdict(pl)
        if why is None:
            self.stats["ok"] += 1
        else:
            self.stats["failed"] += 1
            self.stats[pl.kind + "_failed"] += 1
            self._fail(pl, why)
        for p in (pl.a, pl.b):
            if self.plans.get(p) is pl:
                del self.plans[p]
        self.live -= 1

    def _fail(self, pl, why, extra=None):
        key = why.split(":")[0]
        self.reasons[key] = self.reasons.get(key, 0) + 1
        if len(self.failures) >= MAX_FAILURES:
            return
        lines = ["#%s %s at %d ms: %s" % (pl and pl.n, pl and pl.kind, self.now(), why)]
        calls = [extra] if extra is not None else []
        if pl is not None:
            lines.append("  plan: %s -> %s ring %d dur %d hold %s hangup %s" % (
                pl.a.user, pl.b.user, pl.ring_ms, pl.dur_ms, pl.hold_by, pl.hangup_by))
            calls = [pl.ca, pl.cb] + calls
        for c in calls:
            if c is None:
                continue
            lines.append("  %r status %s bye %s history %r" % (c, c.status, c.bye_status,
                                                              c.history))
            for e in c.phone.trace_for(c.call_id):
                lines.append("    %r" % (e,))
        self.failures.append("\n".join(lines))

    # ---- end checks -------------------------------------------------------
    def call_transactions(self, layer):
        """Transactions other than REGISTER ones (refreshes never stop)."""
        return [t for t in layer.transactions() if t.method != "REGISTER"]

    def report(self):
        c = self.net.counters()
        s = self.stats
        judged = s["ok"] + s["failed"]
        pct = 100.0 * s["ok"] / judged if judged else 0.0
        return ("soak seed %d: %d h, %d phones, loss %d%%: %d calls judged, %d ok (%.2f%%), "
                "%d failed %r; offered %d, no idle pair %d; kinds answer %d busy %d decline %d "
                "cancel %d; reboots %d; phones sent %d (lost %d) received %d (lost %d); "
                "registrations ok %d failed %d refreshes %d 423 %d; re-INVITEs %d ok %d glare %d; "
                "late INVITEs %d; phone stray %d no-dialog %d" % (
                    self.seed, self.hours, len(self.phones), int(self.net.loss * 100), judged,
                    s["ok"], pct, s["failed"], self.reasons, s["offered"], s["no_idle_pair"],
                    s["answer"], s["busy"], s["decline"], s["cancel"], s["reboots"],
                    c["tx"], c["tx_lost"], c["rx"], c["rx_lost"], c["reg_ok"], c["reg_failed"],
                    c["reg_refreshes"], c.get("reg_423", 0), c["reinvites_sent"],
                    c["reinvite_ok"], c["reinvite_glare"], s["late_invites"], c["stray_responses"],
                    c["no_dialog"]))


def run_soak(seed=SEED, hours=HOURS, rate=CALLS_PER_HOUR, stations=STATIONS, loss=LOSS,
             verbose=True):
    """Run the whole soak; returns (soak, facts) with the soak closed."""
    s = Soak(seed, stations, hours, rate, loss)
    facts = {}
    try:
        s.register_all()
        s.run_until(60000)
        facts["registered_at_start"] = len([p for p in s.phones if p.registered])
        facts["reg_failures_at_start"] = [(p.user, p.reg_state, p.counters["reg_failed"])
                                          for p in s.phones if not p.registered]
        s.start_traffic(int(hours * HOUR_MS))
        s.run_until(HOUR_MS)
        # the warm-up heap is measured like the final one, with no call up
        s.paused = True
        s.drain()
        facts["heap_warm"] = _heap()
        s.paused = False
        s.run_until(int(hours * HOUR_MS))
        # traffic has stopped: let every planned call finish and be judged
        s.drain()
        facts["unjudged"] = s.live
        for p in s.phones:
            p.hangup_all()
        for p in s.phones:
            if not p.registered and p.reg_state != "registering":
                p.register()        # a reboot that was cut short by the end
        s.run_until(s.now() + 60000)
        facts["heap_end"] = _heap()
        facts["leaks"] = s.cs.leaks()
        facts["cs_call_txns"] = [repr(t) for t in s.call_transactions(s.app.sip.layer)]
        facts["registered"] = len([p for p in s.phones if p.registered])
        facts["phone_leaks"] = s.net.leaks()
        facts["phone_call_txns"] = []
        facts["phone_timers"] = 0
        for p in s.phones:
            for t in s.call_transactions(p.layer):
                facts["phone_call_txns"].append((p.user, repr(t)))
            facts["phone_timers"] += p.leaks()["timers"]
        facts["phone_errors"] = s.net.errors()
        facts["crashes"] = s.app.sched.crashes
        facts["report"] = s.report()
        if verbose:
            print(facts["report"])
            print("heap after warm-up %s, at the end %s" % (facts["heap_warm"], facts["heap_end"]))
    finally:
        s.close()
    return s, facts


def check(s, f):
    st = s.stats
    judged = st["ok"] + st["failed"]
    info = "seed %d (SOAK_SEED=%d to repeat)" % (s.seed, s.seed)
    try:
        assert f["registered_at_start"] == len(s.phones), (info, f["reg_failures_at_start"])
        assert f["phone_errors"] == [], (info, f["phone_errors"][:3])
        assert f["crashes"] == 0, (info, s.app.commands.execute(s.app, "show log"))
        assert f["unjudged"] == 0, (info, f["unjudged"])
        lk = f["leaks"]
        assert lk["calls"] == 0 and lk["active"] == 0, (info, lk)
        assert lk["sessions"] == 0 and lk["dialogs"] == 0, (info, lk)
        assert f["cs_call_txns"] == [], (info, f["cs_call_txns"][:10])
        assert f["registered"] == len(s.phones), (info, f["registered"])
        assert lk["bindings"] == len(s.phones), (info, lk)
        pl = f["phone_leaks"]
        assert pl["calls"] == 0 and pl["dialogs"] == 0 and f["phone_timers"] == 0, (info, pl)
        assert f["phone_call_txns"] == [], (info, f["phone_call_txns"][:10])
        assert st["unexpected_incoming"] == 0 and st["wrong_caller"] == 0, (info, st)
        assert judged >= s.rate * s.hours // 2, (info, judged, st)
        assert st["ok"] * 100 >= MIN_SUCCESS_PCT * judged, (info, f["report"])
        if f["heap_warm"] is not None:
            assert f["heap_end"] * 100 <= f["heap_warm"] * (100 + MEMORY_SLACK_PCT), (
                info, f["heap_warm"], f["heap_end"])
    except AssertionError:
        print("test_callserver_soak FAILED with seed %d" % s.seed)
        print(f.get("report"))
        for text in s.failures:
            print(text)
        raise


def _seed():
    v = os.getenv("SOAK_SEED")
    return int(v) if v else SEED


def test_call_server_soak_24h_50_stations_10pct_loss():
    if MICROPYTHON:
        heap = gc.mem_alloc() + gc.mem_free()
        assert heap >= MIN_MPY_HEAP, (
            "a %d-byte heap is too small for the appliance and 50 phones: run this file "
            "with `micropython -X heapsize=8M` (tools/test-all reads the mpy-heapsize line)" % heap)
    s, f = run_soak(_seed())
    check(s, f)
