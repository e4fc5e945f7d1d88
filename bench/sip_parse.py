"""Parse + serialise throughput of the SIP message layer.

    python bench/sip_parse.py        micropython bench/sip_parse.py
(from the repository root).  Prints a table and writes it to
bench/results/sip_parse-<impl>.txt.  On MicroPython it also reports heap bytes
allocated per parsed message (gc.mem_alloc() delta around one parse).
"""
import sys
if "." not in sys.path:
    sys.path.insert(0, ".")
import gc
import time

from sip.message import parse

MPY = sys.implementation.name == "micropython"

if MPY:
    def _now():
        return time.ticks_ms() / 1000.0

    def _elapsed(t0):
        return time.ticks_diff(time.ticks_ms(), int(t0 * 1000)) / 1000.0
else:
    def _now():
        return time.perf_counter()

    def _elapsed(t0):
        return time.perf_counter() - t0

SDP = (b"v=0\r\no=- 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
       b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 9 101\r\n"
       b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n"
       b"a=sendrecv\r\n")

INVITE = (b"INVITE sip:1002@branch.example.com SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport\r\n"
          b"Via: SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bK1d8a2;received=198.51.100.1\r\n"
          b"Max-Forwards: 69\r\n"
          b"From: \"Desk 1001\" <sip:1001@branch.example.com>;tag=9fxced76sl\r\n"
          b"To: <sip:1002@branch.example.com>\r\n"
          b"Call-ID: 3848276298220188511@192.0.2.10\r\n"
          b"CSeq: 1 INVITE\r\n"
          b"Contact: <sip:1001@192.0.2.10:5060;transport=udp>\r\n"
          b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY\r\n"
          b"Supported: replaces, timer\r\n"
          b"User-Agent: Branch-Phone/1.0\r\n"
          b"Content-Type: application/sdp\r\n"
          b"Content-Length: %d\r\n\r\n" % len(SDP)) + SDP

REGISTER = (b"REGISTER sip:branch.example.com SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds7;rport\r\n"
            b"Max-Forwards: 70\r\n"
            b"From: <sip:1001@branch.example.com>;tag=a73kszlfl\r\n"
            b"To: <sip:1001@branch.example.com>\r\n"
            b"Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\r\n"
            b"CSeq: 2 REGISTER\r\n"
            b"Contact: <sip:1001@192.0.2.10:5060>;expires=3600\r\n"
            b"Authorization: Digest username=\"1001\", realm=\"branch.example.com\", "
            b"nonce=\"0000000003e8a1b2c3d4e5f60718293a4b5c6d7e8f9012345678\", "
            b"uri=\"sip:branch.example.com\", "
            b"response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, "
            b"cnonce=\"0a4f113b\", qop=auth, nc=00000001\r\n"
            b"Expires: 3600\r\n"
            b"Content-Length: 0\r\n\r\n")


def run(name, data, seconds):
    n = 0
    t0 = _now()
    while True:
        for _ in range(50):
            m = parse(data)
            m.serialize()
        n += 50
        el = _elapsed(t0)
        if el >= seconds:
            break
    return n / el


def heap_per_msg(data):
    if not MPY:
        return None
    gc.collect()
    gc.collect()
    before = gc.mem_alloc()
    m = parse(data)
    after = gc.mem_alloc()
    del m
    gc.collect()
    return after - before


def main():
    seconds = 2.0
    impl = sys.implementation.name
    rows = []
    for name, data in (("INVITE+SDP (2 Via)", INVITE), ("REGISTER+Authorization", REGISTER)):
        parse(data).serialize()
        rate = run(name, data, seconds)
        heap = heap_per_msg(data)
        rows.append((name, len(data), rate, heap))
    lines = ["sip_parse on %s %s" % (impl, ".".join([str(x) for x in sys.implementation.version[:3]])),
             "%-24s %6s %12s %12s" % ("message", "bytes", "msgs/s", "heap B/msg")]
    for name, size, rate, heap in rows:
        lines.append("%-24s %6d %12.0f %12s" % (name, size, rate,
                                                "-" if heap is None else str(heap)))
    text = "\n".join(lines) + "\n"
    print(text)
    try:
        with open("bench/results/sip_parse-%s.txt" % impl, "w") as f:
            f.write(text)
    except OSError as e:
        print("could not write results:", e)


main()
