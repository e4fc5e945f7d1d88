"""Call pickup on the local call server (firmware/callserver/pickup.py), on
the virtual clock with full SIP flows: group pickup (*8) by a SIP phone and
by an analog phone, directed pickup (*8 + extension), the ringing phone
stopping, the refusals (not in a group, nothing ringing), a busy-lamp key's
INVITE with Replaces built from the dialog-info NOTIFY (RFC 4235 ids), a
Replaces from a station that may not pick the call up (403), the show
command and the commit errors."""
import re

from tests.sim.cs_world import CsWorld, B, DOMAIN, password
from tests.sim.subclient import SubClient

GROUPS = (B + "pickup-group front member [ 2001 2002 ]",
          B + "pickup-group back member [ 2002 2003 ]")
ANALOG = (B + "pickup-group front member [ 2001 2002 1001 ]",)


def _incoming(w, ext):
    return [x for x in w.phones[ext].calls if x.role == "uas" and x.state != "terminated"]


def _ringing(w, caller, callee):
    w.phones[callee].ring_ms = None
    c = w.phones[caller].call(callee)
    w.run_until(lambda: c.state == "ringing", 3000)
    return c, _incoming(w, callee)[-1]


def test_group_and_directed_pickup_by_sip_phones(tmp_path):
    w = CsWorld(tmp_path, seed=71, sip_exts=("2001", "2002", "2003", "2004"), extra=GROUPS)
    try:
        w.register_all()
        c, ring = _ringing(w, "2004", "2002")
        out = w.cli("show call-server pickup-groups")
        assert "front" in out and "2002 (from 2004)" in out and "Codes: group *8" in out, out
        p = w.phones["2001"].call("*8")           # 2001 shares group front with 2002
        w.run_until(lambda: p.state == "connected" and c.state == "connected", 3000)
        w.run_until(lambda: ring.state == "terminated", 3000)
        assert ring.end_reason == "cancelled_by_remote", ring.end_reason   # stopped ringing
        assert "2001" in w.cli("show calls")
        assert w.cs.b2b.busy("s2001") == 1 and w.cs.b2b.busy("s2002") == 0
        w.phones["2001"].hangup(p)
        w.run_until(lambda: c.state == "terminated", 3000)
        # directed pickup: 2001 takes the call ringing on 2003 (no shared group needed)
        c, ring = _ringing(w, "2004", "2003")
        p = w.phones["2001"].call("*82003")
        w.run_until(lambda: p.state == "connected" and c.state == "connected", 3000)
        w.run_until(lambda: ring.state == "terminated", 3000)
        assert w.cs.b2b.features("pickup").counters["directed"] == 1
        w.phones["2004"].hangup(c)
        w.run_until(lambda: p.state == "terminated", 3000)
        w.assert_no_leaks(bindings=4)
    finally:
        w.close()


def test_pickup_refusals(tmp_path):
    w = CsWorld(tmp_path, seed=72, sip_exts=("2001", "2002", "2003", "2004"), extra=GROUPS)
    try:
        w.register_all()
        none = w.phones["2001"].call("*8")          # nothing rings in its group
        w.run_until(lambda: none.state == "terminated", 3000)
        assert none.status == 404, none.status
        c, ring = _ringing(w, "2001", "2003")      # rings in group back only
        alone = w.phones["2004"].call("*8")         # 2004 is in no group
        w.run_until(lambda: alone.state == "terminated", 3000)
        assert alone.status == 403, alone.status
        other = w.phones["2001"].call("*8")         # 2001 is not in group back
        w.run_until(lambda: other.state == "terminated", 3000)
        assert other.status == 404, other.status
        assert ring.state != "terminated"
        w.phones["2001"].hangup(c)
        w.assert_no_leaks(bindings=4)
    finally:
        w.close()


def test_analog_phone_picks_up_with_the_group_code(tmp_path):
    w = CsWorld(tmp_path, seed=73, sip_exts=("2001", "2002"), fxs=True, extra=ANALOG)
    try:
        w.register_all()
        sim, gw = w.app.hardware.sim, w.app.gateway
        w.run_until(lambda: gw.port_ready("fxs", 1), 3000)
        c, ring = _ringing(w, "2001", "2002")
        sim.phones[1].off_hook()
        w.run(300)
        sim.phones[1].dial_dtmf("*8")
        w.run_until(lambda: c.state == "connected" and gw.fxs[1].state == "talk", 8000)
        w.run_until(lambda: ring.state == "terminated", 3000)
        w.phones["2001"].hangup(c)
        w.run_until(lambda: gw.fxs[1].state != "talk", 3000)
        sim.phones[1].on_hook()
        w.assert_no_leaks(bindings=2)
        assert gw.leaks()["rtp"] == 0
    finally:
        w.close()


def test_busy_lamp_key_picks_up_with_replaces_of_the_ringing_dialog(tmp_path):
    w = CsWorld(tmp_path, seed=74, sip_exts=("2001", "2002", "2003", "2004", "2005"),
                extra=GROUPS)
    try:
        w.register_all()
        blf = SubClient(w, "127.0.2.3")
        k = blf.subscriber("dialog", "2002", "2001", password("2001"))
        k.start(w.now())
        w.run(1000)
        c, ring = _ringing(w, "2004", "2002")
        w.run(500)
        doc = blf.notes[-1][1].decode()
        m = re.search(r'call-id="([^"]+)" local-tag="([^"]+)" remote-tag="([^"]+)"', doc)
        assert m and "<state>early</state>" in doc, doc
        cid, local, remote = m.group(1), m.group(2), m.group(3)
        # a station in no group of 2002's (2005) may not take it: 403
        bad = w.phones["2005"].call("2002", headers=(
            ("Replaces", "%s;to-tag=%s;from-tag=%s" % (cid, remote, local)),))
        w.run_until(lambda: bad.state == "terminated", 3000)
        assert bad.status == 403, bad.status
        assert ring.state != "terminated"
        # the busy-lamp key of 2001 (group front): INVITE with Replaces
        p = w.phones["2001"].call("2002", headers=(
            ("Replaces", "%s;to-tag=%s;from-tag=%s" % (cid, remote, local)),))
        w.run_until(lambda: p.state == "connected" and c.state == "connected", 3000)
        w.run_until(lambda: ring.state == "terminated", 3000)
        assert w.cs.b2b.features("pickup").counters["replaces"] == 1
        w.phones["2004"].hangup(c)
        w.run_until(lambda: p.state == "terminated", 3000)
        k.stop(w.now())
        w.run(1000)
        blf.close()
        w.assert_no_leaks(bindings=5)
    finally:
        w.close()


def test_pickup_configuration_errors(tmp_path):
    w = CsWorld(tmp_path, seed=75)
    try:
        w.assert_refused([B + "pickup-group g member 2999"], "no station has this extension")
        w.assert_refused([B + "pickup-group g"], "a pickup group needs at least one member")
        w.assert_refused([B + "feature-codes pickup 200"], "is the start of station")
        w.assert_refused([B + "feature-codes pickup 12"], "already the code of retrieve")
        assert "no pickup group" in w.cli("show call-server pickup-groups")
    finally:
        w.close()
