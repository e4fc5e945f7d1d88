"""Our RADIUS accounting packets decoded by an independent implementation,
the PyPI `pyrad` package: the Request Authenticator verifies with the shared
secret, every attribute of a Start, Interim-Update and Stop made from a CDR
decodes to the value the CDR has, and pyrad's Accounting-Response passes our
response check (with the wrong secret it does not)."""
import pytest

from pyrad import packet as pp

from firmware.radius import packet as P, records as R
from firmware.radius.client import Client, Server
from firmware.radius.journal import Journal
from tests.sim.radius_server import radius_dictionary

SECRET = b"s3cret-shared"

CDR = {"id": "0123456789abcdef", "call_ids": ["a84b4c76e66710@pc33", "b2"], "calling": "1001",
       "called": "1002", "original_called": "1003", "src_kind": "station", "src": "alice",
       "dst_kind": "station", "dst": "bob", "mode": "survivable", "clock_set": True,
       "start": 1796212800000, "answer": 1796212805000, "end": 1796212865500,
       "duration": 65, "billsec": 60, "disposition": "answered", "sip_status": 200,
       "cause": "caller bye", "released_by": "caller", "redirect": "forwarded",
       "codec": "PCMU", "rtp_sent": 3000, "rtp_received": 2990, "rtp_lost": 10}


@pytest.fixture(scope="module")
def rdict():
    return radius_dictionary()


def _decode(rdict, data, secret=SECRET):
    pkt = pp.AcctPacket(packet=data, secret=secret, dict=rdict)
    return pkt


def _avpairs(pkt):
    return [v.decode() if isinstance(v, bytes) else v for v in pkt.get("Cisco-AVPair", [])]


def test_a_stop_decodes_with_pyrad_field_by_field(rdict):
    attrs = R.attributes(CDR, P.STOP, ("branch-1", "192.0.2.1"), event_s=1796212866)
    data = P.accounting_request(42, SECRET, attrs + [(P.ACCT_DELAY_TIME, 7)])
    pkt = _decode(rdict, data)
    assert pkt.VerifyAcctRequest()
    assert _decode(rdict, data, b"other").VerifyAcctRequest() is False
    assert pkt.code == pp.AccountingRequest and pkt.id == 42
    assert pkt["Acct-Status-Type"] == ["Stop"]
    assert pkt["Acct-Session-Id"] == ["0123456789abcdef"]
    assert pkt["NAS-Identifier"] == ["branch-1"]
    assert pkt["NAS-IP-Address"] == ["192.0.2.1"]
    assert pkt["User-Name"] == ["alice"]
    assert pkt["Calling-Station-Id"] == ["1001"]
    assert pkt["Called-Station-Id"] == ["1002"]
    assert pkt["Acct-Session-Time"] == [60]
    assert pkt["Acct-Terminate-Cause"] == ["User-Request"]
    assert pkt["Acct-Delay-Time"] == [7]
    assert pkt["Event-Timestamp"] == [1796212866]
    assert pkt["NAS-Port-Type"] == [5]
    pairs = _avpairs(pkt)
    for want in ("call-id=a84b4c76e66710@pc33,b2", "mode=survivable", "disposition=answered",
                 "sip-status=200", "cause=caller bye", "released-by=caller",
                 "original-called=1003", "redirect=forwarded", "codec=PCMU",
                 "rtp-sent=3000", "rtp-received=2990", "rtp-lost=10", "duration=65"):
        assert want in pairs, (want, pairs)


def test_start_and_interim_carry_no_stop_fields(rdict):
    live = dict(CDR, end=None, billsec=0, disposition="", cause="")
    s = _decode(rdict, P.accounting_request(1, SECRET, R.attributes(live, P.START, ("b", None))))
    assert s.VerifyAcctRequest() and s["Acct-Status-Type"] == ["Start"]
    assert "Acct-Session-Time" not in s and "Acct-Terminate-Cause" not in s
    assert "NAS-IP-Address" not in s and "Event-Timestamp" not in s   # unknown: left out
    assert _avpairs(s) == ["call-id=a84b4c76e66710@pc33,b2", "mode=survivable"]
    i = _decode(rdict, P.accounting_request(2, SECRET, R.attributes(
        live, P.INTERIM_UPDATE, ("b", None), now_ms=CDR["answer"] + 301999)))
    assert i["Acct-Status-Type"] == ["Interim-Update"] and i["Acct-Session-Time"] == [301]


def test_terminate_causes_from_the_cdr(rdict):
    for cdr, want in ((dict(CDR, cause="session timer expired"), "Session-Timeout"),
                      (dict(CDR, disposition="busy", cause="486", billsec=0), "Host-Request")):
        pkt = _decode(rdict, P.accounting_request(3, SECRET, R.attributes(cdr, P.STOP, ("b", None))))
        assert pkt["Acct-Terminate-Cause"] == [want]
    pkt = _decode(rdict, P.accounting_request(3, SECRET, R.attributes(
        CDR, P.STOP, ("b", None), cause=R.NAS_REBOOT)))
    assert pkt["Acct-Terminate-Cause"] == ["NAS-Reboot"]


def test_pyrads_response_is_accepted_and_a_wrong_secret_refused(rdict, tmp_path):
    j = Journal(str(tmp_path))
    c = Client(j, [Server("192.0.2.10", 1813, SECRET)])
    j.add(("s", P.START, 0), R.attributes(CDR, P.START, ("b", None)), None, 0)
    (addr, data), = c.poll(0)
    req = _decode(rdict, data)
    reply = req.CreateReply()
    raw = reply.ReplyPacket()
    bad = _decode(rdict, data, b"wrong").CreateReply().ReplyPacket()
    assert c.receive(bad, addr, 5) is None and "authenticator" in c.servers[0].last_bad
    assert c.receive(raw, addr, 5) is not None
    assert not j.pending and c.servers[0].acked == 1


def test_a_resend_with_a_changed_delay_is_a_new_identifier_and_authenticator(rdict, tmp_path):
    j = Journal(str(tmp_path))
    c = Client(j, [Server("192.0.2.10", 1813, SECRET)], timeout_ms=2000)
    j.add(("s", P.STOP, 0), R.attributes(CDR, P.STOP, ("b", None)), None, 0)
    (_, a), = c.poll(0)
    (_, b), = c.poll(2000)
    pa, pb = _decode(rdict, a), _decode(rdict, b)
    assert pa.VerifyAcctRequest() and pb.VerifyAcctRequest()
    assert pa.id != pb.id and pa.authenticator != pb.authenticator
    assert (pa["Acct-Delay-Time"], pb["Acct-Delay-Time"]) == ([0], [2])
    assert pa["Acct-Session-Id"] == pb["Acct-Session-Id"]
