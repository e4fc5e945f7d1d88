"""RADIUS packets (RFC 2865 layout, RFC 2866 accounting), on hashlib only so
that it runs on MicroPython too.

    Code(1) Identifier(1) Length(2) Authenticator(16) Attributes...

Accounting-Request authenticator (RFC 2866 3):
    MD5(Code + Identifier + Length + 16 zero octets + Attributes + Secret)
Accounting-Response authenticator (RFC 2866 4, RFC 2865 3):
    MD5(Code + Identifier + Length + RequestAuthenticator + Attributes + Secret)

An attribute is (type, value) with value bytes, str (UTF-8), or int (a
32-bit integer; NAS-IP-Address takes a dotted-quad str).  A vendor-specific
attribute is (26, (vendor, vendor_type, value)).
"""
import struct

from firmware.compat import const, md5

ACCOUNTING_REQUEST = const(4)
ACCOUNTING_RESPONSE = const(5)
HEADER = const(20)
MAX_PACKET = const(4096)        # RFC 2865 3: the largest packet
MAX_VALUE = const(253)          # one attribute's value (longer text is cut)

# attribute types used here (RFC 2865 5, RFC 2866 5)
USER_NAME = const(1)
NAS_IP_ADDRESS = const(4)
NAS_PORT = const(5)
VENDOR_SPECIFIC = const(26)
CALLED_STATION_ID = const(30)
CALLING_STATION_ID = const(31)
NAS_IDENTIFIER = const(32)
ACCT_STATUS_TYPE = const(40)
ACCT_DELAY_TIME = const(41)
ACCT_SESSION_ID = const(44)
ACCT_AUTHENTIC = const(45)
ACCT_SESSION_TIME = const(46)
ACCT_TERMINATE_CAUSE = const(49)
EVENT_TIMESTAMP = const(55)
NAS_PORT_TYPE = const(61)

START = const(1)
STOP = const(2)
INTERIM_UPDATE = const(3)
STATUS_NAMES = {START: "Start", STOP: "Stop", INTERIM_UPDATE: "Interim-Update"}

INTEGER_TYPES = (NAS_PORT, ACCT_STATUS_TYPE, ACCT_DELAY_TIME, ACCT_AUTHENTIC,
                 ACCT_SESSION_TIME, ACCT_TERMINATE_CAUSE, EVENT_TIMESTAMP, NAS_PORT_TYPE)

VENDOR_CISCO = const(9)


def ipv4_bytes(text):
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError("not an IPv4 address: %s" % text)
    out = bytearray(4)
    for i in range(4):
        n = int(parts[i])
        if not 0 <= n <= 255:
            raise ValueError("not an IPv4 address: %s" % text)
        out[i] = n
    return bytes(out)


def _value(t, v):
    if t == NAS_IP_ADDRESS:
        return ipv4_bytes(v)
    if isinstance(v, int):
        return struct.pack(">I", v & 0xFFFFFFFF)
    if isinstance(v, str):
        v = v.encode()
    return _cut(bytes(v), MAX_VALUE)


def _cut(b, n):
    """At most n bytes, not ending inside a UTF-8 sequence."""
    if len(b) <= n:
        return b
    b = b[:n]
    while b and (b[-1] & 0xC0) == 0x80:
        b = b[:-1]
    if b and b[-1] >= 0xC0:
        b = b[:-1]
    return b


def encode_attributes(attrs):
    out = []
    for t, v in attrs:
        if t == VENDOR_SPECIFIC:
            vendor, vt, vv = v
            vv = _value(vt, vv)
            vv = _cut(vv, MAX_VALUE - 8)
            out.append(struct.pack(">BBIBB", t, len(vv) + 8, vendor, vt, len(vv) + 2) + vv)
        else:
            b = _value(t, v)
            out.append(struct.pack(">BB", t, len(b) + 2) + b)
    return b"".join(out)


def accounting_request(ident, secret, attrs):
    """The bytes of an Accounting-Request; secret is bytes."""
    body = encode_attributes(attrs)
    n = HEADER + len(body)
    if n > MAX_PACKET:
        raise ValueError("accounting request of %d bytes exceeds %d" % (n, MAX_PACKET))
    head = struct.pack(">BBH", ACCOUNTING_REQUEST, ident & 0xFF, n)
    auth = md5(head + bytes(16) + body + secret).digest()
    return head + auth + body


def request_authenticator(packet):
    return bytes(packet[4:HEADER])


def check_response(data, request, secret):
    """None when data is the Accounting-Response to request (bytes we sent),
    else why not (a short reason for the counters and the log)."""
    if len(data) < HEADER:
        return "shorter than a RADIUS header"
    code, ident, n = struct.unpack(">BBH", data[:4])
    if n < HEADER or n > len(data) or n > MAX_PACKET:
        return "length field %d does not fit %d bytes" % (n, len(data))
    if code != ACCOUNTING_RESPONSE:
        return "code %d is not Accounting-Response" % code
    if ident != request[1]:
        return "identifier %d answers no outstanding request" % ident
    data = bytes(data[:n])
    want = md5(data[:4] + request_authenticator(request) + data[HEADER:] + secret).digest()
    if want != data[4:HEADER]:
        return "response authenticator does not verify (wrong shared secret?)"
    return None


def decode_attributes(body):
    """[(type, bytes)] of an attribute block; ValueError when malformed."""
    out = []
    i = 0
    while i < len(body):
        if i + 2 > len(body):
            raise ValueError("attribute header cut at offset %d" % i)
        t, n = body[i], body[i + 1]
        if n < 2 or i + n > len(body):
            raise ValueError("attribute %d length %d overruns the packet" % (t, n))
        out.append((t, bytes(body[i + 2:i + n])))
        i += n
    return out
