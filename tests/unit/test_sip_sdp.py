# portable: micropython
"""SDP parse/serialise and RFC 3264 offer/answer."""
from tests.portable import raises
from sip.sdp import (parse_sdp, answer, offer, answer_direction, is_hold,
                     MAX_MEDIA)
from sip.errors import SdpError

OFFER = (b"v=0\r\n"
         b"o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\n"
         b"s=-\r\n"
         b"c=IN IP4 192.0.2.10\r\n"
         b"t=0 0\r\n"
         b"m=audio 49170 RTP/AVP 18 8 0 101\r\n"
         b"a=rtpmap:18 G729/8000\r\n"
         b"a=rtpmap:101 telephone-event/8000\r\n"
         b"a=fmtp:101 0-15\r\n"
         b"a=ptime:20\r\n"
         b"a=sendrecv\r\n"
         b"m=video 51372 RTP/AVP 31\r\n"
         b"a=rtpmap:31 H261/90000\r\n")


def test_parse_and_round_trip():
    s = parse_sdp(OFFER)
    assert s.serialize() == OFFER
    assert s.origin[0] == "alice" and s.origin[2] == "2890844526"
    assert s.connection == ("IN", "IP4", "192.0.2.10")
    assert len(s.media) == 2
    a = s.media[0]
    assert a.kind == "audio" and a.port == 49170 and a.proto == "RTP/AVP"
    assert a.fmts == ["18", "8", "0", "101"]
    assert a.rtpmap["0"] == ("PCMU", 8000, 1) and a.rtpmap["101"][0] == "telephone-event"
    assert a.fmtp["101"] == "0-15"
    assert a.direction == "sendrecv" and a.attr("ptime") == "20"
    assert a.connection == ("IN", "IP4", "192.0.2.10")
    assert a.codecs()[0] == ("18", "G729")


def test_bump_version():
    s = parse_sdp(OFFER)
    s.bump_version()
    assert s.origin[2] == "2890844527"
    assert b"o=alice 2890844526 2890844527 IN IP4" in s.serialize()


def test_answer_intersection():
    ans = answer(parse_sdp(OFFER), ["PCMU", "PCMA", "G722", "telephone-event"],
                 "192.0.2.20", 30000, session_id=7)
    a = ans.media[0]
    assert a.port == 30000 and a.fmts == ["8", "0", "101"]   # offer order kept
    assert a.rtpmap["101"][0] == "telephone-event"
    assert a.fmtp["101"] == "0-15"
    assert a.direction == "sendrecv"
    assert ans.media[1].port == 0 and ans.media[1].kind == "video"
    assert ans.connection[2] == "192.0.2.20"
    again = parse_sdp(ans.serialize())
    assert again.media[0].fmts == ["8", "0", "101"] and again.origin[1] == "7"


def test_no_common_codec():
    o = OFFER.replace(b"18 8 0 101", b"18 101")
    e = raises(SdpError, answer, parse_sdp(o), ["PCMU"], "192.0.2.20", 30000)
    assert e.status == 488
    e = raises(SdpError, answer, parse_sdp(o), ["PCMU", "telephone-event"],
               "192.0.2.20", 30000)
    assert e.status == 488


def test_directions():
    assert answer_direction("sendonly") == "recvonly"
    assert answer_direction("recvonly") == "sendonly"
    assert answer_direction("inactive") == "inactive"
    assert answer_direction("sendrecv") == "sendrecv"
    assert answer_direction("sendrecv", "sendonly") == "sendonly"
    assert answer_direction("sendonly", "sendonly") == "inactive"
    o = parse_sdp(OFFER.replace(b"a=sendrecv", b"a=sendonly"))
    assert is_hold(o.media[0])
    a = answer(o, ["PCMU"], "192.0.2.20", 30000)
    assert a.media[0].direction == "recvonly"
    held = parse_sdp(OFFER.replace(b"c=IN IP4 192.0.2.10", b"c=IN IP4 0.0.0.0"))
    assert is_hold(held.media[0])
    a = answer(held, ["PCMU"], "192.0.2.20", 30000)
    assert a.media[0].direction == "recvonly"
    # session-level direction inherited
    s = parse_sdp(OFFER.replace(b"a=sendrecv\r\n", b"").replace(b"t=0 0\r\n", b"t=0 0\r\na=inactive\r\n"))
    assert s.media[0].direction == "inactive"
    s.media[0].set_direction("sendonly")
    assert s.media[0].direction == "sendonly"


def test_offer_builder():
    s = offer(["PCMU", "PCMA", "telephone-event"], "192.0.2.5", 4000, 42)
    p = parse_sdp(s.serialize())
    m = p.media[0]
    assert m.fmts == ["0", "8", "101"] and m.fmtp["101"] == "0-16"
    assert p.origin[1] == "42" and m.direction == "sendrecv"
    a = answer(p, ["PCMA", "telephone-event"], "192.0.2.6", 5000)
    assert a.media[0].fmts == ["8", "101"]


def test_bad_sdp():
    for bad in [b"", b"x=0\r\n", b"v=0\r\ns=-\r\n", b"v=0\r\no=a b\r\ns=-\r\n",
                b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio x RTP/AVP 0\r\n",
                b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nm=audio 1 RTP/AVP 0\r\n",
                b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\ngarbage\r\n",
                b"\xff\xfe"]:
        e = raises(SdpError, parse_sdp, bad)
        assert e.status == 400
    many = b"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 h\r\n" + \
        b"m=audio 1 RTP/AVP 0\r\n" * (MAX_MEDIA + 1)
    raises(SdpError, parse_sdp, many)
