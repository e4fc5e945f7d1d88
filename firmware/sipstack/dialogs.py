"""The router's dialog module: the appliance's one user agent of dialog
usages (sip/usage/agent.py), shared by the analog gateway and the call
server, fed by the SIP core.

    ua = user_agent(app)      # the sip.usage Agent, built with its module on
                              # first use (the gateway and the call server
                              # build it; an appliance with neither has none)

The module takes the requests of sip.usage.agent.METHODS (in-dialog
requests, ACKs of 2xx, INVITE with Replaces; a new INVITE goes on to the
next module), re-ACKs 2xx retransmissions that have no transaction, and
gives the agent the core's timer table and its flush as the wake hook.
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
        core.router.add(self)
        if "replaces" not in core.supported:
            core.supported.append("replaces")

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
