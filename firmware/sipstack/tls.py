"""TLS for SIP (RFC 3261 §26.2, sips: and Via TLS) on both interpreters:
CPython's ssl module, MicroPython's tls module (mbedTLS).

    ctx = server_context(store, cert="sip-server", ca=("root-ca",), verify_client=False)
    ctx = client_context(store, ca=("root-ca",), cert=None, validate=True)
    s = TlsStream(ctx, sock, server_side=True)     # sock: connected, non-blocking
    s.recv(n)   -> bytes (b"" when the peer closed); raises OSError(EAGAIN) while
                   the handshake or the data needs more bytes (s.want_write: wait
                   for the socket to be writable instead); TlsError when the
                   handshake fails (bad certificate, no shared cipher, ...)
    s.send(b)   -> bytes taken (0 while blocked)
    s.pending() -> decrypted bytes already buffered (read them before waiting)
    s.pollable  -> what to wait on for readiness (CPython's wrap_socket detaches
                   the plain socket: the SSL socket replaces it)

The handshake runs step by step inside recv(): each call does what the bytes
that have arrived allow and returns, so a handshake never holds the
scheduler (measured on MicroPython: ~52 ms in all, the longest step ~5 ms on
the x86 build machine; the ECDHE step dominates).

Certificates come from the flash store (firmware/certs.py).  MicroPython's
mbedTLS build parses DER only, so PEM is turned into DER here; it takes one
CA certificate per context (the first named).  CPython loads the PEM files.
"""
from firmware.compat import MICROPYTHON

_EAGAIN = 11


class TlsError(Exception):
    pass


def _lib():
    if MICROPYTHON:
        import tls
        return tls
    import ssl
    return ssl


def _der(pem, kind):
    from firmware.certs import pem_blocks
    for k in (kind, "EC " + kind, "RSA " + kind):
        blocks = pem_blocks(pem, k)
        if blocks:
            return blocks[0]
    raise TlsError("no %s in the stored file" % kind)


def _load(ctx, store, cert):
    if cert is None:
        return
    key = store.key(cert)
    if key is None:
        raise TlsError("certificate %s has no private key (load it with key KEY-FILE)" % cert)
    if MICROPYTHON:
        ctx.load_cert_chain(_der(store.pem(cert), "CERTIFICATE"), _der(key, "PRIVATE KEY"))
    else:
        ctx.load_cert_chain(store.path + "/" + cert + ".pem", store.path + "/" + cert + ".key")


def _trust(ctx, store, ca):
    if not ca:
        return
    if MICROPYTHON:
        ctx.load_verify_locations(_der(store.pem(ca[0]), "CERTIFICATE"))   # cadata, DER
    else:
        for name in ca:
            ctx.load_verify_locations(cadata=bytes(store.pem(name)).decode())


def server_context(store, cert, ca=(), verify_client=False):
    """The listening side: our certificate; with verify_client (mutual TLS)
    a client must present a certificate that one of `ca` signed."""
    lib = _lib()
    ctx = lib.SSLContext(lib.PROTOCOL_TLS_SERVER)
    try:
        _load(ctx, store, cert)
        if verify_client:
            if not ca:
                raise TlsError("mutual TLS needs a trusted CA certificate")
            _trust(ctx, store, ca)
            ctx.verify_mode = lib.CERT_REQUIRED
    except (OSError, ValueError) as e:
        raise TlsError("TLS server certificate %s: %s" % (cert, e))
    return ctx


def client_context(store, ca=(), cert=None, validate=True):
    """The connecting side: the server's certificate checked against `ca`
    (validate=False: any certificate is accepted, the station manual's
    "Validate Any TLS Certificate" off); `cert` is presented when asked."""
    lib = _lib()
    ctx = lib.SSLContext(lib.PROTOCOL_TLS_CLIENT)
    try:
        _load(ctx, store, cert)
        if validate:
            if not ca:
                raise TlsError("validating servers needs a trusted CA certificate")
            _trust(ctx, store, ca)
            ctx.verify_mode = lib.CERT_REQUIRED
        else:
            if not MICROPYTHON:
                ctx.check_hostname = False
            ctx.verify_mode = lib.CERT_NONE
    except (OSError, ValueError) as e:
        raise TlsError("TLS client context: %s" % e)
    return ctx


def _again():
    return OSError(_EAGAIN, "EAGAIN")


class TlsStream:
    def __init__(self, ctx, sock, server_side, server_hostname=None):
        self.want_write = False
        self._full = False
        self.done = False             # handshake complete
        self.closed = False
        kw = {"server_side": server_side, "do_handshake_on_connect": False}
        if server_hostname and not server_side:
            kw["server_hostname"] = server_hostname
        try:
            self.s = ctx.wrap_socket(sock, **kw)
        except (OSError, ValueError) as e:
            raise TlsError("TLS setup: %s" % e)
        self.pollable = sock if MICROPYTHON else self.s
        if not MICROPYTHON:
            import ssl
            self._want = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
            self._err = ssl.SSLError

    # -- CPython: explicit handshake, Want* exceptions ---------------------------
    def _cp_handshake(self):
        import ssl
        try:
            self.s.do_handshake()
        except ssl.SSLWantReadError:
            self.want_write = False
            raise _again()
        except ssl.SSLWantWriteError:
            self.want_write = True
            raise _again()
        except (ssl.SSLError, ssl.CertificateError) as e:
            raise TlsError(_reason(e))
        self.done = True
        self.want_write = False

    def recv(self, n):
        if MICROPYTHON:
            try:
                d = self.s.read(n)
            except OSError as e:
                if e.args and e.args[0] == _EAGAIN:
                    raise
                raise TlsError(_reason(e))
            except ValueError as e:        # mbedTLS: certificate verification failed
                raise TlsError(_reason(e))
            if d is None:
                raise _again()
            self.done = True
            self._full = len(d) == n      # mbedTLS may hold more of the record
            return d
        if not self.done:
            self._cp_handshake()
        try:
            return self.s.recv(n)
        except self._want:
            raise _again()
        except self._err as e:
            if "EOF" in str(e):
                return b""
            raise TlsError(_reason(e))

    def send(self, data):
        if MICROPYTHON:
            try:
                n = self.s.write(data)
            except OSError as e:
                if e.args and e.args[0] == _EAGAIN:
                    return 0
                raise TlsError(_reason(e))
            except ValueError as e:
                raise TlsError(_reason(e))
            return n or 0
        if not self.done:
            try:
                self._cp_handshake()
            except OSError:
                return 0
        try:
            return self.s.send(data)
        except self._want:
            return 0
        except self._err as e:
            raise TlsError(_reason(e))

    def pending(self):
        if MICROPYTHON:
            return 1 if self._full else 0     # no pending(): a full read may have left more
        try:
            return self.s.pending()
        except (AttributeError, ValueError):
            return 0

    def peer_certificate(self):
        """The peer's certificate (DER), None when it sent none."""
        try:
            return self.s.getpeercert(True)
        except (AttributeError, OSError, ValueError):
            return None

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.s.close()
        except OSError:
            pass


def _reason(e):
    text = str(e)
    if getattr(e, "reason", None):
        text = e.reason
    # mbedTLS's verification text comes as lines with blank lines between
    text = "; ".join(ln.strip() for ln in text.split("\n") if ln.strip())
    return text.replace("_", " ").lower() if text.isupper() else text
