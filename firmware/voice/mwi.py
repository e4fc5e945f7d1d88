"""Message waiting: the one state per mailbox, and where it goes.

    m = MwiService(app)          # firmware/voice/events_config.py builds it on first use
    m.set(station, new, old, urgent_new=0, urgent_old=0, source="console") -> Mailbox
    m.box(station) -> Mailbox or None      .new .old .urgent .source .updated
    m.listen(fn)                 fn(station_name, mailbox) after each change
    m.configure(settings)        MwiSettings (unsolicited stations, voicemail server)
    m.start()

State: one Mailbox per station, at most MAX_MAILBOXES (a new station beyond:
MwiError "mailbox table full", counted); a mailbox of a station no longer
configured is dropped at the next commit.  The counts are clamped to
MAX_COUNT (RFC 3842 gives no limit; a phone shows a few digits).

Where it goes after each change:
  - SIP phones subscribed to message-summary (firmware/callserver/events.py)
    get a NOTIFY (RFC 3842 body, message_summary());
  - stations with `mwi-notify unsolicited`: an out-of-dialog NOTIFY to each
    registered contact (and to a contact when it registers), no subscription;
  - FXS stations: the gateway's port agent lights the lamp (VMWI through the
    SLIC, when the line is idle on-hook) and plays the stutter dial tone.

Where it comes from: the console (`request voice mwi station ...`), the
peer call server's unsolicited message-summary NOTIFY to an FXS line it
registered (peer_notify: only from the peer's host, 403 else; the line by
its `;line=fxsN` Contact or the station's extension, 404 else; a body
without a summary 400), and the central voicemail server (`voicemail server`): one message-summary
Subscriber (sip/usage/subscription.py) per configured mailbox, renewed
before it expires, retried RETRY_MS after a failure; its NOTIFYs are
accepted only from the server's address (403 else).  While the appliance
survives on its own (a peer is configured and control is LOCAL) the
subscriptions are stopped, the last known state is kept and shown as such;
they start again when the peer is back in control.
"""
from firmware.compat import const

MAX_MAILBOXES = const(256)
MAX_COUNT = const(9999)
RETRY_MS = const(60000)            # a failed voicemail subscription is tried again after this
MWI_TYPE = "application/simple-message-summary"


class MwiError(Exception):
    pass


class Mailbox:
    __slots__ = ("new", "old", "urgent_new", "urgent_old", "source", "updated")

    def __init__(self):
        self.new = 0
        self.old = 0
        self.urgent_new = 0
        self.urgent_old = 0
        self.source = "-"
        self.updated = None

    @property
    def waiting(self):
        return self.new > 0


def message_summary(box, account):
    """The RFC 3842 body for a mailbox (None: nothing known, no messages)."""
    new = box.new if box is not None else 0
    old = box.old if box is not None else 0
    un = box.urgent_new if box is not None else 0
    uo = box.urgent_old if box is not None else 0
    return ("Messages-Waiting: %s\r\nMessage-Account: %s\r\nVoice-Message: %d/%d (%d/%d)\r\n"
            % ("yes" if new else "no", account, new, old, un, uo)).encode()


def parse_summary(body):
    """(new, old, urgent_new, urgent_old) of an RFC 3842 body; None when it
    has neither Messages-Waiting nor a Voice-Message line."""
    if not body:
        return None
    try:
        text = bytes(body).decode()
    except (UnicodeError, ValueError):
        return None
    waiting = None
    counts = None
    for line in text.split("\n"):
        i = line.find(":")
        if i < 0:
            continue
        name = line[:i].strip().lower()
        value = line[i + 1:].strip()
        if name == "messages-waiting":
            waiting = value.lower() == "yes"
        elif name == "voice-message":
            counts = _counts(value)
    if counts is None:
        if waiting is None:
            return None
        return (1, 0, 0, 0) if waiting else (0, 0, 0, 0)
    return counts


def _counts(value):
    # "2/8 (0/2)" or "2/8"
    main = value
    urg = None
    i = value.find("(")
    if i >= 0:
        main = value[:i]
        urg = value[i + 1:value.find(")", i) if value.find(")", i) > 0 else len(value)]
    a = _pair(main)
    if a is None:
        return None
    b = _pair(urg) if urg is not None else (0, 0)
    if b is None:
        b = (0, 0)
    return (a[0], a[1], b[0], b[1])


def _pair(text):
    p = text.strip().split("/")
    if len(p) != 2 or not p[0].strip().isdigit() or not p[1].strip().isdigit():
        return None
    return (min(int(p[0]), MAX_COUNT), min(int(p[1]), MAX_COUNT))


class _Upstream:
    """One mailbox's subscription to the central voicemail server (the owner
    of its sip.usage Subscriber)."""

    def __init__(self, svc, station, mailbox):
        self.svc = svc
        self.station = station
        self.mailbox = mailbox
        self.sub = None
        self.notifies = 0

    def on_notify(self, sub, state, body, ctype):
        c = parse_summary(body)
        if c is not None:
            self.notifies += 1
            self.svc.set(self.station, c[0], c[1], c[2], c[3], source="voicemail")

    def on_state(self, sub):
        if sub.state == "failed":
            self.svc.counters["voicemail_failures"] += 1


class MwiService:
    def __init__(self, app):
        self.app = app
        self.boxes = {}          # station name -> Mailbox
        self.listeners = []
        self.settings = None
        self.upstream = {}       # station name -> _Upstream
        self.started = False
        self.paused = False      # survival: the voicemail subscriptions are stopped
        self.counters = {"changes": 0, "unsolicited_sent": 0, "unsolicited_failed": 0,
                         "table_full": 0, "voicemail_failures": 0, "foreign_notifies": 0}
        self.listen(self._unsolicited)
        self.listen(self._analog)
        ctl = getattr(app, "control", None)
        if ctl is not None:
            ctl.subscribe(self._control)
        self.configure(getattr(app, "mwi_settings", None))

    # -- the state
    def box(self, name):
        return self.boxes.get(name)

    def listen(self, fn):
        if fn not in self.listeners:
            self.listeners.append(fn)

    def set(self, name, new, old, urgent_new=0, urgent_old=0, source="console"):
        b = self.boxes.get(name)
        if b is None:
            if len(self.boxes) >= MAX_MAILBOXES:
                self.counters["table_full"] += 1
                raise MwiError("mailbox table full (%d mailboxes)" % MAX_MAILBOXES)
            b = self.boxes[name] = Mailbox()
        new = min(max(0, new), MAX_COUNT)
        old = min(max(0, old), MAX_COUNT)
        urgent_new = min(max(0, urgent_new), new)
        urgent_old = min(max(0, urgent_old), old)
        changed = (b.new, b.old, b.urgent_new, b.urgent_old) != (new, old, urgent_new, urgent_old)
        b.new, b.old, b.urgent_new, b.urgent_old = new, old, urgent_new, urgent_old
        b.source = source
        b.updated = self.app.clock.now()
        if changed:
            self.counters["changes"] += 1
            for fn in list(self.listeners):
                try:
                    fn(name, b)
                except Exception as e:
                    self.app.log.write("error", "MWI listener: %s: %s" % (type(e).__name__, e))
        return b

    def mailbox_of(self, name):
        s = self.settings
        box = s.boxes.get(name) if s is not None else None
        return box or name

    def account(self, name):
        return "sip:%s@%s" % (self.mailbox_of(name), self.app.sip_domain)

    def summary(self, name):
        return message_summary(self.boxes.get(name), self.account(name))

    # -- configuration
    def configure(self, s):
        self.settings = s
        if s is None:
            return
        for name in list(self.boxes):
            if name not in s.boxes:
                del self.boxes[name]
        if self.started:
            self._sync_upstream()

    def start(self):
        self.started = True
        self._sync_upstream()

    # -- unsolicited NOTIFY to registered contacts
    def _unsolicited(self, name, box):
        s = self.settings
        if s is None or name not in s.unsolicited:
            return
        cs = getattr(self.app, "callserver", None)
        if cs is None:
            return
        for b in cs.registrar.contacts(name):
            self.notify_contact(cs, name, b)

    def registered(self, name, binding):
        """The registrar added a contact of station name."""
        s = self.settings
        if binding is not None and s is not None and name in s.unsolicited:
            cs = getattr(self.app, "callserver", None)
            if cs is not None:
                self.notify_contact(cs, name, binding)

    def notify_contact(self, cs, name, b):
        ua = cs.ua
        ext = name
        for st in cs.settings.stations:
            if st.name == name:
                ext = st.extension
        domain = self.app.sip_domain
        req = ua.new_request("NOTIFY", b.contact, self.account(name),
                             "sip:%s@%s" % (ext, domain), contact_user="mwi",
                             headers=(("Event", "message-summary"),
                                      ("Subscription-State", "active")),
                             body=self.summary(name), content_type=MWI_TYPE,
                             transport=b.transport)
        self.counters["unsolicited_sent"] += 1

        def done(resp, now, self=self):
            if resp.status >= 300:
                self.counters["unsolicited_failed"] += 1

        ua.send(req, b.dest, done, self.app.clock.now(), b.transport)

    # -- FXS ports: the lamp and the stutter dial tone
    def _analog(self, name, box):
        gw = getattr(self.app, "gateway", None)
        if gw is None:
            return
        for agent in gw.fxs.values():
            st = getattr(agent, "station", None)
            if st is not None and st.name == name and hasattr(agent, "set_mwi"):
                agent.set_mwi(box.waiting)

    def waiting(self, name):
        b = self.boxes.get(name)
        return b is not None and b.waiting

    # -- the central voicemail server
    def _wanted_upstream(self):
        s = self.settings
        if s is None or not s.server or self.paused:
            return {}
        return s.boxes

    def _sync_upstream(self):
        want = self._wanted_upstream()
        now = self.app.clock.now()
        for name in list(self.upstream):
            u = self.upstream[name]
            if want.get(name) != u.mailbox or u.sub.dest != self._dest():
                u.sub.stop(now)
                del self.upstream[name]
        if not want:
            return
        from firmware.sipstack.dialogs import user_agent
        from sip.usage.subscription import Subscriber
        ua = user_agent(self.app)
        s = self.settings
        for name in sorted(want):
            if name in self.upstream:
                continue
            box = want[name]
            u = _Upstream(self, name, box)
            target = "sip:%s@%s:%d" % (box, s.server, s.port)
            sub = Subscriber(ua, "message-summary", target,
                             "sip:%s@%s" % (box, self.app.sip_domain), self._dest(), u,
                             expires=s.expires, accept=MWI_TYPE, auth=self._auth(name),
                             retry_ms=RETRY_MS)
            sub.gate = self._gate
            u.sub = sub
            self.upstream[name] = u
            sub.start(now)

    def _dest(self):
        s = self.settings
        return (s.server, s.port)

    def _auth(self, name):
        gs = getattr(self.app, "gateway_settings", None)
        if gs is None:
            return None
        for st in gs.stations:
            if st.name == name and st.password is not None:
                return (st.user_id, st.password)
        return None

    def _gate(self, sreq):
        """Only the voicemail server may send a mailbox's NOTIFYs."""
        s = self.settings
        if s is not None and s.server and sreq.source.addr[0] == s.server:
            return None
        self.counters["foreign_notifies"] += 1
        return (403, "Forbidden (Not The Voicemail Server)")

    def _control(self, ctl, old):
        gs = getattr(self.app, "gateway_settings", None)
        survival = ctl.local and gs is not None and gs.peer is not None
        if survival != self.paused:
            self.paused = survival
            if self.started:
                self._sync_upstream()


def peer_notify(app, service, sreq):
    """An out-of-dialog NOTIFY reached the appliance (sip.usage agent's
    notify_hook): message-summary from the peer call server for an FXS
    station.  False (not ours: 481 as before) for other event packages."""
    req = sreq.request
    if (req.get("event") or "").split(";")[0].strip().lower() != "message-summary":
        return False
    gw = getattr(app, "gateway", None)
    if gw is None or not gw.from_call_server(sreq.source):
        sreq.respond(403, "Forbidden (Not The Call Server)")
        return True
    st = None
    line = req.uri.params.get("line")
    user = req.uri.user_plain if req.uri.scheme == "sip" else req.uri.user
    for agent in gw.fxs.values():
        s = getattr(agent, "station", None)
        if s is None:
            continue
        if (line and line == "fxs%d" % agent.port) or \
                (not line and user in (s.extension, s.user_id)):
            st = s
            break
    if st is None:
        sreq.respond(404, "No Such Line")
        return True
    c = parse_summary(req.body)
    if c is None:
        sreq.respond(400, "Bad Message Summary")
        return True
    sreq.respond(200)
    service(app).set(st.name, c[0], c[1], c[2], c[3], source="peer")
    return True


# -- console
def _int_arg(args, i, what):
    if i >= len(args) or not args[i].isdigit():
        raise MwiError("%s needs a number" % what)
    return int(args[i])


def request_mwi(app, m, args):
    """request voice mwi station NAME new N old M [urgent U]"""
    if len(args) < 2 or args[0] != "station":
        return "error: usage: request voice mwi station NAME new N old M [urgent U]"
    name = args[1]
    s = m.settings
    if s is None or name not in s.boxes:
        return "error: no station %s" % name
    vals = {"new": None, "old": 0, "urgent": 0}
    i = 2
    try:
        while i < len(args):
            k = args[i]
            if k not in vals:
                raise MwiError("unknown argument %s (new, old, urgent)" % k)
            vals[k] = _int_arg(args, i + 1, k)
            i += 2
        if vals["new"] is None:
            raise MwiError("new N is required")
        if vals["new"] > MAX_COUNT or vals["old"] > MAX_COUNT:
            raise MwiError("counts go up to %d" % MAX_COUNT)
        if vals["urgent"] > vals["new"]:
            raise MwiError("urgent %d is more than new %d" % (vals["urgent"], vals["new"]))
        b = m.set(name, vals["new"], vals["old"], vals["urgent"], 0, "console")
    except MwiError as e:
        return "error: %s" % e
    return "station %s: %d new, %d old (%d urgent), messages %s" % (
        name, b.new, b.old, b.urgent_new, "waiting" if b.waiting else "none")


def show_mwi(app, m, args):
    from firmware.textfmt import table
    s = m.settings
    names = sorted(s.boxes) if s is not None else sorted(m.boxes)
    head = "Mailboxes: %d known (limit %d)" % (len(m.boxes), MAX_MAILBOXES)
    if s is not None and s.server:
        head += "; voicemail server %s:%d%s" % (
            s.server, s.port, " (survival mode: last known state kept)" if m.paused else "")
    rows = [("Station", "Mailbox", "New", "Old", "Urgent", "Waiting", "Source", "Notify")]
    for n in names:
        b = m.boxes.get(n)
        u = m.upstream.get(n)
        src = b.source if b is not None else "-"
        if m.paused and b is not None and b.source == "voicemail":
            src = "voicemail (last known)"
        elif u is not None and u.sub.state != "active":
            src += " [sub %s]" % u.sub.state
        rows.append((n, m.mailbox_of(n), str(b.new if b else 0), str(b.old if b else 0),
                     str(b.urgent_new if b else 0), "yes" if b is not None and b.waiting else "no",
                     src, "unsolicited" if s is not None and n in s.unsolicited else "subscribe"))
    return head + "\n" + table(rows)


def show_subscriptions(app, ev, m):
    """Every event subscription: served (phones watching) and our own."""
    from firmware.textfmt import table
    now = app.clock.now()
    rows = [("Watcher", "Resource", "Event", "State", "Expires")]
    if ev is not None:
        for w in ev.watchers:
            n = w.notifier
            left = "-" if n.expires_at is None else "%ds" % max(0, (n.expires_at - now) // 1000)
            rows.append((w.watcher, "%s (%s)" % (w.station.extension, w.resource), n.event,
                         n.state, left))
    if m is not None:
        for name in sorted(m.upstream):
            sub = m.upstream[name].sub
            rows.append(("(appliance) %s" % name, sub.target, sub.event, sub.state,
                         "%ds" % sub.granted if sub.granted is not None else "-"))
    head = "Subscriptions: %d" % (len(rows) - 1)
    if ev is not None:
        head += " (served %d, limit %d, %d per station)" % (
            len(ev.watchers), ev.max_total, ev.max_per_station)
    if len(rows) == 1:
        return head
    return head + "\n" + table(rows)
