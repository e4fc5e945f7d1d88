"""Shared set-up for the analog line tests: a booted appliance on the sim
board with four stations and two trunks, a SipPeer call server on its own
host (PEER_HOST) of the simulated network, and helpers to speak test tones
into phones/lines and find them in what came out."""
import os

from hal import g711
from hal.dsp import ToneGen, tone_ratio_pct
from tests.sim.appliance import SimWorld, simulated, network, APPLIANCE_HOST
from tests.sim.sippeer import SipPeer
from firmware.proxy.monitor import MAX_OUTSTANDING

USERS = {"1001": "pw-alice-1", "1002": "pw-bob-12", "1003": "pw-carol-1", "1004": "pw-dave-12"}
B = "set services convergence-services "
PEER_HOST = "192.0.2.10"      # the peer call server's host on the simulated network


def config_text(peer_port, rtp_base=30000, extra=()):
    lines = [
        B + "sip domain hq.example",       # the realm of the peer: station HA1s are for it
        B + "peer-call-server hq address " + PEER_HOST,
        B + "peer-call-server hq port %d" % peer_port,
        B + "station alice extension 1001",
        B + "station alice fxs-port 1",
        B + "station alice display-name Alice",
        B + "station alice password " + USERS["1001"],
        B + "station bob extension 1002",
        B + "station bob fxs-port 2",
        B + 'station bob display-name "Bob Smith"',
        B + "station bob password " + USERS["1002"],
        B + "station carol extension 1003",
        B + "station carol fxs-port 3",
        B + "station carol display-name Carol",
        B + "station carol password " + USERS["1003"],
        B + "station dave extension 1004",
        B + "station dave fxs-port 4",
        B + "station dave password " + USERS["1004"],
        B + "station dave call-waiting disable",
        B + "trunk pstn1 fxo-port 1",
        B + "trunk pstn1 did-target 1002",
        B + "trunk pstn1 prefix 9",
        B + "trunk pstn2 fxo-port 2",
        B + "trunk pstn2 did-target 1001",
        B + "trunk pstn2 prefix 8",
        B + "trunk pstn2 answer-supervision polarity-reversal",
        B + "trunk pstn2 disconnect-supervision battery",
        B + "trunk pstn2 disconnect-supervision loop",
        B + "trunk pstn2 disconnect-supervision polarity",
        B + "trunk pstn2 disconnect-supervision busy",
        B + "media rtp-port-min %d" % rtp_base,
        B + "media rtp-port-max %d" % (rtp_base + 98),
    ]
    lines.extend(extra)
    return "\n".join(lines) + "\n"


class World(SimWorld):
    def __init__(self, tmp_path, seed=1, extra=(), challenge_invites=False):
        self.seed = seed
        self.network = net = network(seed)
        net.add_host("peer", PEER_HOST)
        self.peer = SipPeer(None, USERS, challenge_invites=challenge_invites, host=PEER_HOST,
                            network=net)
        port = self.peer.bind()
        path = os.path.join(str(tmp_path), "analog.conf")
        with open(path, "w") as f:
            f.write(config_text(port, 30000 + (seed % 50) * 200, extra))
        self.app = simulated(os.path.join(str(tmp_path), "state"), seed, args=("--config", path),
                             net=net)
        self.peer.start(self.app.sched)
        self.peer.gateways.append(("9", APPLIANCE_HOST, self.app.sip_port))
        self.peer.gateways.append(("8", APPLIANCE_HOST, self.app.sip_port))
        self.gw = self.app.gateway
        self.sim = self.app.hardware.sim
        self.phones = self.sim.phones
        self.lines = self.sim.lines
        self._talkers = []
        self.app.sched.spawn(self._talk_task, "test-talkers")

    def close(self):
        self.peer.close()
        self.app.close()

    def fxs(self, port):
        return self.gw.fxs[port]

    def fxo(self, port):
        return self.gw.fxo[port]

    # -- audio
    def talk(self, sink, freq):
        """Every 20 ms, one frame of a freq Hz tone into sink(frame)."""
        gen = ToneGen((freq,), 8000)
        buf = bytearray(160)
        self._talkers.append((sink, gen, buf))

    def phone_talks(self, port, freq):
        self.talk(self.phones[port].speak, freq)

    def line_talks(self, port, freq):
        daa = self.sim.daas[port]
        pcm = self.sim.pcm
        self.talk(lambda f, c=daa.pcm_chan: pcm.inject(c, f), freq)

    def silence(self):
        self._talkers = []

    async def _talk_task(self):
        enc = g711.encoder("ulaw")
        while True:
            await self.app.sched.sleep(20)
            for sink, gen, buf in self._talkers:
                gen.fill(buf, enc)
                sink(buf)

    def leaks(self):
        lk = self.gw.leaks()
        lk["peer_bindings"] = len(self.peer.bindings)
        return lk

    def settle(self):
        """Let the four stations register with the peer."""
        self.run(3000)
        assert sorted(self.peer.bindings) == ["1001", "1002", "1003", "1004"], (
            self.peer.bindings, self.seed)
        for ext, r in self.gw.registrations.items():
            assert r.state == "registered", (ext, r.state, r.status, self.seed)

    def call(self, a, b_ext, b):
        """Phone a dials b_ext and phone b answers; returns when both talk."""
        pa, pb = self.phones[a], self.phones[b]
        pa.off_hook()
        self.run(200)
        pa.dial_dtmf(b_ext)
        self.run_until(lambda: pb.ringing, 3000)
        self.run_until(lambda: pb.caller_ids, 8000)
        pb.off_hook()
        self.run_until(lambda: self.fxs(a).state == "talk" and self.fxs(b).state == "talk", 2000)

    def assert_no_leaks(self):
        """Let every transaction run out (Timer J/K/L at most 64*T1 = 32 s), then
        nothing may be left: dialogs, sessions, RTP, transactions, subscriptions."""
        self.run(40000)
        lk = self.leaks()
        assert lk["dialogs"] == 0 and lk["sessions"] == 0 and lk["rtp"] == 0, (lk, self.seed)
        # the survivability monitor's OPTIONS probes run for ever: they are
        # bounded (in flight per address, plus Timer K's completed ones), and
        # nothing else may be left
        txns = self.app.sip.layer.transactions()
        probes = [t for t in txns if t.kind == "nict" and t.request is not None
                  and t.request.method == "OPTIONS"]
        assert lk["transactions"] - len(probes) == 0, (lk, txns, self.seed)
        assert len(probes) <= MAX_OUTSTANDING + 6, (probes, self.seed)
        assert self.gw.ua.subscriptions == [], (self.gw.ua.subscriptions, self.seed)
        for a in self.gw.fxs.values():
            assert a.state == "idle" and not a.legs, (a.port, a.state, a.legs, self.seed)


_DEC = g711.ulaw_table()


def has_tone(frame, freq, pct=25):
    lin = [_DEC[b] for b in frame]
    return tone_ratio_pct(lin, freq) >= pct


def count_tone(frames, freq, pct=25):
    return len([f for f in frames if has_tone(f, freq, pct)])


def drain(ring):
    """Take every frame out of a hal.bus.Ring; returns (frames, dropped before)."""
    out = list(ring.items)
    ring.items = []
    d = ring.dropped
    ring.dropped = 0
    return out, d
