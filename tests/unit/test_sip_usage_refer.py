# portable: micropython
"""REFER / NOTIFY / Replaces in the dialog usages (sip/usage/), driven through the SIP core,
sans network: a SipCore over a recording fake transport on a VirtualClock;
the far end is this test, feeding parsed messages to core.on_message.

Transferee side: 202 + NOTIFY sipfrag 100 Trying (active) then the final
status (terminated); 400 without Refer-To / with a malformed one / a bad
Replaces in it; 481 outside any dialog; 503 + Retry-After when
MAX_REFER_SUBSCRIPTIONS are being served; 603 when the owner cannot transfer.
Replaces: 481 with no matching dialog or an early dialog we did not start,
400 malformed, the owner's on_replace for a confirmed one.
Transferor side: REFER with Refer-To/Referred-By, outcomes from the REFER's
response and the NOTIFYs (200 to each; 481 without a REFER; 400 bad body)."""
from firmware.sipstack.identity import SipIdentity
from firmware.sipstack.router import Module
from firmware.compat import Random
from firmware.log import Log
from firmware.sched import Scheduler, VirtualClock
from firmware.sipstack.core import SipCore
from firmware.sipstack.transport import Source
from sip.usage import agent as UA
from sip.usage.invite import InviteSession
from sip.headers import replaces_for, uri_escape, parse_replaces, parse_sipfrag
from firmware.sipstack.dialogs import user_agent
from sip.message import parse

FAR = ("127.0.0.1", 5999)


class _Tp:
    host = "127.0.0.1"

    def __init__(self):
        self.on_message = None
        self.sent = []

    def send(self, data, dest):
        self.sent.append(parse(bytes(data)))

    def start(self):
        pass


class _PeerAt:
    """The analog gateway as the Replaces gate sees it: FAR is the peer call server."""

    def from_call_server(self, src):
        return src.addr == FAR


class _App:
    def __init__(self, seed=3):
        self.clock = VirtualClock()
        self.rng = Random(seed)
        self.log = Log(self.clock)
        self.sched = Scheduler(self.clock, log=self.log.write)
        self.identity = SipIdentity("127.0.0.1", 5070, "localdomain")
        self.sip_port = 5070
        self.gateway = _PeerAt()


class _Owner:
    def __init__(self, refer=None):
        self.refer_result = refer
        self.refers = []
        self.replaced = []
        self.ended = []

    def on_refer(self, s, sub):
        self.refers.append(sub)
        if self.refer_result is not None:
            return self.refer_result
        return lambda: None

    def on_replace(self, s, sreq):
        self.replaced.append((s, sreq))
        sreq.respond(200, None, (("Contact", "<sip:x@127.0.0.1:5070>"),), b"v=0\r\n",
                     "application/sdp")

    def on_ended(self, s, reason):
        self.ended.append(reason)


class Rig:
    def __init__(self, seed=3):
        self.app = _App(seed)
        self.tp = _Tp()
        self.core = SipCore(self.app, self.tp)
        self.app.sip = self.core
        self.ua = user_agent(self.app)
        self.owner = _Owner()
        self.core.router.add(Module("test-uas", 30, ("INVITE",), take=self._on_invite))
        self.n = 0
        self.cseq = 1

    def _on_invite(self, sreq):
        s = InviteSession.uas(self.ua, sreq, self.owner)
        if sreq.request.uri.user == "ring":
            s.ring()
        else:
            s.answer(b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
                     b"t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
        return True

    def feed(self, text, src=FAR):
        msg = parse(text.replace("\n", "\r\n").encode())
        self.tp.sent = []
        self.core.on_message(msg, Source("UDP", src))
        return self.tp.sent

    def request(self, method, user="1002", call_id=None, to_tag=None, from_tag="far1",
                headers=(), body="", cseq=None):
        self.n += 1
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        hs = ["%s sip:%s@127.0.0.1:5070 SIP/2.0" % (method, user),
              "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKt%d" % self.n,
              "Max-Forwards: 70",
              "From: <sip:1001@hq>;tag=%s" % from_tag,
              "To: <sip:%s@hq>%s" % (user, ";tag=" + to_tag if to_tag else ""),
              "Call-ID: %s" % (call_id or "call%d@far" % self.n),
              "CSeq: %d %s" % (cseq, method),
              "Contact: <sip:1001@127.0.0.1:5999>"]
        hs.extend(headers)
        if body:
            hs.append("Content-Type: %s" % ("application/sdp" if method == "INVITE"
                                            else "message/sipfrag;version=2.0"))
        hs.append("Content-Length: %d" % len(body.replace("\n", "\r\n")))
        return self.feed("\n".join(hs) + "\n\n" + body)

    def dialog(self, call_id="d1@far", user="1002"):
        """A confirmed dialog, far end = UAC; returns (call_id, our tag)."""
        sdp = "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 4002 RTP/AVP 0\n"
        out = self.request("INVITE", user, call_id, body=sdp, cseq=1)
        ok = [m for m in out if not m.is_request and m.status == 200]
        assert ok, out
        tag = ok[0].to.tag
        self.request("ACK", user, call_id, tag, cseq=1)
        return call_id, tag

    def now(self):
        return self.app.clock.now()

    def advance(self, ms):
        self.app.clock.burn(ms)
        self.core.on_timer(self.app.clock.now())


def _status(out):
    return [m.status for m in out if not m.is_request]


def _notifies(out):
    return [m for m in out if m.is_request and m.method == "NOTIFY"]


def test_refer_gets_202_and_notify_sipfrag_100_then_final():
    r = Rig()
    cid, tag = r.dialog()
    out = r.request("REFER", call_id=cid, to_tag=tag, headers=(
        "Refer-To: <sip:1003@127.0.0.1:5999?Replaces=c3%40far%3Bto-tag%3Dx%3Bfrom-tag%3Dy>",
        "Referred-By: <sip:1001@hq>"))
    assert _status(out) == [202], out
    n = _notifies(out)
    assert len(n) == 1 and n[0].body == b"SIP/2.0 100 Trying\r\n", n
    assert n[0].get("event").startswith("refer;id=")
    assert n[0].get("subscription-state").startswith("active;expires=")
    assert n[0].content_type == "message/sipfrag"
    assert n[0].to.tag == "far1" and n[0].from_.tag == tag and n[0].call_id == cid
    sub = r.owner.refers[0]
    assert sub.target == "sip:1003@127.0.0.1:5999", sub.target
    assert sub.replaces == "c3@far;to-tag=x;from-tag=y", sub.replaces
    assert sub.referred_by == "<sip:1001@hq>"
    assert r.ua.subscriptions == [sub]
    r.tp.sent = []
    sub.final(200, r.now())
    n2 = _notifies(r.tp.sent)
    assert len(n2) == 1 and n2[0].body == b"SIP/2.0 200 OK\r\n", r.tp.sent
    assert n2[0].get("subscription-state") == "terminated;reason=noresource"
    assert n2[0].cseq.num == n[0].cseq.num + 1
    assert r.ua.subscriptions == []
    # a failed new call: its final status
    out = r.request("REFER", call_id=cid, to_tag=tag, headers=("Refer-To: <sip:1004@hq>",))
    assert _status(out) == [202]
    r.tp.sent = []
    r.owner.refers[-1].final(486, r.now())
    assert _notifies(r.tp.sent)[0].body == b"SIP/2.0 486 Busy Here\r\n"


def test_refer_subscription_expires_with_487():
    r = Rig()
    cid, tag = r.dialog()
    r.request("REFER", call_id=cid, to_tag=tag, headers=("Refer-To: <sip:1003@hq>",))
    sub = r.owner.refers[0]
    hit = []
    sub.on_expire = lambda: hit.append(1)
    r.tp.sent = []
    r.advance(UA.REFER_EXPIRES_S * 1000 + 10)
    # (the unanswered NOTIFY 100 is retransmitted meanwhile: look at the last)
    n = [m for m in _notifies(r.tp.sent) if m.get("subscription-state").startswith("terminated")]
    assert hit == [1] and len(n) == 1, r.tp.sent
    assert n[0].body == b"SIP/2.0 487 Request Terminated\r\n"
    assert n[0].get("subscription-state") == "terminated;reason=timeout"
    assert r.ua.subscriptions == []


def test_bad_refers_get_precise_errors():
    r = Rig()
    cid, tag = r.dialog()
    assert _status(r.request("REFER", call_id=cid, to_tag=tag)) == [400]
    assert _status(r.request("REFER", call_id=cid, to_tag=tag,
                             headers=("Refer-To: sip:1003@hq>",))) == [400]
    assert _status(r.request("REFER", call_id=cid, to_tag=tag,
                             headers=("Refer-To: <sip:1003@hq>", "Refer-To: <sip:1004@hq>"))) == [400]
    assert _status(r.request("REFER", call_id=cid, to_tag=tag,
                             headers=("Refer-To: <sip:1003@hq?Replaces=abc>",))) == [400]
    assert _status(r.request("REFER", call_id=cid, to_tag=tag,
                             headers=("Refer-To: <http://example.com/>",))) == [416]
    assert _status(r.request("REFER", call_id=cid, to_tag="nope",
                             headers=("Refer-To: <sip:1003@hq>",))) == [481]
    assert _status(r.request("REFER", headers=("Refer-To: <sip:1003@hq>",))) == [403]
    r.owner.refer_result = 603
    assert _status(r.request("REFER", call_id=cid, to_tag=tag,
                             headers=("Refer-To: <sip:1003@hq>",))) == [603]
    assert r.ua.subscriptions == []


def test_refer_beyond_the_subscription_bound_gets_503():
    r = Rig()
    dialogs = [r.dialog("d%d@far" % i) for i in range(UA.MAX_REFER_SUBSCRIPTIONS + 1)]
    for cid, tag in dialogs[:-1]:
        assert _status(r.request("REFER", call_id=cid, to_tag=tag,
                                 headers=("Refer-To: <sip:1003@hq>",))) == [202]
    assert len(r.ua.subscriptions) == UA.MAX_REFER_SUBSCRIPTIONS
    cid, tag = dialogs[-1]
    out = r.request("REFER", call_id=cid, to_tag=tag, headers=("Refer-To: <sip:1003@hq>",))
    assert _status(out) == [503] and out[0].get("retry-after") == "5", out
    assert r.ua.counters["refer_overflow"] == 1
    # a second REFER in a dialog already serving one: 491
    cid0, tag0 = dialogs[0]
    assert _status(r.request("REFER", call_id=cid0, to_tag=tag0,
                             headers=("Refer-To: <sip:1003@hq>",))) == [491]
    # one finishes: room again
    r.owner.refers[0].final(200, r.now())
    assert _status(r.request("REFER", call_id=cid, to_tag=tag,
                             headers=("Refer-To: <sip:1003@hq>",))) == [202]


_SDP = "v=0\no=- 2 2 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 4004 RTP/AVP 0\n"


def test_invite_with_replaces():
    r = Rig()
    cid, tag = r.dialog()
    # no such dialog
    out = r.request("INVITE", body=_SDP, cseq=1, headers=("Replaces: zz@far;to-tag=a;from-tag=b",))
    assert _status(out) == [481], out
    # malformed
    out = r.request("INVITE", body=_SDP, cseq=1, headers=("Replaces: zz@far;to-tag=a",))
    assert _status(out) == [400], out
    # an early dialog we did not initiate (we are ringing): 481 (RFC 3891 §3)
    r.request("INVITE", "ring", "e1@far", body=_SDP, cseq=1)
    early = [d for d in r.ua.dialogs.dialogs() if d.call_id == "e1@far"][0]
    out = r.request("INVITE", body=_SDP, cseq=1, headers=(
        "Replaces: e1@far;to-tag=%s;from-tag=far1" % early.local_tag,))
    assert _status(out) == [481], out
    # early-only on a confirmed dialog: 486
    out = r.request("INVITE", body=_SDP, cseq=1, headers=(
        "Replaces: %s;to-tag=%s;from-tag=far1;early-only" % (cid, tag),))
    assert _status(out) == [486], out
    # the confirmed dialog: the owner takes it (the tags are ours as seen by us)
    assert r.owner.replaced == []
    out = r.request("INVITE", body=_SDP, cseq=1, from_tag="far9", headers=(
        "Replaces: %s;to-tag=%s;from-tag=far1" % (cid, tag),))
    assert _status(out) == [200] and len(r.owner.replaced) == 1, out
    assert r.owner.replaced[0][0].dialog.call_id == cid
    assert r.ua.counters["replaces_in"] == 1


def test_replaces_from_another_source_than_the_call_server_is_refused_first():
    # issue 12 item 11: before any dialog is looked up, so an existing and a
    # made-up dialog get the same 403, and nothing is taken over
    r = Rig()
    cid, tag = r.dialog()
    rogue = ("127.0.0.9", 5060)
    got = []
    for n, value in enumerate(("%s;to-tag=%s;from-tag=far1" % (cid, tag),
                               "zz@far;to-tag=a;from-tag=b")):
        text = "\n".join([
            "INVITE sip:1002@127.0.0.1:5070 SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bKrogue%d" % n,
            "Max-Forwards: 70", "From: <sip:mallory@x>;tag=m%d" % n, "To: <sip:1002@hq>",
            "Call-ID: rogue%d@x" % n, "CSeq: 1 INVITE", "Contact: <sip:mallory@127.0.0.9>",
            "Replaces: %s" % value, "Content-Length: 0", "", ""])
        out = r.feed(text, rogue)
        got.append([(m.status, m.reason) for m in out if not m.is_request])
    assert got[0] == got[1] == [(403, "Forbidden (Replaces Not Authorised)")], got
    assert r.owner.replaced == [] and r.ua.counters["replaces_refused"] == 2


def test_replaces_value_escaping_round_trip():
    from sip.headers import parse_name_addr
    from sip.uri import unescape
    r = Rig()
    cid, tag = r.dialog("a%b:c/d?e=f@far")
    d = [x for x in r.ua.dialogs.dialogs() if x.call_id == cid][0]
    v = replaces_for(d)
    esc = uri_escape(v)
    assert ";" not in esc and "=" not in esc and "@" not in esc and " " not in esc, esc
    na = parse_name_addr("<sip:1003@127.0.0.1:5070?Replaces=%s>" % esc, "Refer-To")
    got = unescape(na.uri.headers[0][1]).decode()
    assert parse_replaces(got) == (cid, "far1", tag, False), got
    assert parse_sipfrag(b"SIP/2.0 180 Ringing\r\n") == 180
    assert parse_sipfrag(b"SIP/2.0 20 OK") is None
    assert parse_sipfrag(b"INVITE sip:x SIP/2.0") is None
    assert parse_sipfrag(b"") is None


def test_transferor_refer_and_notify_outcomes():
    r = Rig()
    cid, tag = r.dialog()
    sess = [s for s in r.ua.sessions if s.call_id == cid][0]
    events = []
    r.tp.sent = []
    assert sess.refer("sip:1003@hq", "sip:1002@hq", lambda k, st: events.append((k, st)), r.now())
    refer = [m for m in r.tp.sent if m.is_request and m.method == "REFER"][0]
    assert refer.get("refer-to") == "<sip:1003@hq>" and refer.get("referred-by") == "<sip:1002@hq>"
    assert not sess.refer("sip:1004@hq", None, None, r.now()), "one REFER at a time"
    # the 202
    r.feed(_reply(refer, "202 Accepted"))
    assert events == [("accepted", 202)], events
    # NOTIFY 100, then a bad one, then 200
    notify = lambda body, state: r.request("NOTIFY", "1002", cid, tag, headers=(
        "Event: refer", "Subscription-State: " + state), body=body)
    assert _status(notify("SIP/2.0 100 Trying\n", "active;expires=60")) == [200]
    assert events == [("accepted", 202)]
    assert _status(notify("garbage\n", "active;expires=60")) == [400]
    assert _status(notify("SIP/2.0 200 OK\n", "terminated;reason=noresource")) == [200]
    assert events[-1] == ("final", 200), events
    assert sess.refer_out is None
    # a NOTIFY for a REFER we no longer have: 481
    assert _status(notify("SIP/2.0 200 OK\n", "terminated")) == [481]
    # rejected REFER
    r.tp.sent = []
    assert sess.refer("sip:1003@hq", None, lambda k, st: events.append((k, st)), r.now())
    refer = [m for m in r.tp.sent if m.is_request and m.method == "REFER"][0]
    r.feed(_reply(refer, "603 Decline"))
    assert events[-1] == ("rejected", 603), events
    # accepted, then no NOTIFY at all: timeout
    r.tp.sent = []
    assert sess.refer("sip:1003@hq", None, lambda k, st: events.append((k, st)), r.now())
    refer = [m for m in r.tp.sent if m.is_request and m.method == "REFER"][0]
    r.feed(_reply(refer, "202 Accepted"))
    r.advance(UA.REFER_WAIT_MS + 10)
    assert events[-2:] == [("accepted", 202), ("timeout", 408)], events
    # no answer to the REFER itself: its transaction's 408
    assert sess.refer("sip:1003@hq", None, lambda k, st: events.append((k, st)), r.now())
    for _ in range(40):
        r.advance(1000)
    assert events[-1] == ("rejected", 408), events
    assert sess.refer_out is None


def _reply(req, status_line):
    hs = ["SIP/2.0 " + status_line]
    for n in ("via", "from", "to", "call-id"):
        hs.append("%s: %s" % (n, req.get(n)))
    hs.append("CSeq: %d %s" % (req.cseq.num, req.method))
    return "\n".join(hs) + "\nContent-Length: 0\n\n"
