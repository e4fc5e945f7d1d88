"""A station's SRTP policy on calls between SIP phones (issue 17):

    station NAME srtp disable | prefer | require      (default prefer)

The B2BUA does not terminate media between two phones: their SDES keys
(RFC 4568 a=crypto) pass through untouched, and the phones encrypt end to
end.  What the call server decides:
  - admit(): a caller or a callee whose policy is `require` gets 488 when
    the offer holds no usable key; so does an RTP/SAVP offer without one.
    A key that reached us over anything but TLS is no key (anyone on the
    path read it).
  - for_leg() (the offer, or False): keys travel only over TLS.  A callee contact reached over UDP
    or TCP, or a callee with `disable`, gets the offer without its a=crypto
    lines (plain RTP); when the offer cannot be made plain (RTP/SAVP, or the
    callee requires SRTP) that contact is not rung.
"""
from sip import sdes
from sip.sdp import parse_sdp
from sip.errors import SipError

POLICIES = sdes.POLICIES
DEFAULT = sdes.PREFER


def policy(st):
    return getattr(st, "srtp", DEFAULT) if st is not None else DEFAULT


def _audio(body):
    if not body:
        return None, None
    try:
        s = parse_sdp(body)
    except (SipError, ValueError):
        return None, None
    for m in s.media:
        if m.kind == "audio" and m.port != 0:
            return s, m
    return s, None


def keys_of(body, secure):
    """(usable key offered, RTP/SAVP) of an offer that came over a secure
    path or not."""
    _, m = _audio(body)
    if m is None:
        return False, False
    savp = m.proto.upper().startswith("RTP/SAVP")
    key = secure and sdes.choose(m.attrs("crypto"), sdes.SUITES) is not None
    return key, savp


def admit(caller, callee, body, secure):
    """None, or (488, reason) to refuse the call."""
    if not body:
        return None             # delayed offer: the answer side decides
    key, savp = keys_of(body, secure)
    if key:
        return None
    if policy(caller) == sdes.REQUIRE:
        return (488, "SRTP Required" if secure else "SRTP Required (Keys Only Over TLS)")
    if callee is not None and policy(callee) == sdes.REQUIRE:
        return (488, "SRTP Required By The Called Station")
    if savp:
        return (488, "RTP/SAVP Offered Without A Usable Key")
    return None


def for_leg(body, callee, transport, secure):
    """The offer for one callee contact: as it is, without its keys, or
    False (this contact cannot take the call)."""
    if not body:
        return body
    s, m = _audio(body)
    if m is None or not m.attrs("crypto"):
        return body
    if transport == "TLS" and secure and policy(callee) != sdes.DISABLE:
        return body
    if m.proto.upper().startswith("RTP/SAVP") or policy(callee) == sdes.REQUIRE:
        return False
    for mm in s.media:
        mm.lines = [ln for ln in mm.lines
                    if not (ln[0] == "a" and (ln[1] == "crypto" or ln[1].startswith("crypto:")))]
    out = s.serialize()
    return out.decode() if isinstance(body, str) and not isinstance(out, str) else out
