"""The one router: which module handles a request, in one ordered table.

As PJSIP's module priorities: every module has a unique priority (lower runs
first) and names the methods it may take.  The SIP core validates a new
request once, then offers it to each module of that method in order; the
first whose take(sreq) returns True owns it (answered, or kept to answer
later).  A module that returns False leaves the request to the next one.
Nothing else decides who handles a request.

The table of a full appliance (`show sip modules` lists it with counters):

    10 security        screen() before any transaction: allow list,
                       blocked sources, rate limit
    20 dialogs         in-dialog requests (BYE, re-INVITE, INFO, NOTIFY,
                       REFER, UPDATE, ACK of 2xx) to their session; INVITE
                       with Replaces; the session bound (503)
    30 gateway         INVITEs for the analog ports (;line= contacts), and
                       every new INVITE while a peer is in control
    40 registrar       REGISTER to the local call server
    42 events          new SUBSCRIBEs to the local call server: message-summary,
                       dialog (BLF), presence (firmware/voice/events_config.py)
    45 call-server     new INVITEs while the local call server is in control
    50 outbound-proxy  while a peer is in control: the branch SIP phones'
                       REGISTERs and calls, relayed to the peer, and the
                       peer's requests to them (firmware/proxy/outbound.py;
                       built with the call server, standby without a peer)
    90 built-in        OPTIONS 200; until a service takes them: REGISTER 401,
                       INVITE 480, BYE 481

A method that no module names gets 405 (501 for an unknown method) with
Allow listing the methods of the table.  Client responses never come
through the router: a response goes to the owner of its client transaction.

A module is any object with:
    name, priority, methods (tuple of methods; () for screen-only modules)
    take(sreq) -> bool
and optionally:
    screen(msg, src) -> None | "drop" | (status, reason)   (security)
    stray_response(resp, src) -> bool    a response without a transaction
                                         (e.g. a 2xx retransmission to re-ACK)
    rows() -> [(name, value)]            counters for show sip modules
"""
from firmware.compat import const

MAX_MODULES = const(16)

SECURITY = const(10)
DIALOGS = const(20)
GATEWAY = const(30)
REGISTRAR = const(40)
EVENTS = const(42)
CALL_SERVER = const(45)
OUTBOUND_PROXY = const(50)
BUILT_IN = const(90)


class RouterError(Exception):
    pass


class Module:
    """A convenience base: a named entry of the table around a take function."""

    def __init__(self, name, priority, methods, take=None, screen=None):
        self.name = name
        self.priority = priority
        self.methods = methods
        if take is not None:
            self.take = take
        if screen is not None:
            self.screen = screen

    def take(self, sreq):
        return False


class Router:
    def __init__(self):
        self.modules = []
        self.taken = {}       # module name -> requests it took
        self.declined = {}    # module name -> requests offered and left to the next
        self._screens = []
        self._strays = []

    def add(self, module):
        for m in self.modules:
            if m.name == module.name or m.priority == module.priority:
                raise RouterError("module %s (priority %d) collides with %s (priority %d)" % (
                    module.name, module.priority, m.name, m.priority))
        if len(self.modules) >= MAX_MODULES:
            raise RouterError("more than %d SIP modules" % MAX_MODULES)
        i = 0
        while i < len(self.modules) and self.modules[i].priority < module.priority:
            i += 1
        self.modules.insert(i, module)
        self.taken.setdefault(module.name, 0)
        self.declined.setdefault(module.name, 0)
        self._index()
        return module

    def remove(self, name):
        self.modules = [m for m in self.modules if m.name != name]
        self._index()

    def get(self, name):
        for m in self.modules:
            if m.name == name:
                return m
        return None

    def _index(self):
        self._screens = [m for m in self.modules if getattr(m, "screen", None) is not None]
        self._strays = [m for m in self.modules
                        if getattr(m, "stray_response", None) is not None]

    def methods(self):
        out = []
        for m in self.modules:
            for meth in m.methods:
                if meth not in out:
                    out.append(meth)
        return out

    def handles(self, method):
        for m in self.modules:
            if method in m.methods:
                return True
        return False

    def screen(self, msg, src):
        for m in self._screens:
            verdict = m.screen(msg, src)
            if verdict is not None:
                return verdict
        return None

    def route(self, sreq):
        """The module that took sreq, or None when every module left it."""
        method = sreq.method
        for m in self.modules:
            if method in m.methods:
                if m.take(sreq):
                    self.taken[m.name] += 1
                    return m
                self.declined[m.name] += 1
        return None

    def stray_response(self, resp, src):
        for m in self._strays:
            if m.stray_response(resp, src):
                return True
        return False

    def show(self):
        lines = ["SIP modules (in order):",
                 "  %-4s %-16s %-8s %-8s %s" % ("Prio", "Module", "Taken", "Passed", "Methods")]
        for m in self.modules:
            lines.append("  %-4d %-16s %-8d %-8d %s" % (
                m.priority, m.name, self.taken[m.name], self.declined[m.name],
                " ".join(m.methods) if m.methods else "(screens every request)"))
            rows = getattr(m, "rows", None)
            if rows is not None:
                for name, value in rows():
                    lines.append("       %-30s %s" % (name, value))
        return "\n".join(lines)
