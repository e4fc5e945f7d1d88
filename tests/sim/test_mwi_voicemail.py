"""Issue 16: the central voicemail server as the source of message waiting:
one message-summary subscription per configured mailbox (sip.usage
Subscriber), retried 60 s after a failure, NOTIFYs accepted only from the
server, the last known state kept through survival mode and the
subscriptions resumed when the peer is back.  The voicemail server is a
test-side SIP core (tests/sim/subclient.py) with a Notifier per mailbox."""
import socket

from firmware.sipstack.router import Module
from firmware.voice.control import LOCAL, PEER
from sip.usage.subscription import Notifier
from tests.sim.analog_world import World, B
from tests.sim.subclient import SubClient

MWI = "application/simple-message-summary"
VM_HOST = "127.0.3.1"


class Voicemail:
    def __init__(self, client):
        self.c = client
        self.subs = {}          # mailbox -> [Notifier]
        self.waiting = {}
        self.up = False
        self.subscribes = []    # (ms, mailbox)
        client.serve(Module("voicemail", 60, ("SUBSCRIBE",), take=self.take))

    def body(self, box):
        n = self.waiting.get(box, 0)
        return ("Messages-Waiting: %s\r\nMessage-Account: sip:%s@vm\r\nVoice-Message: %d/0\r\n"
                % ("yes" if n else "no", box, n)).encode()

    def take(self, sreq):
        box = sreq.request.uri.user
        self.subscribes.append((self.c.w.now(), box))
        if not self.up:
            sreq.respond(503, "Voicemail Starting")
            return True
        g = Notifier.check(sreq, ("message-summary",), 60, 3600)
        if g is not None:
            n = Notifier.accept(self.c.ua, sreq, self, self.c.w.now(), g, self.body(box), MWI,
                                60, 3600)
            if n is not None:
                self.subs.setdefault(box, []).append(n)
        return True

    def set_waiting(self, box, n):
        self.waiting[box] = n
        for s in self.subs.get(box, ()):
            s.notify(self.body(box), MWI, self.c.w.now())

    def on_ended(self, n, reason):
        for lst in self.subs.values():
            if n in lst:
                lst.remove(n)

    def live(self):
        return sum(len(v) for v in self.subs.values())


def test_voicemail_subscriptions_retry_foreign_notify_and_survival(tmp_path):
    w = World(tmp_path, seed=31)
    try:
        w.settle()
        c = SubClient(w, VM_HOST, seed=77)
        vm = Voicemail(c)
        w.app.config.load_file("vm.conf", "\n".join([
            B + "voicemail server " + VM_HOST,
            B + "voicemail port %d" % c.port,
            B + "voicemail subscribe-expires 600",
            B + "station alice mailbox 81001"]) + "\n")
        m = w.app.mwi
        w.run(1000)
        # the server refuses at first: each subscription fails, and is retried
        # 60 s later, not before
        assert len(vm.subscribes) == 4 and sorted(b for _, b in vm.subscribes) == \
            ["1002", "1003", "1004", "81001"], vm.subscribes
        assert all(u.sub.state == "failed" and u.sub.status == 503 for u in m.upstream.values())
        vm.up = True
        w.run(57000)
        assert len(vm.subscribes) == 4, vm.subscribes
        w.run(4000)
        assert len(vm.subscribes) == 8, vm.subscribes
        assert vm.subscribes[4][0] - vm.subscribes[0][0] >= 60000
        assert all(u.sub.state == "active" for u in m.upstream.values()), [
            u.sub.state for u in m.upstream.values()]
        assert vm.live() == 4
        subs = w.app.commands.execute(w.app, "show sip subscriptions")
        assert "(appliance) alice" in subs and "sip:81001@%s:%d" % (VM_HOST, c.port) in subs, subs
        # a NOTIFY from the server lights alice's lamp
        p1 = w.phones[1]
        n0 = len(p1.caller_ids)
        vm.set_waiting("81001", 2)
        w.run(3000)
        b = m.box("alice")
        assert (b.new, b.old, b.source) == (2, 0, "voicemail"), (b.new, b.old, b.source)
        assert len(p1.caller_ids) == n0 + 1 and p1.caller_ids[-1]["vmwi"] is True
        # the same dialog's NOTIFY from anyone else: 403, nothing changes
        d = m.upstream["alice"].sub.dialog
        raw = w.network.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.bind(("127.0.3.9", 0))
        raw.setblocking(False)
        body = "Messages-Waiting: no\r\nVoice-Message: 0/0\r\n"
        fake = "\r\n".join([
            "NOTIFY sip:81001@127.0.0.1:%d SIP/2.0" % w.app.sip_port,
            "Via: SIP/2.0/UDP 127.0.3.9:%d;branch=z9hG4bKforged1" % raw.getsockname()[1],
            "Max-Forwards: 70",
            "From: <%s>;tag=%s" % (d.remote_uri.uri, d.remote_tag),
            "To: <%s>;tag=%s" % (d.local_uri.uri, d.local_tag),
            "Call-ID: %s" % d.call_id, "CSeq: 999 NOTIFY", "Event: message-summary",
            "Subscription-State: active;expires=600", "Content-Type: " + MWI,
            "Content-Length: %d" % len(body), "", body])
        raw.sendto(fake.encode(), ("127.0.0.1", w.app.sip_port))
        w.run(500)
        got = raw.recv(65535)
        assert got.startswith(b"SIP/2.0 403 Forbidden (Not The Voicemail Server)"), got[:80]
        assert m.box("alice").new == 2 and m.counters["foreign_notifies"] == 1
        raw.close()
        # survival: control goes local (the survivability monitor's call): the
        # subscriptions stop, the last known state stays and is shown as such
        ctl = w.app.control
        peer = ctl.peer
        ctl._set(LOCAL, peer, "test: peer call server lost")
        w.run(2000)
        assert m.upstream == {} and vm.live() == 0, (m.upstream, vm.live())
        show = w.app.commands.execute(w.app, "show voice mwi")
        assert "(survival mode: last known state kept)" in show, show
        assert "alice    81001    2    0    0       yes      voicemail (last known)" in show, show
        before = len(vm.subscribes)
        w.run(120000)
        assert len(vm.subscribes) == before       # nothing retried meanwhile
        ctl._set(PEER, peer, "test: peer call server back")
        w.run(2000)
        assert len(vm.subscribes) == before + 4 and vm.live() == 4
        assert all(u.sub.state == "active" for u in m.upstream.values())
        # the first NOTIFY after the return brings the server's current state
        assert m.box("alice").new == 2 and m.box("alice").source == "voicemail"
        c.close()
    finally:
        w.close()
