"""Certificates and keys on flash for SIP over TLS, and their console
commands (registered by firmware/certscmd.py, which imports this module only
when one runs).

    request security certificate load NAME FILE [key KEY-FILE]
    request security certificate delete NAME
    show security certificates

A certificate (PEM, one or more certificates: the first is the entity, the
rest its chain) is read from FILE, checked (it must parse as X.509 DER) and
stored as <state>/certs/NAME.pem; its private key, when given, as NAME.key
(PEM, never shown).  Each file is written to a .tmp, synced and renamed, so a
power cut leaves the old or the new, never half of one.  The TLS
configuration names them (`set security tls certificate NAME`, `ca NAME`).

Bounds: MAX_CERTS names, MAX_PEM_BYTES per file (refused beyond, with the
reason).  The X.509 reader here is a small DER walker that reads what the
console shows (subject, issuer, validity, whether it is a CA); the TLS
library does the real verification.
"""
import binascii

from firmware.compat import const

MAX_CERTS = const(16)
MAX_PEM_BYTES = const(16384)
DIR = "certs"
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

# X.520 attribute types shown in names
_OIDS = {b"\x55\x04\x03": "CN", b"\x55\x04\x06": "C", b"\x55\x04\x07": "L",
         b"\x55\x04\x08": "ST", b"\x55\x04\x0a": "O", b"\x55\x04\x0b": "OU"}
_BASIC_CONSTRAINTS = b"\x55\x1d\x13"


class CertError(ValueError):
    pass


# -- PEM and DER ------------------------------------------------------------------

def pem_blocks(text, kind="CERTIFICATE"):
    """The DER bytes of each -----BEGIN kind----- block of text."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode()
    begin, end = "-----BEGIN %s-----" % kind, "-----END %s-----" % kind
    out = []
    i = text.find(begin)
    while i >= 0:
        j = text.find(end, i)
        if j < 0:
            raise CertError("%s block without its END line" % kind)
        body = "".join(text[i + len(begin):j].split())
        try:
            out.append(binascii.a2b_base64(body))
        except ValueError:
            raise CertError("%s block is not base64" % kind)
        i = text.find(begin, j)
    return out


def _tlv(d, i):
    """(tag, start of value, end of value) of the DER element at d[i]."""
    if i + 2 > len(d):
        raise CertError("truncated DER")
    tag, n = d[i], d[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or i + k > len(d):
            raise CertError("bad DER length")
        n = int.from_bytes(bytes(d[i:i + k]), "big")
        i += k
    if i + n > len(d):
        raise CertError("truncated DER")
    return tag, i, i + n


def _children(d, start, end):
    out = []
    while start < end:
        t, s, e = _tlv(d, start)
        out.append((t, s, e))
        start = e
    return out


def _name(d, s, e):
    parts = []
    for _, rs, re_ in _children(d, s, e):              # SET OF
        for _, as_, ae in _children(d, rs, re_):       # SEQUENCE {OID, value}
            kids = _children(d, as_, ae)
            if len(kids) < 2:
                continue
            oid = bytes(d[kids[0][1]:kids[0][2]])
            key = _OIDS.get(oid)
            if key:
                parts.append("%s=%s" % (key, bytes(d[kids[1][1]:kids[1][2]]).decode()))
    return ", ".join(parts)


def _time(d, tag, s, e):
    """A UTCTime (0x17) or GeneralizedTime (0x18) as (text, comparable int
    YYYYMMDDHHMMSS)."""
    t = bytes(d[s:e]).decode()
    if tag == 0x17:
        t = ("19" if int(t[:2]) >= 50 else "20") + t
    if len(t) < 15 or not t[:14].isdigit():
        raise CertError("bad certificate time %r" % t)
    text = "%s-%s-%s %s:%s:%s UTC" % (t[0:4], t[4:6], t[6:8], t[8:10], t[10:12], t[12:14])
    return text, int(t[:14])


class Cert:
    __slots__ = ("subject", "issuer", "not_before", "not_after", "nb_key", "na_key", "ca", "der")

    def __init__(self, der):
        self.der = der
        try:
            self._parse(der)
        except (IndexError, UnicodeError, ValueError) as e:
            raise CertError("not an X.509 certificate (%s)" % e)

    def _parse(self, d):
        t, s, e = _tlv(d, 0)
        if t != 0x30 or e != len(d):
            raise CertError("not a DER SEQUENCE")
        t, s, e = _tlv(d, s)                        # tbsCertificate
        if t != 0x30:
            raise CertError("no tbsCertificate")
        kids = _children(d, s, e)
        if kids and kids[0][0] == 0xA0:             # [0] version
            kids = kids[1:]
        # serial, signature algorithm, issuer, validity, subject, key, ...
        if len(kids) < 6:
            raise CertError("tbsCertificate too short")
        self.issuer = _name(d, kids[2][1], kids[2][2])
        validity = _children(d, kids[3][1], kids[3][2])
        if len(validity) != 2:
            raise CertError("bad validity")
        self.not_before, self.nb_key = _time(d, *validity[0])
        self.not_after, self.na_key = _time(d, *validity[1])
        self.subject = _name(d, kids[4][1], kids[4][2])
        self.ca = False
        for t, s2, e2 in kids[6:]:
            if t == 0xA3:                           # [3] extensions
                self.ca = _is_ca(d, s2, e2)


def _is_ca(d, s, e):
    _, s, e = _tlv(d, s)                                   # SEQUENCE OF Extension
    for _, xs, xe in _children(d, s, e):
        kids = _children(d, xs, xe)
        if bytes(d[kids[0][1]:kids[0][2]]) != _BASIC_CONSTRAINTS:
            continue
        _, vs, ve = kids[-1]                               # OCTET STRING
        _, bs, be = _tlv(d, vs)                            # BasicConstraints SEQUENCE
        for t, cs, ce in _children(d, bs, be):
            if t == 0x01:                                  # cA BOOLEAN
                return d[cs] != 0
    return False


def utc_key(secs):
    """Unix seconds as the YYYYMMDDHHMMSS integer certificates compare in."""
    from firmware.timeofday import civil_from_days
    days, rem = divmod(int(secs), 86400)
    y, mo, d = civil_from_days(days)
    return ((y * 100 + mo) * 100 + d) * 1000000 + (rem // 3600) * 10000 \
        + (rem % 3600 // 60) * 100 + rem % 60


# -- the store ---------------------------------------------------------------------

class CertStore:
    def __init__(self, state_dir):
        from firmware.config.store import FileFlash
        self.flash = FileFlash(state_dir + "/" + DIR)
        self.path = self.flash.path

    def names(self):
        return sorted(n[:-4] for n in self.flash.listdir() if n.endswith(".pem"))

    def pem(self, name):
        data = self.flash.read(name + ".pem", MAX_PEM_BYTES)
        if data is None:
            raise CertError("no certificate %s (request security certificate load)" % name)
        return data

    def key(self, name):
        return self.flash.read(name + ".key", MAX_PEM_BYTES)

    def certs(self, name):
        return [Cert(der) for der in pem_blocks(self.pem(name))]

    def load(self, name, pem, key=None):
        check_name(name)
        if name not in self.names() and len(self.names()) >= MAX_CERTS:
            raise CertError("%d certificates stored already (the limit); delete one first" %
                            MAX_CERTS)
        for what, data in (("certificate", pem), ("key", key)):
            if data is not None and len(data) > MAX_PEM_BYTES:
                raise CertError("%s file is %d bytes (limit %d)" % (what, len(data), MAX_PEM_BYTES))
        ders = pem_blocks(pem)
        if not ders:
            raise CertError("no -----BEGIN CERTIFICATE----- block in the file")
        certs = [Cert(d) for d in ders]
        if key is not None and not _has_private_key(key):
            raise CertError("no PRIVATE KEY block in the key file")
        for ext, data in ((".key", key), (".pem", pem)):
            if data is None:
                continue
            self.flash.write(name + ext + ".tmp", bytes(data))
            self.flash.rename(name + ext + ".tmp", name + ext)
        self.flash.sync()
        return certs

    def delete(self, name):
        if name not in self.names():
            raise CertError("no certificate %s" % name)
        self.flash.remove(name + ".pem")
        self.flash.remove(name + ".key")
        self.flash.sync()


def _has_private_key(key):
    text = bytes(key).decode()
    return "PRIVATE KEY-----" in text and "-----BEGIN" in text


def check_name(name):
    if not name or len(name) > 32 or any(c not in _NAME_CHARS for c in name) or name[0] == ".":
        raise CertError("certificate name %r: 1-32 letters, digits, - _ ." % name)


# -- console -------------------------------------------------------------------------

def _store(app):
    return CertStore(app.state_dir)


def _read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read(MAX_PEM_BYTES + 1)
    except OSError as e:
        from firmware.commands import CommandError
        raise CommandError("cannot read %s: %s" % (path, e))


def cmd_load(app, args):
    from firmware.commands import CommandError
    if len(args) not in (2, 4) or (len(args) == 4 and args[2] != "key"):
        raise CommandError("usage: request security certificate load NAME FILE [key KEY-FILE]")
    pem = _read_file(args[1])
    key = _read_file(args[3]) if len(args) == 4 else None
    try:
        certs = _store(app).load(args[0], pem, key)
    except CertError as e:
        raise CommandError("certificate %s refused: %s" % (args[0], e))
    app.log.info("security: certificate %s loaded (%s)" % (args[0], certs[0].subject))
    return "Certificate %s loaded: %s, issued by %s, valid until %s%s%s" % (
        args[0], certs[0].subject, certs[0].issuer, certs[0].not_after,
        ", with %d more in its chain" % (len(certs) - 1) if len(certs) > 1 else "",
        ", with its private key" if key is not None else "")


def cmd_delete(app, args):
    from firmware.commands import CommandError
    if len(args) != 1:
        raise CommandError("usage: request security certificate delete NAME")
    try:
        _store(app).delete(args[0])
    except CertError as e:
        raise CommandError(str(e))
    return "Certificate %s deleted" % args[0]


def cmd_show(app, args):
    st = _store(app)
    names = st.names()
    if not names:
        return "No certificates (request security certificate load NAME FILE)"
    ms = app.time.now()
    now = None if ms is None else utc_key(ms // 1000)
    lines = []
    for n in names:
        try:
            certs = st.certs(n)
        except CertError as e:
            lines.append("%s: unreadable (%s)" % (n, e))
            continue
        c = certs[0]
        if now is None:
            state = "clock not set"
        elif now > c.na_key:
            state = "EXPIRED"
        elif now < c.nb_key:
            state = "not yet valid"
        else:
            state = "valid"
        lines.append("%s: %s%s" % (n, state, ", private key" if st.key(n) is not None else ""))
        lines.append("  subject: %s%s" % (c.subject, "  (CA)" if c.ca else ""))
        lines.append("  issuer:  %s" % c.issuer)
        lines.append("  valid:   %s .. %s" % (c.not_before, c.not_after))
        if len(certs) > 1:
            lines.append("  chain:   %d more" % (len(certs) - 1))
    return "\n".join(lines)
