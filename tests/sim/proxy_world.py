"""The world of the outbound proxy tests (tests/sim/test_outbound_proxy.py)
and of bench/survivability.py's shadow-binding measure: an appliance with
SIP stations and a peer call server (SipPeer: a record-routing proxy and
digest registrar for DOMAIN) in control on the simulated network, branch
phones pointed at the appliance, and one HQ phone registered at the peer.
Portable (no os.path, no tempfile)."""
from tests.sim.appliance import simulated, network, APPLIANCE_HOST
from tests.sim.cs_world import CsWorld, B, DOMAIN, password
from tests.sim.sipphone import PhoneNet
from tests.sim.sippeer import SipPeer
from tests.portable import tmpdir, rmtree
from tests.sim.test_survivability import RECOMMENDED

PEER_HOST = "192.0.2.10"
HQ_HOST = "192.0.2.20"
BRANCH = ("2001", "2002", "2003")


class ProxyWorld(CsWorld):
    """CsWorld with a peer call server (SipPeer, a record-routing proxy and
    digest registrar for DOMAIN) in control, an HQ phone registered at it,
    and the branch phones pointed at the appliance."""

    def __init__(self, seed=1, extra=(), exts=BRANCH, peer_rate=None, devices=1, path=False):
        """exts: the branch stations; devices: phones per station (keys ext,
        then ext + "-2", ...: a desk phone and a softphone share the
        station's credentials); peer_rate: REGISTERs per second the peer
        accepts (503 beyond); path: the peer supports RFC 3327 Path."""
        self.seed = seed
        self.dir = tmp_path = tmpdir("outbound-proxy")
        self.network = net = network(seed)
        net.add_host("peer", PEER_HOST)
        users = dict((e, password(e)) for e in tuple(exts) + ("3001",))
        self.peer = SipPeer(None, users, host=PEER_HOST, network=net, domains=(DOMAIN,),
                            max_registers_per_s=peer_rate, path=path)
        port = self.peer.bind()
        lines = [B + "sip domain " + DOMAIN,
                 B + "peer-call-server hq address " + PEER_HOST,
                 B + "peer-call-server hq port %d" % port,
                 B + "trunk pstn fxo-port 1", B + "trunk pstn prefix 9"]
        lines += list(RECOMMENDED)
        if len(exts) * devices > 100:
            lines.append(B + "call-server max-registrations %d" % (len(exts) * devices + 10))
        for ext in exts:
            lines.append(B + "station s%s extension %s" % (ext, ext))
            lines.append(B + "station s%s password %s" % (ext, password(ext)))
        lines.extend(extra)
        path = tmp_path + "/px.conf"
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.app = simulated(tmp_path + "/state", seed, args=("--config", path), net=net)
        self.peer.start(self.app.sched)
        self.peer.gateways.append(("9", APPLIANCE_HOST, self.app.sip_port))
        self.cs = self.app.callserver
        self.px = self.app.outbound
        self.server = (APPLIANCE_HOST, self.app.sip_port)
        self.net = PhoneNet(self.app.sched, seed=seed, trace=64 if len(exts) < 50 else 0,
                            network=net)
        self.phones = {}
        n = len(exts) * devices
        i = 0
        for d in range(devices):
            for ext in exts:
                # 127.0.1.x, then 10.1.y.x: one host per phone, as on a LAN
                host = None if n < 250 else "10.1.%d.%d" % (i // 250, i % 250 + 1)
                key = ext if d == 0 else "%s-%d" % (ext, d + 1)
                self.phones[key] = self.net.add(ext, password(ext), DOMAIN, self.server,
                                                host=host)
                i += 1
        self.hq = self.net.add("3001", password("3001"), DOMAIN, (PEER_HOST, port), host=HQ_HOST)
        self.app.sched.max_tasks += self.net.tasks_needed() + 1
        self.net.start()
        self._raw = []
        self.run_until(lambda: not self.app.control.local, 3000)

    def assert_no_leaks(self, bindings=None):
        """As CsWorld's, but the monitor's OPTIONS probes are always in flight."""
        self.run(40000)
        lk = self.leaks()
        assert lk["calls"] == 0 and lk["dialogs"] == 0 and lk["sessions"] == 0, (lk, self.seed)
        left = [t for t in self.app.sip.layer.transactions() if "OPTIONS" not in repr(t)]
        assert left == [] and self.px.relays == {}, (left, self.px.relays, self.seed)
        if bindings is not None:
            assert lk["bindings"] == bindings, (lk, self.seed)
        for p in list(self.phones.values()) + [self.hq]:
            pl = p.leaks()
            assert pl["transactions"] == 0 and pl["calls"] == 0 and pl["dialogs"] == 0, (
                p.user, pl, self.seed)
            assert p.errors == [], (p.user, p.errors)

    def peer_invites(self):
        return len([m for m, u in self.peer.log if m == "INVITE"])

    def cut(self):
        self.network.partition("appliance", "peer")
        self.run_until(lambda: self.app.control.local, 5000)

    def heal(self):
        self.network.heal()
        self.run_until(lambda: not self.app.control.local, 60000, step=100)

    def connect(self, a, b):
        c = self.phones[a].call(b)
        self.run_until(lambda: c.state == "connected", 8000)
        return c

    def hang_up(self, a, c):
        self.phones[a].hangup(c)
        self.run_until(lambda: c.state == "terminated", 8000)
        self.run(1000)          # the BYE's 200 comes back


