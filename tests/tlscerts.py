"""Test certificates made with the `cryptography` package: a CA, entity
certificates it signs (server, client), a self-signed stranger and an
expired one, written as PEM files into a directory."""
import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(cn, org="Branch Test"):
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def _cert(subject, key, issuer, issuer_key, ca, days=(-1, 365), sans=()):
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now + datetime.timedelta(days=days[0]))
         .not_valid_after(now + datetime.timedelta(days=days[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(s) if not s[0].isdigit() else
             x509.IPAddress(__import__("ipaddress").ip_address(s)) for s in sans]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


class Pki:
    """Files in `d`: ca.pem, server.pem/server.key (CN branch.example.com,
    SANs localhost and 127.0.0.1), client.pem/client.key, stranger.pem/.key
    (self-signed), expired.pem/.key."""

    def __init__(self, d, years=1):
        self.dir = str(d)
        days = (-1, 365 * years)
        ca_key = _key()
        ca_name = _name("Branch Test CA")
        self.ca = _cert(ca_name, ca_key, ca_name, ca_key, True, days=(-1, 3650 * years))
        self._write("ca.pem", self.ca.public_bytes(serialization.Encoding.PEM))
        self.files = {}
        for name, cn, sans in (("server", "branch.example.com", ("localhost", "127.0.0.1")),
                               ("client", "phone-2001", ())):
            k = _key()
            c = _cert(_name(cn), k, ca_name, ca_key, False, days=days, sans=sans)
            self._pair(name, c, k)
        k = _key()
        self._pair("stranger", _cert(_name("stranger"), k, _name("stranger"), k, False, days=days),
                   k)
        k = _key()
        self._pair("expired", _cert(_name("old"), k, ca_name, ca_key, False, days=(-30, -1)), k)

    def _pair(self, name, cert, key):
        self._write(name + ".pem", cert.public_bytes(serialization.Encoding.PEM))
        self._write(name + ".key", _pem_key(key))
        self.files[name] = cert

    def _write(self, name, data):
        with open(os.path.join(self.dir, name), "wb") as f:
            f.write(data)

    def path(self, name):
        return os.path.join(self.dir, name)


if __name__ == "__main__":
    # the fixed set under tests/data/tls, for tests that also run under
    # MicroPython (which cannot make certificates): valid for 30 years
    import sys
    Pki(sys.argv[1] if len(sys.argv) > 1 else "tests/data/tls", years=30)
