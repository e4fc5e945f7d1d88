"""Call-server benchmark on 127.0.0.1: digest registrations per second,
station-to-station calls per second, and heap (or shared memory) per
registration and per call, for the appliance and two references.

    .venv/bin/python bench/callserver.py [--quick] [--targets a,b,...] [--out FILE]
                                         [--heap-goal BYTES]

Targets (default: all):
  appliance      python -m firmware on CPython, stations from a --config file
  appliance-mpy  the same under .venv/bin/micropython (-X heapsize=8M, or
                 --mpy-heap): rates, and heap from `show system memory`
                 (gc.mem_alloc after gc.collect)
  kamailio       bench/refs/kamailio.cfg (registrar + proxy, digest, in-memory
                 usrloc); memory is shared memory in use (kamcmd core.shmmem)
  sippy          Sippy B2BUA (b2bua_simple) with a fixed next hop; calls only:
                 sippy has no registrar, so its calls go straight to the UAS

Method (SIPp, tests/interop/scenarios):
  REGISTER/s   reg_station.xml (REGISTER, 401, REGISTER with digest, 200 = one
               registration) over a pool of stations, closed loop: -users U keeps
               U registrations in flight, so the rate is what the server
               sustains, not what we offer.  A calibration run sizes the
               measured run to last --seconds; the rate is successful
               registrations / SIPp's elapsed time, failures are reported.
  calls/s      uac_call.xml -> server -> uas_call.xml, 10 ms talk time, random
               hang-up side, closed loop with -users U (U callers, 2U callees,
               registered first from the UAC and UAS ports).  The UAS here
               sends no 180 (the tests' UAS does): sippy can deliver a 180
               after the 200 (its worker threads reorder), which SIPp rejects.
  memory       after registering N stations: the increase divided by N; with N
               calls up (counted in `show calls`): the increase over the heap
               before them divided by N; and what is still held per call once
               they ended (reported in the notes).
               Per call only for the appliance: kamailio, a proxy, keeps no
               call state after the INVITE transaction.

Prints a Markdown table and writes it to bench/results/callserver.md (or
--out).  Reports numbers; exits 1 when a measurement could not be made (a
server did not start, SIPp failed outright) and, with --heap-goal, when the
appliance's MicroPython heap per registration or per ended call exceeds it
(CI runs `--quick --heap-goal 1024`); never on speed.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(HERE, "refs"))

from tests.interop import sipprun  # noqa: E402
from refservers import Kamailio, Sippy  # noqa: E402

DOMAIN = "branch.example.com"
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
ALL_TARGETS = ("appliance", "appliance-mpy", "kamailio", "sippy")
# Talk time of the calls/s runs.  Not zero: with the BYE right behind the ACK,
# kamailio's parallel workers can deliver the BYE first, which SIPp's UAS
# (rightly, for a single UA) counts as a failed call.
TALK_MS = 10


class Plan:
    def __init__(self, quick, seconds=None, mpy_heap="8M"):
        self.quick = quick
        self.mpy_heap = mpy_heap
        self.seconds = seconds or (2.0 if quick else 10.0)
        self.reg_pool = 50 if quick else 150      # stations for REGISTER/s (the appliance
                                                  # takes 256 stations, calls need 60 more)
        self.reg_users = 10 if quick else 20      # registrations in flight
        self.call_users = 5 if quick else 20      # calls in flight
        self.calibrate = 30 if quick else 100     # registrations / calls to size a run
        self.heap_regs = 50 if quick else 100     # registrations for memory/registration
        self.heap_calls = 10 if quick else 20     # calls held for memory/call
        self.max_count = 20000 if quick else 300000   # cap of one measured run


def reg_exts(plan):
    return [str(3000 + i) for i in range(max(plan.reg_pool, plan.heap_regs))]


def call_exts(users):
    callers = [str(1000 + i) for i in range(users)]
    uac_hangs = [str(2000 + i) for i in range(users)]
    uas_hangs = [str(2100 + i) for i in range(users)]
    return callers, uac_hangs, uas_hangs


def bench_uas_scenario(tmp):
    """uas_call.xml without its 180 Ringing (see the module docstring), and
    waiting up to 10 minutes (not 30 s) for the caller's BYE, for held calls."""
    src = os.path.join(sipprun.SCENARIOS, "uas_call.xml")
    with open(src) as f:
        text = f.read()
    text, n = re.subn(r"\s*<send>\s*<!\[CDATA\[\s*SIP/2\.0 180 Ringing.*?\]\]>\s*</send>", "",
                      text, count=1, flags=re.S)
    assert n == 1, "uas_call.xml: 180 block not found"
    text, n = re.subn(r'<recv request="BYE" timeout="\d+"/>', '<recv request="BYE" timeout="600000"/>',
                      text)
    assert n == 1, "uas_call.xml: BYE wait not found"
    path = os.path.join(tmp, "uas_call_no180.xml")
    with open(path, "w") as f:
        f.write(text)
    return path


# -- targets -------------------------------------------------------------------

class ApplianceTarget:
    registrar = True

    def __init__(self, plan, tmp, micropython=False):
        from tests.harness import Booted
        self.name = "appliance-mpy" if micropython else "appliance"
        self.micropython = micropython
        callers, a, b = call_exts(max(plan.call_users, plan.heap_calls))
        exts = reg_exts(plan) + callers + a + b
        cfg = os.path.join(tmp, "%s.conf" % self.name)
        with open(cfg, "w") as f:
            f.write(appliance_config(exts, max_regs=len(exts) + 50,
                                     max_calls=max(plan.call_users, plan.heap_calls) + 10))
        python = None
        if micropython:
            python = os.path.join(tmp, "micropython-%s" % plan.mpy_heap)
            with open(python, "w") as f:
                f.write('#!/bin/sh\nexec "%s" -X heapsize=%s "$@"\n' % (MICROPYTHON, plan.mpy_heap))
            os.chmod(python, 0o755)
        self.app = Booted.pipes(domain=DOMAIN, host="127.0.0.1", python=python,
                             extra=["--config", cfg])
        self.port = self.app.port

    def addr(self):
        return "127.0.0.1:%d" % self.port

    def memory(self):
        if not self.micropython:
            return None
        out = self.app.command("show system memory", timeout=30)
        m = re.search(r"Heap: (\d+) bytes used", out)
        if not m:
            raise AssertionError("show system memory: %r" % out)
        return int(m.group(1))

    def calls_up(self, callers):
        """Rows of `show calls` (Id Caller Callee State Duration) in state
        connected with one of our callers."""
        out = self.app.command("show calls", timeout=30)
        n = 0
        for line in out.splitlines():
            f = line.split()
            if len(f) >= 4 and f[1] in callers and f[3] == "connected":
                n += 1
        return n

    def transactions(self):
        out = self.app.command("show sip statistics", timeout=30)
        m = re.search(r"Transactions: (\d+)/", out)
        return int(m.group(1)) if m else None

    def tables(self):
        """{table: peak} from `show sip statistics`: the largest each table got."""
        out = self.app.command("show sip statistics", timeout=30)
        peaks = {}
        m = re.search(r"Transactions: \d+/(\d+) \(peak (\d+)\)", out)
        if m:
            peaks["transactions"] = int(m.group(2))
            peaks["transactions max"] = int(m.group(1))
        for name in ("bindings", "calls", "dialogs"):
            m = re.search(r"^\s*%s peak\s+(\d+)" % name, out, re.M)
            if m:
                peaks[name] = int(m.group(1))
        return peaks

    def crash(self):
        """The first task crash in the appliance's log, if any, for the error."""
        try:
            log = self.app.command("show log | match crashed", timeout=30)
        except Exception:
            return " (appliance console gone)"
        lines = [ln.strip() for ln in log.splitlines() if "crashed" in ln]
        return " (appliance log: %s)" % lines[0] if lines else ""

    def close(self):
        self.app.close()


def appliance_config(exts, max_regs, max_calls):
    p = "set services convergence-services "
    lines = [p + "sip domain " + DOMAIN,
             p + "call-server max-registrations %d" % max_regs,
             p + "call-server max-calls %d" % max_calls,
             # one source (127.0.0.1) sends all the load: keep pike out of the way
             p + "security rate-limit requests 100000",
             p + "security rate-limit window 1"]
    for e in exts:
        lines.append(p + "station s%s extension %s" % (e, e))
        lines.append(p + "station s%s password %s" % (e, sipprun.password_for(e)))
        # uac_call.xml does not answer a 407: calls as before the challenge (issue 12.3)
        lines.append(p + "station s%s caller-authentication registered-source" % e)
    return "\n".join(lines) + "\n"


class KamailioTarget:
    registrar = True
    name = "kamailio"

    def __init__(self, plan, tmp):
        self.k = Kamailio(domain=DOMAIN, shm_mb=256)
        self.port = self.k.port

    def addr(self):
        return "127.0.0.1:%d" % self.port

    def memory(self):
        return self.k.shm_used()

    def close(self):
        self.k.close()


class SippyTarget:
    registrar = False
    name = "sippy"

    def __init__(self, plan, tmp):
        self.uas_port = sipprun.free_udp_port()
        self.b = Sippy(next_hop=("127.0.0.1", self.uas_port))
        self.port = self.b.port

    def addr(self):
        return "127.0.0.1:%d" % self.port

    def memory(self):
        return None

    def close(self):
        self.b.close()


# -- measurements --------------------------------------------------------------

class Failed(Exception):
    pass


def check(result, what):
    if result.rc not in (0, 1) or not result.successful:
        raise Failed("%s: %s" % (what, result.describe()))
    return result


def register(target, tmp, exts, local_port, name):
    csv = sipprun.users_csv(os.path.join(tmp, name + ".csv"), exts)
    r = sipprun.run("reg_station", target.addr(), tmp, local_port=local_port, inf=csv,
                    calls=len(exts), users=min(20, len(exts)), timeout_s=120)
    if r.rc != 0 or r.successful != len(exts):
        raise Failed("registering %s: %s" % (name, r.describe()))
    return r


def sized_runs(plan, one):
    """Calibrate with plan.calibrate, then size a run to last plan.seconds at
    the rate seen; rerun (up to twice) while a run was much too short."""
    r = one(plan.calibrate)
    for _ in range(3):
        rate = r.successful / max(r.elapsed_s, 1e-3)
        n = int(min(plan.max_count, max(plan.calibrate, rate * plan.seconds * 1.1)))
        r = one(n)
        if r.elapsed_s >= 0.7 * plan.seconds or n >= plan.max_count:
            break
    return r


def reg_rate(plan, target, tmp):
    exts = reg_exts(plan)[:plan.reg_pool]
    csv = sipprun.users_csv(os.path.join(tmp, "regpool.csv"), exts)
    port = sipprun.free_udp_port()

    def one(n):
        return check(sipprun.run("reg_station", target.addr(), tmp, local_port=port, inf=csv,
                                 calls=n, users=plan.reg_users,
                                 timeout_s=int(plan.seconds * 4 + 60)), "REGISTER run")
    r = sized_runs(plan, one)
    return r.successful / max(r.elapsed_s, 1e-3), r.failed, r.successful


def bench_uac_caller_hangs_up(tmp):
    """uac_call.xml with the caller always the one to hang up (chance 1), for
    held calls: otherwise half the callers would wait for the called side's
    BYE and give up after 30 s."""
    with open(os.path.join(sipprun.SCENARIOS, "uac_call.xml")) as f:
        text = f.read()
    text, n = re.subn(r'<nop next="dial" chance="0\.5"/>', '<nop next="dial" chance="1"/>', text)
    assert n == 1, "uac_call.xml: hang-up side choice not found"
    path = os.path.join(tmp, "uac_call_caller_hangs_up.xml")
    with open(path, "w") as f:
        f.write(text)
    return path


class CallRig:
    def __init__(self, plan, target, tmp, users):
        self.plan, self.target, self.tmp, self.users = plan, target, tmp, users
        self.callers, a, b = call_exts(users)
        self.csv = sipprun.calls_csv(os.path.join(tmp, "calls-%d.csv" % users),
                                     self.callers, a, b)
        self.callees = a + b
        self.uas_xml = bench_uas_scenario(tmp)
        self.take_ports()

    def take_ports(self):
        """Free UDP ports for the UAC and UAS, registered from there."""
        self.uac_port = sipprun.free_udp_port()
        self.uas_port = getattr(self.target, "uas_port", None) or sipprun.free_udp_port()
        if self.target.registrar:
            register(self.target, self.tmp, self.callers, self.uac_port,
                     "callers-%d" % self.users)
            register(self.target, self.tmp, self.callees, self.uas_port,
                     "callees-%d" % self.users)

    def start(self, n, duration_ms, csv=None, uac_xml=None):
        timeout = int(self.plan.seconds * 4 + duration_ms / 1000.0 + 60)
        uas = sipprun.start("uas_call", self.target.addr(), self.tmp, local_port=self.uas_port,
                            calls=n, duration_ms=duration_ms, timeout_s=timeout,
                            scenario_path=self.uas_xml)
        uac = sipprun.Sipp("uac_call", self.target.addr(), self.tmp, local_port=self.uac_port,
                           calls=n, users=self.users, inf=csv or self.csv,
                           duration_ms=duration_ms, timeout_s=timeout, scenario_path=uac_xml)
        return uac, uas

    def run(self, n):
        uac, uas = self.start(n, TALK_MS)
        r = uac.wait()
        ru = uas.wait(20)
        if sipprun.BIND_ERROR in (r.rc, ru.rc):
            # a port picked free was taken by another process before SIPp
            # bound it (seen once in CI): the same run on fresh ports
            self.take_ports()
            uac, uas = self.start(n, TALK_MS)
            r = uac.wait()
            ru = uas.wait(20)
        if r.successful is None:
            raise Failed("call run: %s\n%s" % (r.describe(), ru.describe()))
        return r, ru


def call_rate(plan, target, tmp):
    rig = CallRig(plan, target, tmp, plan.call_users)
    uas_failed = []

    def one(n):
        r, ru = rig.run(n)
        uas_failed.append(ru.failed or 0)
        return check(r, "call run")
    r = sized_runs(plan, one)
    return r.successful / max(r.elapsed_s, 1e-3), (r.failed or 0) + uas_failed[-1], r.successful


def wait_until(pred, deadline_s, what, proc=None, interval_s=0.1):
    """Poll pred() every interval_s (waiting on proc, if given, so that an
    early exit shows at once) until true or the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        v = pred()
        if v:
            return v
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failed("%s: not reached within %ss" % (what, deadline_s))
        if proc is not None:
            try:
                proc.wait(min(interval_s, left))
                raise Failed("%s: SIPp exited %s early" % (what, proc.returncode))
            except subprocess.TimeoutExpired:
                pass
        else:
            sipprun.select_wait(min(interval_s, left))


def settled(plan, target, proc=None, stage=""):
    """Wait until the SIP transaction table is empty (the last transactions
    linger 32 s, Timer J/L/M, absorbing retransmissions), so the memory
    figures are bindings and calls, not transactions."""
    if not hasattr(target, "transactions"):
        return
    seen = []

    def empty():
        seen.append(target.transactions())
        return seen[-1] == 0
    try:
        wait_until(empty, 60, "transaction table empty", proc, interval_s=1.0)
    except Failed as e:
        raise Failed("%s %s (transactions seen: %s)" % (stage, e, seen[-5:]))


def memory_per_registration(plan, target, tmp):
    settled(plan, target)
    base = target.memory()
    exts = reg_exts(plan)[:plan.heap_regs]
    register(target, tmp, exts, sipprun.free_udp_port(), "heapregs")
    settled(plan, target, stage="after registering")
    return (target.memory() - base) / float(len(exts))


def memory_per_call(plan, target, tmp):
    """(bytes per call up, bytes per call still held after they ended), on a
    fresh server: only the call stations registered."""
    n = plan.heap_calls
    rig = CallRig(plan, target, tmp, n)
    callers, a, _ = call_exts(n)
    # every call hung up by the caller after a talk time long enough to
    # measure with the calls up (after the transactions settle)
    csv = sipprun.calls_csv(os.path.join(tmp, "held.csv"), callers, a, a)
    talk_ms = 50000
    settled(plan, target, stage="before the calls")
    before = target.memory()
    uac, uas = rig.start(n, talk_ms, csv=csv, uac_xml=bench_uac_caller_hangs_up(tmp))
    try:
        wait_until(lambda: target.calls_up(callers) >= n, 30, "%d calls up" % n, uac.proc)
        settled(plan, target, uac.proc, stage="with the calls up")
        up = target.memory()
        if target.calls_up(callers) < n:
            raise Failed("calls ended while measuring: talk time too short")
        r = uac.wait(talk_ms / 1000.0 + 60)
        if r.rc != 0 or r.successful != n:
            raise Failed("held calls: %s" % r.describe())
        uas.wait(30)
        wait_until(lambda: target.calls_up(callers) == 0, 30, "calls ended")
        settled(plan, target, stage="after the calls")
        after = target.memory()
    finally:
        uac.stop()
        uas.stop()
    return (up - before) / float(n), (after - before) / float(n)


# -- driver --------------------------------------------------------------------

def measure(name, plan, tmp):
    row = {"target": name, "errors": []}
    makers = {
        "appliance": lambda: ApplianceTarget(plan, tmp),
        "appliance-mpy": lambda: ApplianceTarget(plan, tmp, micropython=True),
        "kamailio": lambda: KamailioTarget(plan, tmp),
        "sippy": lambda: SippyTarget(plan, tmp),
    }
    steps = {"appliance": ("reg", "call"),
             "appliance-mpy": ("reg", "call", "memreg", "memcall"),
             "kamailio": ("reg", "call", "memreg"), "sippy": ("call",)}[name]
    fns = {"reg": reg_rate, "call": call_rate, "memreg": memory_per_registration,
           "memcall": memory_per_call}
    for key in steps:      # a fresh server for each measurement
        try:
            t = makers[name]()
        except Exception as e:  # a server that does not start fails every step
            row["errors"].append("start: %s" % _short(e))
            break
        try:
            row[key] = fns[key](plan, t, tmp)
            if hasattr(t, "tables"):
                for k, v in t.tables().items():
                    row.setdefault("tables", {})[k] = max(v, row.get("tables", {}).get(k, 0))
        except Exception as e:
            why = ""
            crash = getattr(t, "crash", None)
            if crash is not None:
                why = crash()
            row["errors"].append("%s: %s%s" % (key, _short(e), why))
            # the table keeps one line; the log gets SIPp's own words
            print("callserver: %s %s failed:\n%s" % (name, key, str(e)[-3000:]), file=sys.stderr)
            if os.environ.get("BENCH_DEBUG"):
                traceback.print_exc()
        finally:
            t.close()
    return row


def _short(e):
    text = str(e).strip() or e.__class__.__name__
    return text.splitlines()[0][:300]


def fmt_rate(v):
    if v is None:
        return "n/a"
    rate, failed, n = v
    return "%.0f (%d ok, %d failed)" % (rate, n, failed or 0)


def fmt_bytes(v):
    return "n/a" if v is None else "%.0f" % v


def table(rows, plan):
    lines = [
        "# Call server benchmark (%s)" % ("quick" if plan.quick else "full"),
        "",
        "Loopback, SIPp closed loop; REGISTER/s = digest registrations (REGISTER, 401, "
        "REGISTER, 200) per second with %d in flight; calls/s = INVITE..BYE station calls "
        "per second through the server with %d in flight; runs sized to ~%.0f s. "
        "Memory: MicroPython heap (appliance-mpy, gc.mem_alloc, -X heapsize=%s) or kamailio "
        "shared memory, "
        "increase per registration (%d stations) and per established call (%d held), %s. "
        "All processes share %d CPU cores." % (
            plan.reg_users, plan.call_users, plan.seconds, plan.mpy_heap,
            plan.heap_regs, plan.heap_calls,
            "measured once the appliance's transaction table is empty",
            os.cpu_count() or 0),
        "",
        "| target | REGISTER/s | calls/s | bytes/registration | bytes/call | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        notes = []
        if r["target"] == "sippy":
            notes.append("no registrar: registration n/a; calls go straight to the UAS")
        if r["target"] == "appliance":
            notes.append("CPython: no heap figure (see appliance-mpy)")
        if r["target"] == "kamailio":
            notes.append("memory = shm; proxy keeps no per-call state after the INVITE")
        memcall = r.get("memcall") or (None, None)
        mem = (r.get("memreg"), memcall[0])
        if memcall[1] is not None:
            notes.append("%.0f bytes per call still held after the calls ended" % memcall[1])
        tb = r.get("tables")
        if tb:
            notes.append("largest tables: %d/%d transactions, %d bindings, %d calls, %d dialogs" % (
                tb.get("transactions", 0), tb.get("transactions max", 0), tb.get("bindings", 0),
                tb.get("calls", 0), tb.get("dialogs", 0)))
        notes += ["ERROR " + e for e in r["errors"]]
        reg = r.get("reg")
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            r["target"],
            "n/a" if r["target"] == "sippy" else ("-" if reg is None else fmt_rate(reg)),
            "-" if r.get("call") is None else fmt_rate(r["call"]),
            fmt_bytes(mem[0]), fmt_bytes(mem[1]), "; ".join(notes).replace("|", "/")))
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short rate runs (CI); memory is still measured settled, "
                         "so about 3 minutes in all")
    ap.add_argument("--targets", default=",".join(ALL_TARGETS),
                    help="comma-separated subset of %s" % ", ".join(ALL_TARGETS))
    ap.add_argument("--seconds", type=float, help="length of each measured run")
    ap.add_argument("--mpy-heap", default="8M",
                    help="MicroPython heap for appliance-mpy (-X heapsize=), default 8M")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "callserver.md"))
    ap.add_argument("--heap-goal", type=int, metavar="BYTES",
                    help="exit 1 when appliance-mpy's heap per registration, or what a call "
                         "still holds after it ended, exceeds BYTES (a memory goal, not speed)")
    args = ap.parse_args(argv)
    plan = Plan(args.quick, args.seconds, args.mpy_heap)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    for n in names:
        if n not in ALL_TARGETS:
            ap.error("unknown target %r" % n)
    tmp = tempfile.mkdtemp(prefix="bench-callserver-")
    os.chmod(tmp, 0o755)
    rows = []
    try:
        for n in names:
            t0 = time.monotonic()
            rows.append(measure(n, plan, tmp))
            print("callserver: %s measured in %.1f s" % (n, time.monotonic() - t0),
                  file=sys.stderr)
    finally:
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
    text = table(rows, plan)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    failed = any(r["errors"] for r in rows)
    if args.heap_goal is not None:
        for problem in memory_over(rows, args.heap_goal):
            print("callserver: MEMORY GOAL MISSED: " + problem, file=sys.stderr)
            failed = True
    return 1 if failed else 0


def memory_over(rows, limit):
    """What exceeds the heap goal in the appliance-mpy row (nothing measured
    counts as a miss)."""
    out = []
    for r in rows:
        if r["target"] != "appliance-mpy":
            continue
        reg = r.get("memreg")
        held = (r.get("memcall") or (None, None))[1]
        if reg is None or reg > limit:
            out.append("heap per registration %s bytes (goal <= %d)" % (fmt_bytes(reg), limit))
        if held is None or held > limit:
            out.append("heap still held per ended call %s bytes (goal <= %d)" % (
                fmt_bytes(held), limit))
    return out


if __name__ == "__main__":
    sys.exit(main())
