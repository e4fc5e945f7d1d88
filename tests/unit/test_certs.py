"""TLS certificates on flash (firmware/certs.py) through the console of a
simulated appliance: load, show, delete, and every refusal named."""
import datetime
import os

import pytest

from firmware import certs
from firmware.commands import CommandError
from tests.sim.appliance import simulated
from tests.tlscerts import Pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def app(tmp_path):
    a = simulated(str(tmp_path / "state"))
    yield a
    a.close()


def cli(app, line):
    return app.commands.execute(app, line)


def refused(app, line, why):
    with pytest.raises(CommandError) as e:
        cli(app, line)
    assert why in str(e.value), str(e.value)


def test_the_der_reader_agrees_with_cryptography(pki):
    for name, c in pki.files.items():
        with open(pki.path(name + ".pem"), "rb") as f:
            (ours,) = [certs.Cert(d) for d in certs.pem_blocks(f.read())]
        assert ours.subject.endswith("CN=" + c.subject.get_attributes_for_oid(
            x509_cn())[0].value), ours.subject
        assert ours.not_after == c.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S UTC")
        assert ours.ca is False
    with open(pki.path("ca.pem"), "rb") as f:
        assert certs.Cert(certs.pem_blocks(f.read())[0]).ca is True


def x509_cn():
    from cryptography.x509.oid import NameOID
    return NameOID.COMMON_NAME


def test_utc_key_matches_the_calendar():
    for secs in (0, 951782400, 1700000000, 4102444799):
        t = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc)
        assert certs.utc_key(secs) == int(t.strftime("%Y%m%d%H%M%S")), secs


def test_load_show_and_delete(app, pki):
    assert cli(app, "show security certificates").startswith("No certificates")
    out = cli(app, "request security certificate load sip-server %s key %s" % (
        pki.path("server.pem"), pki.path("server.key")))
    assert out.startswith("Certificate sip-server loaded: C=US, O=Branch Test, "
                          "CN=branch.example.com, issued by C=US, O=Branch Test, "
                          "CN=Branch Test CA, valid until ") and out.endswith("with its private key"), out
    cli(app, "request security certificate load root-ca %s" % pki.path("ca.pem"))
    cli(app, "request security certificate load old %s" % pki.path("expired.pem"))
    show = cli(app, "show security certificates")
    assert "old: clock not set" in show and "root-ca: clock not set" in show, show
    app.time.set(int(__import__("time").time() * 1000), app.clock.now())
    show = cli(app, "show security certificates")
    lines = show.splitlines()
    assert lines[0] == "old: EXPIRED", show
    assert "root-ca: valid" in lines and "sip-server: valid, private key" in lines, show
    assert "  subject: C=US, O=Branch Test, CN=Branch Test CA  (CA)" in lines, show
    key = os.path.join(app.state_dir, "certs", "sip-server.key")
    assert open(key, "rb").read() == open(pki.path("server.key"), "rb").read()
    assert "PRIVATE" not in show
    cli(app, "request security certificate delete old")
    assert "old:" not in cli(app, "show security certificates")
    assert sorted(os.listdir(os.path.join(app.state_dir, "certs"))) == \
        ["root-ca.pem", "sip-server.key", "sip-server.pem"]


def test_refusals_name_the_problem(app, pki, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("hello\n")
    refused(app, "request security certificate load x %s" % bad, "no -----BEGIN CERTIFICATE")
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    refused(app, "request security certificate load x %s" % bad, "not an X.509 certificate")
    refused(app, "request security certificate load x %s" % (tmp_path / "none.pem"), "cannot read")
    refused(app, "request security certificate load x %s key %s" % (
        pki.path("server.pem"), pki.path("ca.pem")), "no PRIVATE KEY block")
    refused(app, "request security certificate load ../x %s" % pki.path("ca.pem"),
            "certificate name '../x'")
    refused(app, "request security certificate load x", "usage: request security certificate load")
    refused(app, "request security certificate delete nothing", "no certificate nothing")
    big = tmp_path / "big.pem"
    big.write_bytes(open(pki.path("ca.pem"), "rb").read() * 60)
    refused(app, "request security certificate load x %s" % big, "limit 16384")
    for i in range(certs.MAX_CERTS):
        cli(app, "request security certificate load c%d %s" % (i, pki.path("ca.pem")))
    refused(app, "request security certificate load one-more %s" % pki.path("ca.pem"),
            "16 certificates stored already")
    cli(app, "request security certificate load c0 %s" % pki.path("client.pem"))   # replace: fine
