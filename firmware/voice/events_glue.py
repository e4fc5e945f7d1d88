"""The run-time side of firmware/voice/events_config.py, loaded once a call
server runs or MWI is configured (or a console command needs it): the
router's events module (it builds firmware/callserver/events.py on the
first SUBSCRIBE) and the MWI service (firmware/voice/mwi.py)."""
from firmware.sipstack.router import EVENTS


def _mwi(app):
    """The MWI service, built on first use (console or configuration)."""
    m = getattr(app, "mwi", None)
    if m is None:
        from firmware.voice.mwi import MwiService
        m = app.mwi = MwiService(app)
        cs = getattr(app, "callserver", None)
        if cs is not None:
            cs.registrar.listen(m.registered)
        if getattr(app, "mwi_started", False):
            m.start()
    return m


def command(app, name, args):
    from firmware.voice import mwi
    if name == "show_subscriptions":
        return mwi.show_subscriptions(app, _events(app), getattr(app, "mwi", None))
    return getattr(mwi, name)(app, _mwi(app), args)


class EventsModule:
    """The router's entry for new SUBSCRIBEs: the real server is built on the
    first one (firmware/callserver/events.py)."""
    name = "events"
    priority = EVENTS
    methods = ("SUBSCRIBE",)

    def __init__(self, app):
        self.app = app
        self.impl = None

    def server(self):
        if self.impl is None:
            from firmware.callserver.events import EventServer
            self.impl = EventServer(self.app)
        return self.impl

    def take(self, sreq):
        return self.server().take(sreq)

    def rows(self):
        if self.impl is None:
            return [("loaded", "no (no SUBSCRIBE yet)")]
        return self.impl.rows()


def _events(app):
    sip = getattr(app, "sip", None)
    m = sip.router.get("events") if sip is not None else None
    return m.impl if m is not None else None


def _peer_notify(app, sreq, now):
    """An out-of-dialog NOTIFY: unsolicited message-summary for an FXS line."""
    from firmware.voice.mwi import peer_notify
    return peer_notify(app, _mwi, sreq)


def install(app):
    sip = getattr(app, "sip", None)
    if sip is None:
        return
    if getattr(app, "gateway", None) is not None:
        from firmware.sipstack.dialogs import user_agent
        ua = user_agent(app)
        if ua.notify_hook is None:
            ua.notify_hook = lambda sreq, now, app=app: _peer_notify(app, sreq, now)
    if getattr(app, "callserver", None) is not None and sip.router.get("events") is None:
        sip.router.add(EventsModule(app))
    s = getattr(app, "mwi_settings", None)
    if s is not None and s.wanted():
        _mwi(app)
    m = getattr(app, "mwi", None)
    cs = getattr(app, "callserver", None)
    if m is not None and cs is not None:
        cs.registrar.listen(m.registered)    # unsolicited MWI to a new contact
