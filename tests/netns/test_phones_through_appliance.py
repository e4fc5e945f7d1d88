"""Issue 13 point 7, SIP phones: SIPp phones in the branch LAN namespace
register THROUGH the appliance (its outbound proxy, firmware/proxy/outbound.py)
to the real Kamailio at HQ, which challenges them; calls between two branch
phones and from an HQ phone go through Kamailio; at a WAN cut the local call
server calls them on the shadow bindings it holds (no phone re-registers);
911 from a SIP phone leaves through the FXO line in both modes; two baresip
phones register through the appliance and call each other through Kamailio.

The rig is the one of test_survivability_kamailio.py with three SIP stations
added (2001 calls; 2002 and 2102 answer from one SIPp port, as
tests/interop/test_callserver_sipp.py pairs them: a call to 21xx is hung up by
the called side); the SIPp scenarios are tests/interop/scenarios/.
"""
import os
import re

import pytest

from tests.interop import sipprun
from tests.interop.baresip import Baresip
from tests.netns.netns import APPLIANCE, PHONES, inside, until
from tests.netns.rig import B, HOLD_DOWN_S, SIP_PORT, WINDOW_S, NsSipp, Rig, hq_phone, password

SCENARIOS = sipprun.SCENARIOS
HERE = os.path.dirname(os.path.abspath(__file__))
SIP_STATIONS = ("2001", "2002", "2102")
BARESIP = ("2201", "2202")
LATE = "2003"           # registers for the first time during survival
CALLER_PORT, CALLEE_PORT, LATE_PORT = 5081, 5082, 5083
EXTRA = [B + "station s%s %s" % (e, kv) for e in SIP_STATIONS + BARESIP + (LATE,)
         for kv in ("extension " + e, "password " + password(e))] + [
    # uac_call.xml answers no 407: in survival mode the local call server
    # trusts the caller by the source of its (shadow) binding
    B + "station s2001 caller-authentication registered-source"]


@pytest.fixture(scope="module")
def rig():
    # uac_call.xml answers no 407: Kamailio challenges REGISTER only here
    r = Rig(extra=EXTRA, invite_auth=False)
    try:
        yield r
    finally:
        r.close()


def _sipp(rig, scenario, port, inf, calls=1, extra=(), timeout_s=30):
    return NsSipp(rig.net, rig.net.lan, PHONES, os.path.join(SCENARIOS, scenario + ".xml"),
                  "%s:%d" % (APPLIANCE, SIP_PORT), rig.tmp, calls=calls, inf=inf,
                  local_port=port, timeout_s=timeout_s, extra=extra)


def _ok(res, n, what):
    assert res.rc == 0 and res.successful == n and res.failed == 0, \
        "%s: expected %d successful\n%s" % (what, n, res.describe())


def _register(rig):
    inf_a = sipprun.users_csv(os.path.join(rig.tmp, "caller.csv"), ["2001"])
    inf_b = sipprun.users_csv(os.path.join(rig.tmp, "callees.csv"), ["2002", "2102"])
    a = _sipp(rig, "reg_station", CALLER_PORT, inf_a)
    _ok(a.wait(), 1, "2001 registers through the appliance")
    b = _sipp(rig, "reg_station", CALLEE_PORT, inf_b, calls=2)
    _ok(b.wait(), 2, "2002 and 2102 register through the appliance")


def _calls(rig, n):
    """n calls, one at a time: 2001 calls 2002 (the caller hangs up) or 2102
    (the called side does), SIPp drawing the side per call."""
    calls = sipprun.calls_csv(os.path.join(rig.tmp, "calls.csv"), ["2001"], ["2002"], ["2102"])
    uas = _sipp(rig, "uas_call", CALLEE_PORT, None, calls=n, extra=("-d", "300"))
    uac = _sipp(rig, "uac_call", CALLER_PORT, calls, calls=n, extra=("-users", "1", "-d", "300"))
    _ok(uac.wait(), n, "2001 calls 2002/2102")
    _ok(uas.wait(), n, "2002/2102 answer 2001")


def test_sip_phones_register_through_the_appliance_and_call_through_kamailio(rig):
    rig.start_with_peer()
    regs = rig.kamailio.stat("core:rcv_requests_register")
    _register(rig)
    # Kamailio challenged them (the appliance relays, it does not authenticate)
    assert rig.kamailio.stat("core:rcv_requests_register") >= regs + 6
    aors, _ = until("the SIP phones bound at Kamailio", lambda: (
        lambda a: all(e in a for e in SIP_STATIONS) and a)(rig.kamailio.aors()), 10)
    for e in SIP_STATIONS:
        # the contact Kamailio holds leads to the appliance, not to the LAN
        assert all(APPLIANCE in c for c in aors[e]), aors
    mark = rig.mark_calls()
    _calls(rig, 4)
    assert rig.kamailio.stat("core:rcv_requests_invite") >= mark[0] + 4, "not through Kamailio"
    # an HQ phone calls a branch SIP phone
    mark = rig.kamailio.stat("core:rcv_requests_invite")
    uas = _sipp(rig, "uas_call", CALLEE_PORT, None, extra=("-d", "500"))
    hq = hq_phone(rig, "3001", "2002", 500)
    _ok(hq.wait(), 1, "HQ 3001 calls 2002")
    _ok(uas.wait(), 1, "2002 answers HQ")
    assert rig.kamailio.stat("core:rcv_requests_invite") >= mark + 1


def test_wan_cut_sip_phones_call_on_their_shadow_bindings(rig):
    rig.start_with_peer()
    if not all(e in rig.kamailio.aors() for e in SIP_STATIONS):
        _register(rig)
    regs = rig.kamailio.stat("core:rcv_requests_register")
    rig.net.cut()
    rig.wait_local(10)
    # no phone registers again: the SIPp phones only call
    invites = rig.kamailio.stat("core:rcv_requests_invite")
    _calls(rig, 4)
    assert rig.kamailio.stat("core:rcv_requests_invite") == invites
    # a phone that registers during survival: its local password, a short grant
    # (50-100 % of call-server survival-registration-expiry, 120 s by default)
    inf = sipprun.users_csv(os.path.join(rig.tmp, "late.csv"), [LATE])
    _ok(_sipp(rig, "reg_station", LATE_PORT, inf).wait(), 1, LATE + " registers locally")
    row = [ln for ln in rig.cmd("show sip registrations").split("\n")
           if ln.strip().startswith("s" + LATE + " ")]
    m = re.search(r"\s(\d+)s\s", row[0]) if row else None
    assert m and 50 <= int(m.group(1)) <= 120, rig.cmd("show sip registrations")
    rig.net.restore()
    rig.wait_peer(WINDOW_S + HOLD_DOWN_S + 10)
    mark = rig.mark_calls()
    _calls(rig, 2)
    assert rig.kamailio.stat("core:rcv_requests_invite") >= mark[0] + 1, "not through Kamailio"
    assert rig.kamailio.stat("core:rcv_requests_register") >= regs


def _sip_911(rig):
    """2001 dials 911: the FXO line is seized and dials exactly 911."""
    mark = rig.log_mark()
    inf = os.path.join(rig.tmp, "e911.csv")
    with open(inf, "w") as f:
        f.write("SEQUENTIAL\n2001;911\n")
    s = NsSipp(rig.net, rig.net.lan, PHONES, os.path.join(HERE, "scenarios", "sip_911.xml"),
               "%s:%d" % (APPLIANCE, SIP_PORT), rig.tmp, inf=inf, local_port=CALLER_PORT,
               timeout_s=30, extra=("-d", "1000"))
    rig.wait_dialled(mark, 1, "911")
    _ok(s.wait(), 1, "911 from a SIP phone")
    rig.wait_row("fxo 1", hook="idle")


def test_911_from_a_sip_phone_leaves_through_fxo_in_both_modes(rig):
    rig.start_with_peer()
    if not all(e in rig.kamailio.aors() for e in SIP_STATIONS):
        _register(rig)
    invites = rig.kamailio.stat("core:rcv_requests_invite")
    _sip_911(rig)
    assert rig.kamailio.stat("core:rcv_requests_invite") == invites, "911 went to Kamailio"
    rig.net.cut()
    rig.wait_local(10)
    _sip_911(rig)
    rig.net.restore()


def test_baresip_phones_register_through_the_appliance_and_call_through_kamailio(rig):
    rig.start_with_peer()
    phones = []
    try:
        # started inside the LAN namespace: baresip and its ctrl_tcp socket live there
        with inside(rig.net.lan):
            for e in BARESIP:
                phones.append(Baresip(e, password(e), SIP_PORT, domain=rig.kamailio.domain,
                                      registrar_host=APPLIANCE, host=PHONES))
        a, b = phones
        a.wait_registered()
        b.wait_registered()
        aors, _ = until("baresip bound at Kamailio", lambda: (
            lambda x: all(e in x for e in BARESIP) and x)(rig.kamailio.aors()), 10)
        assert all(APPLIANCE in c for e in BARESIP for c in aors[e]), aors
        mark = rig.mark_calls()
        a.dial("sip:2202@" + rig.kamailio.domain)
        b.wait_event("CALL_INCOMING")
        b.answer()
        a.wait_event("CALL_ESTABLISHED")
        b.wait_event("CALL_ESTABLISHED")
        assert rig.kamailio.stat("core:rcv_requests_invite") >= mark[0] + 1, "not through Kamailio"
        b.hangup()
        a.wait_event("CALL_CLOSED")
        b.wait_event("CALL_CLOSED")
    finally:
        for p in phones:
            p.close()
