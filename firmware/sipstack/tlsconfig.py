"""SIP over TLS in the configuration (issue 17):

    services convergence-services security tls {
        certificate sip-server;      # stored with its key (request security certificate load)
        ca [ root-ca ];              # trusted CAs: client certificates (mutual TLS),
                                     # servers we connect to
        mutual-tls;                  # clients must present a certificate a CA signed
        validate-server true;        # false: accept any server certificate
        port 5061;
    }

With a certificate the appliance listens for TLS on `port` next to UDP and
TCP; without, it does not.  The commit builds the TLS contexts first, so a
missing certificate, a certificate without its key, a key that does not
match, or mutual TLS without a CA refuses the commit with the reason; the
listener then moves, starts or stops live.  firmware/sipstack/tls.py is
imported only when TLS is configured.
"""
from firmware.config import schema as S
from firmware.config.schema import ConfigError

BASE = "services convergence-services security"
T = BASE + " tls "
DEFAULT_TLS_PORT = 5061
MAX_CA = 4

S.register(BASE, S.Container(
    "tls", "SIP over TLS (sips:, Via TLS): the listener and its certificates", children=(
        S.Leaf("certificate", S.Name(), help="Stored certificate with its key that the "
               "appliance presents (request security certificate load NAME FILE key KEY-FILE); "
               "configured: the TLS listener runs"),
        S.LeafList("ca", S.Name(), max_items=MAX_CA,
                   help="Stored CA certificates trusted for client certificates and servers"),
        S.Leaf("mutual-tls", S.Flag(), help="Require a client certificate signed by a "
               "trusted CA (the station manual's SIP Mutual TLS)"),
        S.Leaf("validate-server", S.Boolean(), default=True,
               help="Check the certificate of servers the appliance connects to against "
                    "the trusted CAs (false: accept any)"),
        S.Leaf("port", S.Port(), default=DEFAULT_TLS_PORT, help="TLS listening port"),
    )))


class TlsSettings:
    def __init__(self, cfg):
        self.certificate = cfg.get(T + "certificate") if cfg is not None else None
        self.ca = tuple(cfg.get(T + "ca") or ()) if cfg is not None else ()
        self.mutual = bool(cfg.get(T + "mutual-tls")) if cfg is not None else False
        self.validate = cfg.get(T + "validate-server") if cfg is not None else True
        self.port = cfg.get(T + "port") if cfg is not None else DEFAULT_TLS_PORT

    def key(self):
        return (self.certificate, self.ca, self.mutual, self.validate, self.port)


def _contexts(app, st):
    from firmware.certs import CertStore, CertError
    from firmware.sipstack import tls
    store = CertStore(app.state_dir)
    try:
        for name in (st.certificate,) + st.ca:
            store.pem(name)
        server = tls.server_context(store, st.certificate, st.ca, st.mutual)
        client = tls.client_context(store, st.ca, None, st.validate) \
            if (st.ca or not st.validate) else None
    except (CertError, tls.TlsError) as e:
        raise ConfigError(T + "certificate", st.certificate, str(e))
    return server, client


def check(app, old, new):
    st = TlsSettings(new)
    if st.certificate is None:
        if st.mutual:
            raise ConfigError(T + "mutual-tls", None, "mutual TLS needs a certificate")
        return
    sip_port = getattr(app, "sip_port", None)
    if sip_port is not None and st.port == sip_port:
        raise ConfigError(T + "port", st.port, "TLS port %d is the SIP UDP/TCP port" % st.port)
    _contexts(app, st)


def apply(app, old, new):
    st = TlsSettings(new)
    app.tls_settings = st
    start(app)


def start(app):
    """Make the running listener match app.tls_settings (at commit, and when
    the transports are bound at boot)."""
    st = getattr(app, "tls_settings", None)
    tp = getattr(app, "sip_transports", None)
    if tp is None or st is None:
        return
    if st.certificate is None:
        if tp.tls_listeners:
            tp.disable_tls()
            app.log.info("SIP: TLS listener stopped")
        app.tls_client = None
        return
    server, client = _contexts(app, st)
    try:
        tp.enable_tls(st.port, server)
    except OSError as e:
        raise ConfigError(T + "port", st.port, "cannot listen on TLS port %d: %s" % (st.port, e))
    app.tls_client = client
    app.log.info("SIP: TLS on port %d with certificate %s%s" % (
        st.port, st.certificate, ", mutual TLS" if st.mutual else ""))


S.on_commit("tls", apply, check)
