"""Event subscriptions served by the local call server (RFC 6665 notifier
side): message-summary (RFC 3842), dialog (RFC 4235, busy lamp fields) and
presence (RFC 3863 PIDF, basic).  Built on the first new SUBSCRIBE by the
router's "events" module (firmware/voice/events_glue.py).

    ev = EventServer(app)
    ev.take(sreq)               a new SUBSCRIBE (out of dialog); refreshes and
                                unsubscribes go to their Notifier through the
                                dialog module
    ev.station_changed(name, call=None)   registration or call state of a
                                station changed: NOTIFY its dialog/presence watchers
    ev.watchers                 [Watch]: .watcher .resource .station .notifier

Order of checks for a new SUBSCRIBE (each answers and stops):
  1. not in control (a peer call server is): not ours, the next module
  2. an event package other than PACKAGES: 489 Bad Event with Allow-Events;
     a bad Expires 400; below MIN_EXPIRES 423 with Min-Expires
  3. the watcher, authenticated exactly as an INVITE caller
     (firmware/callserver/service.py): a station with caller-authentication
     registered-source from one of its registered contacts, else a 407
     digest challenge bound to the source; the credentials must be those of
     the station From names (wrong: counted as an access failure)
  4. the resource (Request-URI user: an extension, user ID or DID): no such
     station 404; message-summary only for the watcher's own station (403)
  5. bounds: MAX_PER_STATION subscriptions of one watcher station, and
     MAX_TOTAL in all (both 503 with Retry-After RETRY_AFTER_S); the agent's
     own MAX_EVENT_SUBSCRIPTIONS behind that (503 too)
  6. 200 and the first NOTIFY with the current state.
Expires is clamped to MAX_EXPIRES (absent: DEFAULT_EXPIRES per package is
not distinguished: MAX_EXPIRES).

BLF document (dialog-info+xml, state="full", version per subscription): one
<dialog> per call of the station: direction initiator (it called) or
recipient (it is called, also as a hunt group member being rung); state
trying (routing), early (ringing), confirmed (answered), terminated (in the
NOTIFY sent when the call ends); local identity the station, remote
identity the other party's number.
Presence: basic open while the station has a registered contact (an FXS
station while its port is ready), closed else; note "On the phone" while in
a call, "Available" or "Offline".
"""
from firmware.compat import const
from sip import digest
from sip.usage.subscription import Notifier

MAX_PER_STATION = const(8)      # subscriptions one watcher station may hold
MAX_TOTAL = const(128)          # subscriptions served in all
RETRY_AFTER_S = const(60)
MIN_EXPIRES = const(60)
MAX_EXPIRES = const(3600)
PACKAGES = ("message-summary", "dialog", "presence")
MWI_TYPE = "application/simple-message-summary"
DIALOG_TYPE = "application/dialog-info+xml"
PIDF_TYPE = "application/pidf+xml"


class Watch:
    """One served subscription: the notifier's owner."""
    __slots__ = ("server", "watcher", "station", "resource", "notifier", "version")

    def __init__(self, server, watcher, station, resource):
        self.server = server
        self.watcher = watcher        # the watcher station's name
        self.station = station        # the watched station (Station)
        self.resource = resource      # the watched station's name
        self.notifier = None
        self.version = 0

    def on_ended(self, n, reason):
        self.server._ended(self, reason)


class EventServer:
    def __init__(self, app):
        self.app = app
        self.cs = app.callserver
        self.ua = self.cs.ua
        self.watchers = []
        self._shown = {}          # call id -> station names whose watchers saw it
        self.max_total = MAX_TOTAL
        self.max_per_station = MAX_PER_STATION
        self.counters = {"subscribes": 0, "accepted": 0, "challenges": 0, "auth_failures": 0,
                         "bad_event": 0, "not_found": 0, "forbidden": 0, "station_limit": 0,
                         "total_limit": 0, "ended": 0}
        self.cs.b2b.on_change = self._call_changed
        self.cs.registrar.listen(self._registration_changed)
        from firmware.voice.events_glue import _mwi
        self.mwi = _mwi(app)
        self.mwi.listen(self._mwi_changed)

    # -- new SUBSCRIBEs
    def take(self, sreq):
        cs = self.cs
        if not cs.in_control:
            return False
        self.counters["subscribes"] += 1
        granted = Notifier.check(sreq, PACKAGES, MIN_EXPIRES, MAX_EXPIRES)
        if granted is None:
            if sreq.final_sent:
                self.counters["bad_event"] += 1
            return True
        st = self._watcher(sreq)
        if st is None:
            return True
        req = sreq.request
        res = cs.settings.station_for_aor(req.uri.user_plain or "") or \
            self._by_did(req.uri.user_plain or "")
        if res is None:
            self.counters["not_found"] += 1
            sreq.respond(404, "No Such Station")
            return True
        event = (req.get("event") or "").split(";")[0].strip().lower()
        if event == "message-summary" and res is not st:
            self.counters["forbidden"] += 1
            sreq.respond(403, "Forbidden (Not Your Mailbox)")
            return True
        mine = 0
        for w in self.watchers:
            if w.watcher == st.name:
                mine += 1
        if mine >= MAX_PER_STATION:
            self.counters["station_limit"] += 1
            sreq.respond(503, "Too Many Subscriptions For Station",
                         (("Retry-After", str(RETRY_AFTER_S)),))
            return True
        if len(self.watchers) >= MAX_TOTAL:
            self.counters["total_limit"] += 1
            sreq.respond(503, "Too Many Subscriptions", (("Retry-After", str(RETRY_AFTER_S)),))
            return True
        w = Watch(self, st.name, res, res.name)
        body, ctype = self._body(w, event, None)
        n = Notifier.accept(self.ua, sreq, w, cs.now(), granted, body, ctype,
                            MIN_EXPIRES, MAX_EXPIRES)
        if n is None:
            return True
        b = cs.registrar.binding_from(st.name, sreq.source.addr)
        if n.dialog is not None and b is not None and (b.nat or b.transport != "UDP"):
            n.dialog.flow = b.dest
            n.dialog.flow_transport = b.transport
        if granted > 0:
            w.notifier = n
            self.watchers.append(w)
            self.counters["accepted"] += 1
        return True

    def _by_did(self, number):
        for st in self.cs.settings.stations:
            if st.did and st.did == number:
                return st
        return None

    def _watcher(self, sreq):
        """The authenticated watcher station, or None once answered (407/400)."""
        cs = self.cs
        req = sreq.request
        src = sreq.source
        f = req.from_
        fuser = f.uri.user_plain if f.uri.scheme == "sip" else f.uri.user
        st = cs.settings.station_for_aor(fuser or "")
        if st is not None and st.trust_source and \
                cs.registrar.binding_from(st.name, src.addr) is not None:
            return st
        from firmware.callserver.registrar import nonce_bind
        now = cs.now()
        srv = cs.digest()
        bind = nonce_bind(src)
        res = srv.verify("SUBSCRIBE", req.get("proxy-authorization"), cs.lookup_ha1, now,
                         uri=str(req.uri), bind=bind)
        if res.outcome == digest.MALFORMED:
            sreq.respond(400, "Malformed Proxy-Authorization Header")
            return None
        if res.outcome == digest.OK and st is not None and res.username == st.user_id:
            return st
        if res.outcome in (digest.FAILED, digest.OK):
            self.counters["auth_failures"] += 1
            cs.security_failed(src, res.username, "subscribe: wrong credentials")
        else:
            self.counters["challenges"] += 1
        sreq.respond(407, None, [("Proxy-Authenticate", c) for c in srv.challenge(
            now, stale=res.outcome == digest.STALE, bind=bind)])
        return None

    # -- documents
    def _entity(self, st):
        return "sip:%s@%s" % (st.extension, self.app.sip_domain)

    def _body(self, w, event, ended):
        if event == "message-summary":
            return self.mwi.summary(w.resource), MWI_TYPE
        if event == "dialog":
            w.version += 1
            return dialog_info(self._entity(w.station), w.version,
                               self._dialogs(w.station, ended),
                               self.app.sip_domain), DIALOG_TYPE
        return pidf(self._entity(w.station), self._online(w.station),
                    self.cs.b2b.busy(w.station.name) > 0), PIDF_TYPE

    def _dialogs(self, st, ended):
        out = []
        for c in self.cs.b2b.calls:
            d = _dialog_of(c, st)
            if d is not None:
                out.append(d)
        if ended is not None and ended not in self.cs.b2b.calls:
            d = _dialog_of(ended, st)
            if d is not None:
                out.append((d[0], d[1], "terminated", d[3]))
        return out

    def _online(self, st):
        if getattr(st, "fxs_port", None) is not None:
            gw = getattr(self.app, "gateway", None)
            return gw is not None and gw.port_ready("fxs", st.fxs_port)
        return bool(self.cs.registrar.contacts(st.name))

    # -- changes
    def _notify(self, names, event_kinds, ended=None):
        now = self.cs.now()
        for w in list(self.watchers):
            n = w.notifier
            if w.resource in names and n.event in event_kinds:
                body, ctype = self._body(w, n.event, ended)
                n.notify(body, ctype, now)

    def _call_changed(self, call):
        """Notify the watchers of every station in the call now or before (a
        hunt group member no longer rung loses the dialog from its document)."""
        names = [st.name for st in (call.caller, call.callee) if st is not None]
        for leg in call.legs:
            u = getattr(leg, "user", None)
            if u is not None and u.name not in names:
                names.append(u.name)
        before = self._shown.pop(call.id, ())
        for n in before:
            if n not in names:
                names.append(n)
        if call.state != "ended" and names:
            self._shown[call.id] = names      # entries leave with their call
        if names:
            self._notify(names, ("dialog", "presence"), call if call.state == "ended" else None)

    def _registration_changed(self, name, binding):
        self._notify((name,), ("presence",))

    def _mwi_changed(self, name, box):
        self._notify((name,), ("message-summary",))

    def _ended(self, w, reason):
        if w in self.watchers:
            self.watchers.remove(w)
            self.counters["ended"] += 1

    def rows(self):
        out = [("subscriptions", "%d (limit %d, %d per station)" % (
            len(self.watchers), MAX_TOTAL, MAX_PER_STATION))]
        for k in sorted(self.counters):
            out.append((k.replace("_", " "), self.counters[k]))
        return out


def _dialog_of(call, st):
    """(id, direction, state, remote number) of call as station st sees it,
    or None.  A hunt group member rung for the call is a recipient too."""
    if call.callee is st:
        direction = "recipient"
    elif call.caller is st:
        direction = "initiator"
    elif call.callee is None and call.state != "ended" and _rung(call, st):
        direction = "recipient"
    else:
        return None
    s = call.state
    if s == "connected":
        state = "confirmed"
    elif s == "ringing":
        state = "early"
    elif s == "ended":
        state = "terminated"
    elif direction == "recipient":
        state = "early"
    else:
        state = "trying"
    remote = call.caller_num if direction == "recipient" else call.number
    ids = _leg_ids(call, st) if state == "early" and direction == "recipient" else None
    return ("call-%d" % call.id, direction, state, remote or "anonymous", ids)


def _leg_ids(call, st):
    """(call-id, local-tag, remote-tag) of the early SIP dialog ringing st,
    as that phone sees it: what a busy-lamp key puts in the Replaces of its
    pickup INVITE (firmware/callserver/pickup.py); None for an analog port
    (no dialog: such phones dial the directed-pickup code instead)."""
    for leg in call.legs:
        if (getattr(leg, "user", None) or call.callee) is not st:
            continue
        d = getattr(leg, "dialog", None)
        if d is not None and d.remote_tag:
            return (leg.call_id, d.remote_tag, d.local_tag)
    return None


def _rung(call, st):
    for leg in call.legs:
        if getattr(leg, "user", None) is st:
            return True
    return False


def _xml(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        '"', "&quot;")


def dialog_info(entity, version, dialogs, domain):
    """The RFC 4235 document: each dialog with its state, the station as the
    local identity and the other party's number as the remote identity
    (what desk phones show on a ringing busy-lamp key)."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\r\n'
             '<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="%d" '
             'state="full" entity="%s">\r\n' % (version, _xml(entity))]
    for d in dialogs:
        did, direction, state, remote = d[:4]
        ids = d[4] if len(d) > 4 else None
        attrs = ""
        if ids is not None:
            attrs = ' call-id="%s" local-tag="%s" remote-tag="%s"' % (
                _xml(ids[0]), _xml(ids[1]), _xml(ids[2]))
        parts.append('<dialog id="%s"%s direction="%s"><state>%s</state>'
                     '<local><identity>%s</identity></local>'
                     '<remote><identity>sip:%s@%s</identity></remote></dialog>\r\n' % (
                         did, attrs, direction, state, _xml(entity), _xml(remote), _xml(domain)))
    parts.append("</dialog-info>\r\n")
    return "".join(parts).encode()


def pidf(entity, online, on_phone):
    note = "On the phone" if online and on_phone else "Available" if online else "Offline"
    return ('<?xml version="1.0" encoding="UTF-8"?>\r\n'
            '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="%s">\r\n'
            '<tuple id="t1"><status><basic>%s</basic></status><note>%s</note></tuple>\r\n'
            '</presence>\r\n' % (entity, "open" if online else "closed", note)).encode()
