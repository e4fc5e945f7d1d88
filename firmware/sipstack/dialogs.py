"""The router's dialog module: the appliance's one user agent of dialog
usages (sip/usage/agent.py), shared by the analog gateway and the call
server, fed by the SIP core.

    ua = user_agent(app)      # the sip.usage Agent, built with its module on
                              # first use (the gateway and the call server
                              # build it; an appliance with neither has none)

The module takes the requests of sip.usage.agent.METHODS (in-dialog
requests, ACKs of 2xx, INVITE with Replaces; a new INVITE goes on to the
next module), re-ACKs 2xx retransmissions that have no transaction, and
gives the agent the core's timer table and its flush as the wake hook.  An
INVITE with Replaces is authorised before the agent looks up any dialog
(_replaces_gate: the peer call server, the appliance, or a party of the
replaced call of the local call server; 403 and an access-log record else).
"""
from firmware.sipstack.router import DIALOGS
from sip.usage.agent import Agent, METHODS


class DialogModule:
    name = "dialogs"
    priority = DIALOGS
    methods = METHODS

    def __init__(self, app):
        core = app.sip
        self.clock = app.clock
        self.agent = Agent(core.layer, core.timers, app.rng, app.identity,
                           core.server_header, app.log.write)
        self.agent.wake = core.kick
        self.agent.replaces_gate = self._replaces_gate
        self.app = app
        core.router.add(self)
        if "replaces" not in core.supported:
            core.supported.append("replaces")

    def _replaces_gate(self, sreq):
        """Who may take over a call with Replaces: the peer call server (the
        gateway's dialogs), the appliance itself, and, for the local call
        server's calls, a station that is a party of the replaced dialog's
        call or may pick it up (firmware/callserver/pickup.py authorise;
        the station is known by its From and a registered contact's source
        address).  Anyone else: 403 and an access-log record."""
        gw = getattr(self.app, "gateway", None)
        if gw is not None and gw.from_call_server(sreq.source):
            return None
        own = getattr(self.app, "own_address", None)
        if own is not None and own(sreq.source.addr):
            return None
        verdict = (403, "Forbidden (Replaces Not Authorised)")
        cs = getattr(self.app, "callserver", None)
        if cs is not None and cs.in_control:
            verdict = cs.b2b.features("pickup").authorise(sreq, cs.station_from(sreq))
            if verdict is None or verdict is True:
                return verdict
        sec = getattr(self.app, "security", None)
        if sec is not None:
            f = sreq.request.from_
            a = sreq.source.addr
            sec.record(a[0], a[1], (f.uri.user if f is not None else None) or "-",
                       "INVITE with Replaces not from the call server", self.clock.now())
        return verdict

    def take(self, sreq):
        return self.agent.receive(sreq, self.clock.now())

    def stray_response(self, resp, src):
        return self.agent.stray_response(resp, src)

    def rows(self):
        a = self.agent
        return [("dialogs", "%d (peak %d)" % (len(a.dialogs), a.dialogs.peak)),
                ("sessions", len(a.sessions)),
                ("refer subscriptions", len(a.subscriptions))]


def user_agent(app):
    m = app.sip.router.get("dialogs")
    if m is None:
        m = DialogModule(app)
    return m.agent
