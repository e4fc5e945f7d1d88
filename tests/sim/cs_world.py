"""Shared set-up for the call server simulation tests: an appliance on the
virtual clock and the simulated network (self.network, tests/sim/simnet.py)
with SIP stations (and optionally the analog stations of the sim board),
simulated SIP phones (tests/sim/sipphone.py), and raw UDP clients on the
simulated network for byte-level checks."""
import os
import socket

from tests.sim.appliance import SimWorld, simulated
from tests.sim.sipphone import PhoneNet

B = "set services convergence-services "
DOMAIN = "branch.example.com"


def password(ext):
    return "Secret-" + ext


class CsWorld(SimWorld):
    def __init__(self, tmp_path, seed=1, sip_exts=("2001", "2002", "2003"), extra=(),
                 fxs=False, loss=0.0, hosts="distinct"):
        self.seed = seed
        lines = [B + "sip domain " + DOMAIN]
        for ext in sip_exts:
            lines.append(B + "station s%s extension %s" % (ext, ext))
            lines.append(B + "station s%s password %s" % (ext, password(ext)))
        if fxs:
            for port, ext in ((1, "1001"), (2, "1002")):
                lines.append(B + "station a%s extension %s" % (ext, ext))
                lines.append(B + "station a%s fxs-port %d" % (ext, port))
                lines.append(B + "station a%s display-name Analog%d" % (ext, port))
                lines.append(B + "station a%s password %s" % (ext, password(ext)))
            lines.append(B + "media rtp-port-min %d" % (31000 + (seed % 40) * 200))
            lines.append(B + "media rtp-port-max %d" % (31000 + (seed % 40) * 200 + 98))
        lines.extend(extra)
        path = str(tmp_path) + "/cs.conf"      # (MicroPython has no os.path)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.app = simulated(str(tmp_path) + "/state", seed, args=("--config", path))
        self.cs = self.app.callserver
        self.network = self.app.network
        self.server = ("127.0.0.1", self.app.sip_port)
        self.net = PhoneNet(self.app.sched, seed=seed, loss=loss, hosts=hosts, trace=64,
                            network=self.network)
        self.phones = {}
        for ext in sip_exts:
            self.phones[ext] = self.net.add(ext, password(ext), DOMAIN, self.server)
        self.net.start()
        self._raw = []

    def close(self):
        for s in self._raw:
            s.close()
        self.net.close()
        self.app.close()

    def cli(self, line):
        return self.app.commands.execute(self.app, line)

    def assert_refused(self, lines, why):
        """Committing lines (set statements) fails with a message containing why."""
        from firmware.config.schema import ConfigError
        try:
            self.app.config.load_file("test.conf", "\n".join(lines) + "\n")
        except ConfigError as e:
            assert why in str(e), (why, str(e))
            return
        raise AssertionError("committed: %r" % (lines,))

    def register_all(self, exts=None):
        for ext in exts or self.phones:
            self.phones[ext].register()
        self.run_until(lambda: all(self.phones[e].registered for e in (exts or self.phones)), 5000)

    def leaks(self):
        return self.cs.leaks()

    def assert_no_leaks(self, bindings=None):
        """Every transaction runs out within 64*T1 = 32 s; then nothing of a
        call may be left in the appliance or in the phones."""
        self.run(40000)
        lk = self.leaks()
        assert lk["calls"] == 0 and lk["dialogs"] == 0 and lk["sessions"] == 0, (lk, self.seed)
        assert lk["transactions"] == 0 and lk["active"] == 0, (
            lk, self.app.sip.layer.transactions(), self.seed)
        if bindings is not None:
            assert lk["bindings"] == bindings, (lk, self.seed)
        for p in self.phones.values():
            pl = p.leaks()
            assert pl["transactions"] == 0 and pl["calls"] == 0 and pl["dialogs"] == 0, (
                p.user, pl, self.seed)
            assert p.errors == [], (p.user, p.errors)

    # -- raw datagrams, for byte-level checks
    def raw(self, host="127.0.0.1"):
        """A datagram socket on the simulated network at host (a new host
        named by its address, or the appliance's own at 127.0.0.1)."""
        s = self.network.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, 0))
        s.setblocking(False)
        self._raw.append(s)
        return s

    def exchange(self, sock, data, ms=300):
        """Send one datagram to the appliance, run the clock, return every reply."""
        sock.sendto(data if isinstance(data, bytes) else data.encode(), self.server)
        self.run(ms)
        return self.drain(sock)

    @staticmethod
    def drain(sock):
        """Every datagram waiting on a non-blocking socket."""
        out = []
        while True:
            try:
                out.append(sock.recv(65535))
            except OSError:
                return out

    @staticmethod
    def ok_for(req):
        """A 200 OK text answering req (a raw client's answer to a BYE)."""
        return "\r\n".join(["SIP/2.0 200 OK"] + ["Via: %s" % v for v in req.get_all("via")] + [
            "From: %s" % req.get("from"), "To: %s" % req.get("to"), "Call-ID: %s" % req.call_id,
            "CSeq: %s" % req.get("cseq"), "Content-Length: 0", "", ""])
