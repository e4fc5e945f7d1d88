# portable: micropython
"""The registration client (sip/usage/registration.py) against a challenging
registrar, driven by hand: the un-REGISTER (Expires: 0) of stop() answers a
401 with credentials like any other REGISTER, so that the binding is removed."""
from firmware.compat import Random
from firmware.sipstack.identity import SipIdentity
from sip.digest import DigestServer
from sip.message import parse, Response
from sip.timers import TimerTable
from sip.transaction import TransactionLayer
from sip.usage.agent import Agent
from sip.usage.registration import Registration

REGISTRAR = ("127.0.0.1", 5060)


class Side:
    def __init__(self):
        rng = Random(5)
        self.now = 1000
        self.layer = TransactionLayer(rng)
        self.ua = Agent(self.layer, TimerTable(16), rng,
                        SipIdentity("127.0.0.1", 5070, "example.com"))
        self.server = DigestServer("example.com", "k" * 16, Random(6))
        self.reg = Registration(self.ua, "2001", "example.com", REGISTRAR,
                                password="pw-2001", expires=600)

    def sent(self):
        """The REGISTERs sent since the last call."""
        return [parse(d) for d, addr, tp in self.layer.take_outgoing() if addr == REGISTRAR]

    def answer(self, req, status, headers=()):
        txn = [t for t in self.layer.transactions()
               if t.kind == "nict" and t.branch == req.top_via.branch][0]
        r = Response.for_request(req, status, None, "reg-tag")
        for name, value in headers:
            r.add(name, value)
        txn.user(r, self.now)

    def challenge(self, req):
        self.answer(req, 401, [("WWW-Authenticate", c) for c in self.server.challenge(self.now)])


def test_a_challenged_unregister_is_sent_again_with_credentials():
    s = Side()
    s.reg.start(s.now)
    req = s.sent()[0]
    s.challenge(req)
    req = s.sent()[0]
    assert req.get("authorization") is not None
    s.answer(req, 200, (("Contact", "<sip:2001@127.0.0.1:5070>;expires=600"),))
    assert s.reg.state == "registered" and s.reg.granted == 600
    s.reg.stop(s.now)
    unreg = s.sent()
    assert len(unreg) == 1 and unreg[0].get("expires") == "0"
    assert unreg[0].get("authorization") is None
    s.challenge(unreg[0])
    again = s.sent()
    assert len(again) == 1, "the challenged un-REGISTER was not sent again"
    assert again[0].get("expires") == "0" and again[0].get("authorization") is not None
    assert again[0].cseq.num == unreg[0].cseq.num + 1
    s.answer(again[0], 200)
    assert s.sent() == [] and s.reg.state == "idle"
    assert s.reg.timer is None


def test_an_unregister_challenged_twice_gives_up():
    s = Side()
    s.reg.start(s.now)
    s.challenge(s.sent()[0])
    s.answer(s.sent()[0], 200, (("Contact", "<sip:2001@127.0.0.1:5070>;expires=600"),))
    s.reg.stop(s.now)
    for _ in range(2):
        s.challenge(s.sent()[0])
    last = s.sent()[0]
    s.challenge(last)                 # a third 401: MAX_AUTH_TRIES spent
    assert s.sent() == [] and s.reg.state == "idle" and s.reg.timer is None
