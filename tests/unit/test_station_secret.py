# portable: micropython
"""Station passwords are kept reversibly ($9$), so the digest HA1 follows
the realm that asks; a stored HA1 alone stays bound to its realm; a new
password replaces a stored HA1; every refused station is named at once."""
from firmware.compat import md5, hexlify
from firmware.config import schema as S
from firmware.voice.config import settings_of
from tests.unit.test_config_support import FakeApp

BASE = "set services convergence-services "


def _ha1(user, realm, pw):
    return hexlify(md5(("%s:%s:%s" % (user, realm, pw)).encode()).digest())


def test_a_password_is_stored_as_a_secret_and_hashed_for_any_realm():
    app = FakeApp()
    out = app.conf(BASE + "sip domain one.example", BASE + "station bob extension 2001",
                   BASE + "station bob password Bobs-phone-7", "commit")
    assert out[-1] == "commit complete"
    text = "\n".join(app.config.store.records()[0][2].split("\n"))
    assert 'station bob password-secret "$9$' in text and "Bobs-phone-7" not in text
    st = settings_of(app.config.committed).stations[0]
    assert st.ha1_for("one.example", "MD5") == _ha1("2001", "one.example", "Bobs-phone-7")
    assert st.ha1_for("HQ.Example", "MD5") == _ha1("2001", "hq.example", "Bobs-phone-7")
    assert len(st.ha1_for("hq.example", "SHA-256")) == 64
    # a new realm commits without the password typed again
    assert app.conf(BASE + "sip domain two.example", "commit")[-1] == "commit complete"


def test_a_stored_ha1_is_bound_to_its_realm_and_a_new_password_replaces_it():
    app = FakeApp()
    ha1 = S.make_ha1("2001", "one.example", "Bobs-phone-7")
    out = app.conf(BASE + "sip domain one.example", BASE + "station bob extension 2001",
                   BASE + 'station bob password-ha1 "%s"' % ha1, "commit")
    assert out[-1] == "commit complete"
    st = settings_of(app.config.committed).stations[0]
    assert st.ha1_for("one.example", "MD5") == _ha1("2001", "one.example", "Bobs-phone-7")
    assert st.ha1_for("two.example", "MD5") is None
    out = app.conf(BASE + "sip domain two.example", "commit")[-1]
    assert out.startswith("error: services convergence-services station bob password: stored for "
                          "user 2001 in realm one.example"), out
    app.conf(BASE + "station bob password Bobs-phone-8")
    sub = app.config.candidate["services"]["convergence-services"]["station"]["bob"]
    assert "password-ha1" not in sub and sub["password-secret"] == "Bobs-phone-8"
    assert app.conf("commit")[-1] == "commit complete"


def test_every_refused_station_is_named_in_one_error():
    app = FakeApp()
    out = app.conf(BASE + "station a extension 2001", BASE + "station b extension 2002",
                   BASE + "station c extension 2003", BASE + "station c password Cs-phone-77",
                   "commit")[-1]
    assert out == ("error: 2 stations cannot be accepted:\n"
                   "  services convergence-services station a password: a SIP station needs a "
                   "password (there is no default)\n"
                   "  services convergence-services station b password: a SIP station needs a "
                   "password (there is no default)")
