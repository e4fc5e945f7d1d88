"""Test helper: a baresip SIP phone (Debian `baresip-core`) driven over its
ctrl_tcp socket, with its own temporary configuration directory.

    a = Baresip("2000", "Secret-2000", registrar_port=5060, domain="branch.example.com")
    b = Baresip("2001", "Secret-2001", registrar_port=5060, domain="branch.example.com")
    a.wait_registered(); b.wait_registered()      # reginfo OK or REGISTER_OK
    a.dial("sip:2001@branch.example.com")         # via the registrar (outbound proxy)
    b.wait_event("CALL_INCOMING"); a.wait_event("CALL_RINGING"); b.answer()
    a.wait_event("CALL_ESTABLISHED"); b.wait_event("CALL_ESTABLISHED")
    m = b.mark(); a.hold(); b.wait_remote_offer(m); assert a.on_hold()
    a.resume(); b.hangup()
    a.wait_event("CALL_CLOSED"); b.wait_event("CALL_CLOSED")
    a.close(); b.close()                          # quit: unregisters, then exits

extra_config adds config lines (e.g. "module_app\t\tmwi.so"), account_params
more account parameters (";mwi=yes"), contacts the contacts file (e.g.
'<sip:2001@DOMAIN>;presence=p2p' for the presence module), outbound the
outbound proxy URI instead of sip:registrar_host:registrar_port (e.g.
"sip:127.0.0.1:5061;transport=tls").

One account per instance: AOR sip:USER@DOMAIN, digest password PASSWORD,
every request routed to 127.0.0.1:registrar_port (outbound proxy), REGISTER
every `regint` seconds.  SIP listens on `host` (127.0.0.1) at a free UDP port (also
TCP, baresip's default), RTP on a small free range.  No sound card: the audio
source is `ausine` (a 440 Hz tone), the player is `aubridge` (a device nobody
reads), codecs G.711 only.  Incoming calls ring until answer() (answermode
manual) unless answermode="auto".

ctrl_tcp speaks netstrings of JSON: commands {"command", "params", "token"}
get {"response": true, "ok", "data", "token"}; events arrive as
{"event": true, "type": "CALL_INCOMING", "class", "accountaor", "peeruri",
"id", "param", ...}.  wait_event() reads them with a socket deadline; it
never sleeps.  The baresip log is in `self.log_path` (tail() reads it), and
every event seen is kept in `self.events` for failure messages.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

from tests.harness import stop_process

MODULE_PATH = "/usr/lib/baresip/modules"
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


class BaresipError(AssertionError):
    pass


def _free_port(kind=socket.SOCK_DGRAM, also_tcp=False):
    """A port free on 127.0.0.1 for UDP (and TCP when also_tcp)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        if also_tcp:
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                t.close()
                continue
            t.close()
        s.close()
        return port
    raise BaresipError("no free port on 127.0.0.1")


def _free_udp_range(n):
    """First port of n consecutive ports free for UDP (RTP and RTCP)."""
    for _ in range(50):
        base = _free_port() & ~1
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise BaresipError("no %d consecutive free UDP ports" % n)


def netstring(data):
    return b"%d:%s," % (len(data), data)


class NetstringReader:
    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            colon = self.buf.find(b":")
            if colon < 0:
                break
            try:
                n = int(self.buf[:colon])
            except ValueError:
                raise BaresipError("bad netstring from ctrl_tcp: %r" % self.buf[:80])
            end = colon + 1 + n
            if len(self.buf) < end + 1:
                break
            if self.buf[end:end + 1] != b",":
                raise BaresipError("bad netstring end from ctrl_tcp: %r" % self.buf[:80])
            out.append(self.buf[colon + 1:end])
            self.buf = self.buf[end + 1:]
        return out


class Baresip:
    def __init__(self, user, password, registrar_port, domain="branch.example.com",
                 registrar_host="127.0.0.1", regint=600, answermode="manual",
                 binary="baresip", display_name=None, start_timeout_s=20, extra_config=(),
                 account_params="", contacts="", outbound=None, host="127.0.0.1"):
        self.binary = shutil.which(binary)
        if not self.binary:
            raise BaresipError("baresip not found: install the Debian package baresip-core")
        if not os.path.exists(os.path.join(MODULE_PATH, "ctrl_tcp.so")):
            raise BaresipError("%s/ctrl_tcp.so missing: install baresip-core" % MODULE_PATH)
        self.user = user
        self.domain = domain
        self.aor = "sip:%s@%s" % (user, domain)
        self.dir = tempfile.mkdtemp(prefix="baresip-%s-" % user)
        self.sip_port = _free_port(also_tcp=True)
        self.ctrl_port = _free_port(socket.SOCK_STREAM)
        rtp = _free_udp_range(8)
        self.rtp_ports = (rtp, rtp + 7)
        self.events = []
        self._pending = []      # events not yet consumed by wait_event
        self._responses = {}
        self._token = 0
        self._reader = NetstringReader()
        self.sock = None
        name = '"%s" ' % display_name if display_name else ""
        outbound = outbound or "sip:%s:%d" % (registrar_host, registrar_port)
        account = ("%s<%s>;auth_user=%s;auth_pass=%s;outbound=\"%s\";regint=%d;"
                   "answermode=%s;audio_codecs=PCMU,PCMA%s\n" % (
                       name, self.aor, user, password, outbound,
                       regint, answermode, account_params))
        self.account_line = account.strip()      # for uanew (see test_baresip_mwi.py)
        config = [
            "poll_method\t\tepoll",
            "sip_listen\t\t%s:%d" % (host, self.sip_port),
            "net_interface\t\t%s" % host,
            "call_local_timeout\t120",
            "call_max_calls\t\t4",
            "audio_source\t\tausine,440",
            "audio_alert\t\tausine,440",
            "audio_player\t\taubridge,nobody",
            "ausrc_srate\t\t48000",   # ausine: 48 kHz only; baresip resamples
            "auplay_srate\t\t48000",
            "ausrc_channels\t\t2",    # and in stereo only
            "auplay_channels\t\t2",
            "rtp_ports\t\t%d-%d" % (rtp, rtp + 7),
            "module_path\t\t%s" % MODULE_PATH,
            "module\t\t\tg711.so",
            "module\t\t\tausine.so",
            "module\t\t\taubridge.so",
            "module_app\t\taccount.so",
            "module_app\t\tmenu.so",
            "module_app\t\tctrl_tcp.so",
            "ctrl_tcp_listen\t\t127.0.0.1:%d" % self.ctrl_port,
        ] + list(extra_config)
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write("\n".join(config) + "\n")
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write(account)
        with open(os.path.join(self.dir, "contacts"), "w") as f:
            f.write(contacts)
        self.log_path = os.path.join(self.dir, "baresip.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary, "-f", self.dir], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=self.dir)
        try:
            self._connect(start_timeout_s)
        except BaseException:
            self.close()
            raise

    # -- plumbing ---------------------------------------------------------------

    def _connect(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while True:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.connect(("127.0.0.1", self.ctrl_port))
                self.sock = s
                return
            except OSError:
                s.close()
            left = deadline - time.monotonic()
            if left <= 0:
                raise BaresipError("baresip ctrl_tcp not listening after %ds\n%s" % (
                    timeout_s, self.tail()))
            try:   # wait on the process, not the clock: an early exit shows at once
                self.proc.wait(min(0.05, left))
                raise BaresipError("baresip exited %s before listening\n%s" % (
                    self.proc.returncode, self.tail()))
            except subprocess.TimeoutExpired:
                pass

    def tail(self, n=4000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return ""
        return data[-n:].decode("utf-8", "replace")

    def _read(self, deadline):
        """Read what ctrl_tcp sends until the deadline; False at the deadline."""
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not data:
            raise BaresipError("baresip closed ctrl_tcp (exit %s)\n%s" % (
                self.proc.poll(), self.tail()))
        for raw in self._reader.feed(data):
            msg = json.loads(raw.decode("utf-8", "replace"))
            if msg.get("event"):
                msg["_seq"] = len(self.events)
                self.events.append(msg)
                self._pending.append(msg)
            elif msg.get("response"):
                self._responses[msg.get("token")] = msg
        return True

    def command(self, command, params=None, timeout_s=15):
        """Run a menu command; returns its response data; raises unless ok.
        (15 s: baresip 1.0's mwi module keeps its loop busy logging
        "subscribing" lines, and on a loaded 2-core machine ctrl_tcp answers
        late; the deadline only bounds the wait.)"""
        self._token += 1
        token = "t%d" % self._token
        msg = {"command": command, "token": token}
        if params is not None:
            msg["params"] = params
        self.sock.sendall(netstring(json.dumps(msg).encode()))
        deadline = time.monotonic() + timeout_s
        while token not in self._responses:
            if not self._read(deadline):
                raise BaresipError("no response to %r within %ss\n%s" % (
                    msg, timeout_s, self.tail()))
        resp = self._responses.pop(token)
        if not resp.get("ok"):
            raise BaresipError("%s %s failed: %s" % (command, params or "", resp.get("data")))
        return resp.get("data", "")

    # -- events -----------------------------------------------------------------

    def mark(self):
        """A position in the event stream for wait_event(since=...)."""
        return len(self.events)

    def wait_event(self, kind, deadline_s=10, match=None, since=0):
        """The next not yet consumed event of type `kind` (e.g. CALL_INCOMING,
        CALL_ESTABLISHED, CALL_CLOSED, REGISTER_OK, CALL_REMOTE_SDP; or a tuple
        of types) received
        at or after mark `since`, for which match(event) is true; waits up to
        deadline_s on the socket.  Raises with the events seen and the log
        tail when none comes."""
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        deadline = time.monotonic() + deadline_s
        while True:
            for i, ev in enumerate(self._pending):
                if (ev.get("type") in kinds and ev["_seq"] >= since
                        and (match is None or match(ev))):
                    del self._pending[i]
                    return ev
            if not self._read(deadline):
                raise BaresipError("%s: no %s within %ss; events: %s\n%s" % (
                    self.aor, kind, deadline_s,
                    [(e.get("type"), e.get("param")) for e in self.events][-20:],
                    self.tail()))

    def drain_events(self):
        """Forget events not yet consumed (e.g. after a phase of a test)."""
        self._pending = []

    def registration_state(self):
        """'OK', 'ERR' or '' (not yet) from reginfo for this account."""
        info = ANSI_RE.sub("", self.reginfo())
        for line in info.splitlines():
            if self.aor in line:
                for state in ("OK", "ERR"):
                    if (" %s " % state) in line + " ":
                        return state
        return ""

    def is_registered(self):
        return self.registration_state() == "OK"

    def wait_registered(self, deadline_s=10):
        """Registered now (reginfo) or a REGISTER_OK within the deadline;
        raises at once on a failed registration (reginfo ERR or
        REGISTER_FAIL).  Asking first closes the race with an event sent
        before the control connection was up; one sent after the answer is
        queued."""
        state = self.registration_state()
        if state == "OK":
            return True
        if state == "ERR":
            raise BaresipError("%s: registration failed\n%s" % (self.aor, self.tail()))
        ev = self.wait_event(("REGISTER_OK", "REGISTER_FAIL"), deadline_s)
        if ev.get("type") == "REGISTER_FAIL":
            raise BaresipError("%s: registration failed: %s\n%s" % (
                self.aor, ev.get("param"), self.tail()))
        return True

    # -- phone actions ----------------------------------------------------------

    def dial(self, uri):
        return self.command("dial", uri)

    def answer(self):
        return self.command("accept")

    def hangup(self):
        return self.command("hangup")

    def _reinvite(self, command, deadline_s):
        """hold/resume send a re-INVITE; wait for the SDP answer to it."""
        since = self.mark()
        self.command(command)
        self.wait_event("CALL_REMOTE_SDP", deadline_s, lambda e: e.get("param") == "answer",
                        since)

    def hold(self, deadline_s=5):
        """Put the current call on hold (re-INVITE a=sendonly) and wait for
        the far end's answer."""
        self._reinvite("hold", deadline_s)

    def resume(self, deadline_s=5):
        """Take the current call off hold (re-INVITE a=sendrecv), wait for the answer."""
        self._reinvite("resume", deadline_s)

    def on_hold(self):
        """listcalls says the current call is on hold (held by us)."""
        return "(on hold)" in self.calls()

    def wait_remote_offer(self, since, deadline_s=5):
        """The far end sent an SDP offer after mark `since` (its hold or
        resume re-INVITE): m = b.mark(); a.hold(); b.wait_remote_offer(m)."""
        return self.wait_event("CALL_REMOTE_SDP", deadline_s,
                               lambda e: e.get("param") == "offer", since)

    def hold_and_resume(self, far):
        """Hold the call with far, then resume it; each re-INVITE must reach
        far as an offer, and listcalls must agree."""
        m = far.mark()
        self.hold()
        far.wait_remote_offer(m)
        assert self.on_hold(), self.calls()
        m = far.mark()
        self.resume()
        far.wait_remote_offer(m)
        assert not self.on_hold(), self.calls()

    def send_dtmf(self, digits):
        for d in digits:
            self.command("sndcode", d)

    def calls(self):
        return self.command("listcalls")

    def reginfo(self):
        return self.command("reginfo")

    # -- teardown ---------------------------------------------------------------

    def alive(self):
        return self.proc.poll() is None

    def close(self, timeout_s=10):
        """Quit baresip (it unregisters on the way out), wait for it, clean up."""
        if self.proc.poll() is None and self.sock is not None:
            try:
                self.sock.sendall(netstring(json.dumps(
                    {"command": "quit", "token": "quit"}).encode()))
            except OSError:
                pass
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout_s)       # it was told to quit
            except subprocess.TimeoutExpired:
                stop_process(self.proc, 5)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
