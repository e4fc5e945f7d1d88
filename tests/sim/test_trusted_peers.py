"""Trusted peers (firmware/voice/trusted.py): a listed source calls without a
digest challenge, only to its allowed numbers (403 to others, and to
emergency numbers, which only local stations may dial); any other source is
challenged as before; credentials from a trusted source are still checked.
Commit errors for the new statements (trusted peers, peer addresses by
name, name servers) name the statement and the problem."""
from sip.message import parse
from firmware.config.schema import ConfigError
from tests.sim.cs_world import CsWorld, B
from tests.sim.test_callserver_caller_auth import request, send, SDP

TRUSTED = (B + "trusted-peer hqpbx address 127.0.0.64",
           B + "trusted-peer hqpbx address 127.0.1.0/24",
           B + "trusted-peer hqpbx allowed-number 20XX",
           B + "trusted-peer hqpbx allowed-number 4085550.")


def _statuses(w, sock, frm, to):
    got = [parse(r).status for r in send(w, sock, request(sock, "INVITE", frm, to, body=SDP))]
    w.cs.b2b.hangup_all()
    w.run(2000)
    return got


def test_a_trusted_peer_calls_its_allowed_numbers_without_a_challenge_and_nothing_else(tmp_path):
    w = CsWorld(tmp_path, seed=91, sip_exts=("2001", "2002"),
                extra=TRUSTED + (B + "station s2002 did 4085550102",))
    try:
        w.register_all(("2002",))
        sock = w.raw("127.0.0.64")
        st = _statuses(w, sock, "hq-7001", "2002")
        assert 407 not in st and 403 not in st, st
        st = _statuses(w, sock, "hq-7001", "4085550102")     # by DID, pattern 4085550.
        assert 407 not in st and 403 not in st, st
        assert w.cs.counters["calls_from_trusted_peer"] == 2
        for number in ("95551234", "2101", "911", "112"):
            assert _statuses(w, sock, "hq-7001", number) == [403], number
        assert w.cs.counters["trusted_refused"] == 4
        r = parse(send(w, sock, request(sock, "INVITE", "hq", "95551234", body=SDP))[0])
        assert r.reason == "Forbidden (Number Not Allowed For Trusted Peer)", r.reason
        # a prefix entry trusts its whole range; a source outside is challenged
        other = w.raw("127.0.1.9")
        assert 407 not in _statuses(w, other, "hq-7002", "2002")
        stranger = w.raw("127.0.2.9")
        assert _statuses(w, stranger, "hq-7003", "2002") == [407]
    finally:
        w.close()


def _commit_error(app, lines):
    try:
        app.config.load_file("t.conf", "\n".join(lines))
    except ConfigError as e:
        return str(e)
    raise AssertionError("commit accepted: %r" % (lines,))


def test_commit_errors_for_trusted_peers_peer_names_and_name_servers(tmp_path):
    w = CsWorld(tmp_path, seed=92, sip_exts=("2001",))
    try:
        app = w.app
        e = _commit_error(app, [B + "trusted-peer p address 192.0.2.1"])
        assert "trusted-peer p allowed-number: list the numbers it may call" in e, e
        e = _commit_error(app, [B + "trusted-peer p allowed-number 1XXX"])
        assert "trusted-peer p address: a trusted peer needs at least one address" in e, e
        e = _commit_error(app, [B + "trusted-peer p address 192.0.2.1",
                                B + "trusted-peer p allowed-number 9.1"])
        assert "pattern 9.1" in e, e
        e = _commit_error(app, [B + "trusted-peer p address 192.0.2.1/8"])
        assert "host bits set" in e, e
        e = _commit_error(app, [B + "peer-call-server hq address hq_1.example.com"])
        assert "'_' is not allowed in a DNS name" in e, e
        e = _commit_error(app, [B + "peer-call-server hq address 300.1.2.3"])
        assert "not an IPv4 address" in e, e
        e = _commit_error(app, [B + "peer-call-server hq address hq.example.123"])
        assert "the last label of a DNS name is not all digits" in e, e
        e = _commit_error(app, ["set system name-server hq.example.com"])
        assert "name-server" in e, e
        app.config.load_file("ok.conf", "\n".join((
            "set system name-server 192.0.2.53",
            B + "peer-call-server hq address HQ.Example.com.")))
        assert app.gateway_settings.peer["address"] == "hq.example.com"
    finally:
        w.close()
