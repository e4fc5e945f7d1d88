"""The appliance's SIP identity, owned in one place: the address it
advertises (Via sent-by, Contact, SDP's c= line), the port it listens on and
the domain it serves.  Every module reads it here when it builds a message;
none keeps a copy, so a live commit of `sip port` or `sip domain` reaches
every new request at once.

    ident = SipIdentity(bound_host, port, domain)
    ident.host / ident.port / ident.domain
    ident.hostport()                  "host:port" ([v6]:port)
    ident.contact(user, params="")    "<sip:user@host:port;params>"
    ident.is_own(addr)                the appliance's own socket (what the
                                      analog gateway and the call server send from)
    ident.subscribe(fn)               fn(ident) after the port or domain changed
    ident.moved(port=None, domain=None)   the owner of the sockets calls it

The advertised host is the bound host, or 127.0.0.1 for a wildcard bind
(there is no interface address lookup yet).
"""

MAX_IDENTITY_SUBSCRIBERS = 8     # the gateway, the call server, the media


def advertised(bound_host):
    if bound_host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return bound_host


class SipIdentity:
    def __init__(self, bound_host, port, domain):
        self.bound_host = bound_host
        self.host = advertised(bound_host)
        self.port = port
        self.domain = domain.lower()
        self._subscribers = []

    def hostport(self):
        h = self.host
        if ":" in h:
            h = "[%s]" % h
        return "%s:%d" % (h, self.port)

    def contact(self, user, params=""):
        return "<sip:%s@%s%s>" % (user, self.hostport(), params)

    def is_own(self, addr):
        return addr[1] == self.port and addr[0] == self.host

    def subscribe(self, fn):
        if fn in self._subscribers:
            return
        if len(self._subscribers) >= MAX_IDENTITY_SUBSCRIBERS:
            raise ValueError("more than %d SIP identity subscribers" % MAX_IDENTITY_SUBSCRIBERS)
        self._subscribers.append(fn)

    def moved(self, port=None, domain=None):
        changed = False
        if port is not None and port != self.port:
            self.port = port
            changed = True
        if domain is not None and domain.lower() != self.domain:
            self.domain = domain.lower()
            changed = True
        if changed:
            for fn in self._subscribers:
                fn(self)
        return changed

    def __repr__(self):
        return "<SipIdentity %s %s>" % (self.hostport(), self.domain)
