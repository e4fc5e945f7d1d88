"""The media gateway: FXS ports as SIP stations, FXO ports as trunks.

    gw = GatewayService(app)      # after hardware and SIP (app.boot); reads
                                  # app.gateway_settings (firmware/voice/config.py)
    gw.start()                    # listeners, registrations, the 20 ms media task
    gw.configure(settings)        # a commit changed the configuration
    gw.call_server                # CallServerRef of the call server in control
                                  # (app.control, firmware/voice/control.py, decides)
    gw.port_status(kind, port) -> (call state, last caller ID text)  for show ports

Calls between the ports and the call server in control (gw.place_call,
gw.route_call): while this appliance's own call server is in control, a
port and the B2BUA are joined in process (firmware/voice/handover.py): the
FXS stations do not register and nothing goes over the loopback socket.
While a peer call server is in control, the FXS stations register to it
(Contact ;line=fxsN) and calls are SIP: an INVITE to the appliance (gw.take,
the router's gateway module) whose Request-URI user is a station's
extension on an FXS port rings that port (ring / call waiting / 486); one
starting with a trunk's prefix seizes that FXO trunk (prefix stripped,
replace-prefix prepended; the first idle trunk with that prefix); else 404.
Outbound PSTN calls reach the FXO port through the call server in control
(documented choice: no shortcut, so the call server sees and accounts every
call).  Only the peer call server may send calls here: an INVITE from any
other source gets 403 (counted "refused_source", access-logged).

Modules: fxs.py, fxo.py and agent.py here; the dialog usages in sip/usage,
the call leg (session + RTP), RTP and mixer in firmware/media, the settings
and dial plan in firmware/voice.
One task: "gateway-media" wakes every 20 ms while a call has media and
moves one frame per direction per leg; it sleeps on an Event otherwise.
"""
from firmware.compat import const
from firmware.sched import RESTART, Event, TimeoutError
from firmware.voice.dialplan import DialPlan
from firmware.voice.routing import trunk_routes
from firmware.media.rtp import MediaManager
from firmware.media.mixer import Mixer
from firmware.sipstack.dialogs import user_agent
from sip.usage.registration import Registration
from firmware.sipstack.router import Module, GATEWAY
from firmware.gateway.fxs import FxsAgent
from firmware.gateway.fxo import FxoAgent
from firmware.cdr import sources as cdr

FRAME_MS = const(20)
# a change of the call server in control (failover, failback) starts the FXS
# registrations again spread over this window, never all in one burst
REREGISTER_SPREAD_MS = const(4000)

# How the peer call server addresses the ports: the FXS stations register a
# Contact with ;line=fxsN (the peer's INVITE comes back to it), the FXO
# trunks place their calls from trunk-<name>.  Produced and read only here.
LINE_PARAM = "line"
TRUNK_CONTACT_PREFIX = "trunk-"


def port_line(port):
    return "fxs%d" % port


def is_port_line(value):
    return value is not None and (value.startswith("fxs") or value == "fxo")


class GatewayService:
    def __init__(self, app):
        self.app = app
        self.ua = user_agent(app)
        app.sip.router.add(Module("gateway", GATEWAY, ("INVITE",), take=self.take))
        hw = app.hardware
        law = "ulaw"
        if getattr(app, "board", None):
            law = app.board.get("law", "ulaw")
        self.law = law
        from hal import g711
        self.silence = g711.silence(law)
        self.media = MediaManager(app, app.identity.host, law=law)
        self.mixer = Mixer(law)
        self.fxs = {}
        self.fxo = {}
        if hw is not None:
            for port, drv in hw.hw.fxs.items():
                self.fxs[port] = FxsAgent(self, port, drv)
            for port, drv in hw.hw.fxo.items():
                self.fxo[port] = FxoAgent(self, port, drv)
        self.settings = None
        self.plan = DialPlan()
        self.registrations = {}
        self.started = False
        self.task = None
        self._wake = Event(app.sched)
        self.counters = {"routed_fxs": 0, "routed_fxo": 0, "not_found": 0, "refused_source": 0,
                         "survival_local_hangups": 0}
        s = getattr(app, "gateway_settings", None)
        if s is not None:
            self.configure(s)
        app.control.subscribe(self._reregister)
        app.identity.subscribe(self._reregister)
        app.commands.register("show gateway", _show_gateway,
                              "Show the analog line agents: registrations, calls, media")

    # -- configuration
    def configure(self, s):
        self.settings = s
        self.plan = DialPlan(s.dial_patterns(), s.emergency, s.inter_digit_ms, s.first_digit_ms)
        self.media.set_range(s.rtp_min, s.rtp_max)
        from hal import tones
        country = tones.country_code(s.country)
        for port, a in self.fxs.items():
            a.set_station(s.station_on(port))
            drv = a.drv
            drv.flash_min_ms = s.flash_min
            drv.flash_max_ms = s.flash_max
            drv.country = country
        for port, a in self.fxo.items():
            a.set_trunk(s.trunk_on(port))
        if self.started:
            self._sync_registrations()

    @property
    def call_server(self):
        return self.app.control.call_server()

    def _reregister(self, *changed):
        """The call server in control or our own address changed: every
        registration starts again, toward the new one and with a new Contact,
        each at a random moment of REREGISTER_SPREAD_MS (a failback must not
        send the peer a burst of REGISTERs)."""
        if self.started:
            # to the local call server (the peer unreachable): no un-REGISTER,
            # the peer keeps the bindings until they expire or we fail back
            dead = self.app.control.local
            for r in self.registrations.values():
                if dead:
                    r.abandon(self.app.clock.now())
                else:
                    r.stop(self.app.clock.now())
            self.registrations = {}
            self._sync_registrations(REREGISTER_SPREAD_MS)

    def _sync_registrations(self, spread_ms=0):
        s = self.settings
        srv = self.call_server
        want = {}
        # a peer registers the FXS stations; the local call server reaches
        # them in process (firmware/voice/handover.py) and needs no REGISTER
        peer = self.app.control.peer     # the peer in control (primary or backup)
        if s is not None and not self.app.control.local and peer is not None \
                and peer["register"]:
            for st in s.stations:
                if st.fxs_port is not None and st.fxs_port in self.fxs:
                    want[st.extension] = st
        for ext in list(self.registrations):
            r = self.registrations[ext]
            st = want.get(ext)
            if st is None or r.secret_id != st.secret_id or r.username != st.user_id \
                    or r.dest != srv.registrar_dest():
                r.stop(self.app.clock.now())
                del self.registrations[ext]
        expires = peer["expires"] if peer is not None else 3600
        for ext, st in want.items():
            if ext in self.registrations:
                continue
            r = Registration(self.ua, ext, srv.domain(), srv.registrar_dest(), st.user_id,
                             st.password, expires, self._reg_state, contact_user=ext,
                             contact_params=";%s=%s" % (LINE_PARAM, port_line(st.fxs_port)),
                             transport=srv.transport)
            r.secret_id = st.secret_id
            self.registrations[ext] = r
            r.start_after(self.app.clock.now(),
                          self.app.rng.randbelow(spread_ms) if spread_ms > 0 else 0)

    def _reg_state(self, reg):
        if reg.state in ("registered", "failed"):
            self.app.log.write("info" if reg.state == "registered" else "warning",
                               "gateway: station %s %s (%s)" % (reg.user, reg.state, reg.status))

    # -- running
    def start(self):
        hw = self.app.hardware
        if hw is not None:
            for port, a in self.fxs.items():
                hw.listen("fxs", port, self._listener(a))
            for port, a in self.fxo.items():
                hw.listen("fxo", port, self._listener(a))
        self.task = self.app.sched.spawn(self._media_task, "gateway-media", RESTART)
        self.started = True
        self._sync_registrations()

    def _listener(self, agent):
        def fn(event, value, now, agent=agent, self=self):
            try:
                agent.on_event(event, value, now)
            except Exception as e:
                self.app.log.write("error", "gateway %s %d: %s on %s: %s" % (
                    "fxs" if isinstance(agent, FxsAgent) else "fxo", agent.port,
                    type(e).__name__, event, e))
            self._wake.set()
        return fn

    def _busy(self):
        for a in self.fxs.values():
            if a.legs:
                return True
        for a in self.fxo.values():
            if a.leg is not None:
                return True
        return False

    async def _media_task(self):
        sched = self.app.sched
        clock = self.app.clock
        nxt = clock.now()
        while True:
            if not self._busy():
                self._wake.clear()
                await self._wake.wait()
                nxt = clock.now()
                continue
            nxt += FRAME_MS
            now = clock.now()
            if nxt < now - 5 * FRAME_MS:
                nxt = now        # fell behind: resynchronise, no catch-up burst
            await sched.sleep_until(nxt)
            self.tick()

    def tick(self):
        for a in self.fxs.values():
            try:
                a.media_tick()
            except Exception as e:
                self.app.log.write("error", "gateway fxs %d media: %s: %s" % (a.port, type(e).__name__, e))
        for a in self.fxo.values():
            try:
                a.media_tick()
            except Exception as e:
                self.app.log.write("error", "gateway fxo %d media: %s: %s" % (a.port, type(e).__name__, e))

    def kick(self):
        """A leg was created: make sure the media task runs."""
        self._wake.set()

    def port_ready(self, kind, port):
        hw = self.app.hardware
        if hw is None:
            return False
        return hw.port_state.get((kind, port)) == "ready"

    # -- routing (the router's gateway module)
    def take(self, sreq):
        """An INVITE for one of our registered contacts (`;line=fxsN` /
        `;line=fxo`, whichever call server sent it) is the gateway's; so is
        every new INVITE while no local call server is in control, except a
        branch phone's emergency call (the local call server authenticates
        it and sends it out of a local line)."""
        if is_port_line(sreq.request.uri.params.get(LINE_PARAM)):
            self.incoming(sreq)
            return True
        if self.app.control.local and getattr(self.app, "callserver", None) is not None:
            return False        # the local call server's
        trunks = getattr(self.app, "sip_trunks", None)
        if trunks is not None and trunks.trunk_from(sreq.source.addr[0]) is not None \
                and getattr(self.app, "callserver", None) is not None:
            return False        # a SIP trunk's DID call (firmware/voice/trunks.py)
        if (not self.from_call_server(sreq.source) and self.settings is not None
                and _ruri_user(sreq.request) in self.settings.emergency
                and getattr(self.app, "callserver", None) is not None):
            return False        # a branch phone's emergency call: the local call server's
        px = getattr(self.app, "outbound", None)
        if px is not None and px.claims(sreq):
            return False        # a branch phone's call, or the peer's call to one: relayed
        return self.incoming(sreq)

    def from_call_server(self, src):
        """New calls to the ports come only through a call server: this
        appliance's own (local) or the peer's host.  Anyone else could ring
        the phones, seize an FXO line past the class of restriction, or take
        over a call with Replaces."""
        from firmware.voice.peers import resolved_addresses
        for p in (self.settings.peers if self.settings is not None else ()):
            if src.addr[0] in resolved_addresses(p):   # primary or backup, literal or resolved
                return True
        return False

    def incoming(self, sreq):
        """Route a new INVITE from the peer call server to a port; False when
        no port is its target."""
        if not self.from_call_server(sreq.source):
            self.counters["refused_source"] += 1
            sec = getattr(self.app, "security", None)
            if sec is not None:
                f = sreq.request.from_
                sec.record(sreq.source.addr[0], sreq.source.addr[1],
                           (f.uri.user if f is not None else None) or "-",
                           "call to an analog port not from the call server", self.app.clock.now())
            cdr.gateway_refused(self, sreq, 403, "Not From The Call Server", None)
            sreq.respond(403, "Forbidden (Not From The Call Server)")
            return True
        return self.route_call(sreq, _ruri_user(sreq.request))

    def end_local_partner(self, leg):
        """Survival mode: a call set up through the peer between two ports of
        this appliance keeps its media (it flows between our own RTP ports),
        but the BYE of the side that hangs up goes to the dead peer.  End the
        other side here: the leg whose media is sent to leg's RTP port.  Only
        while the local call server is in control (a live peer relays the BYE)."""
        if not self.app.control.local or leg.rtp is None:
            return False
        mine = (self.media.host, leg.rtp.port)
        for agents in (self.fxs, self.fxo):
            for a in agents.values():
                legs = a.legs if hasattr(a, "legs") else ([a.leg] if a.leg is not None else [])
                for other in list(legs):
                    if other is leg or other.rtp is None or other.rtp.remote != mine:
                        continue
                    if other.state == "ended":
                        continue
                    self.counters["survival_local_hangups"] += 1
                    other.hangup()
                    a.leg_event(other, "ended", "survival: the other port hung up")
                    return True
        return False

    def ring_station(self, port, offer):
        """The local call server rings the FXS port (offer: a local half)."""
        self._wake.set()
        self.counters["routed_fxs"] += 1
        self.fxs[port].incoming(offer)

    def route_call(self, offer, user):
        """Ring the port a number names: an FXS station's extension, an
        emergency number or a trunk prefix (the first idle, ready FXO trunk
        in routing order); offer is a SIP
        INVITE or the port half of a call from the local call server.  False
        when no port is its target."""
        self._wake.set()
        s = self.settings
        if s is None or not user:
            self.counters["not_found"] += 1
            return False
        st = s.station_by_ext(user)
        if st is not None and st.fxs_port in self.fxs:
            self.counters["routed_fxs"] += 1
            self.fxs[st.fxs_port].incoming(offer)
            return True
        # outside numbers: longest prefix, then priority; an emergency number on
        # any line, as dialled (firmware/voice/routing.py); overflow past a busy
        # or out-of-service line
        busy = down = None
        for t, digits in trunk_routes(s.trunks, user, s.emergency):
            a = self.fxo.get(t.fxo_port)
            if a is None:
                continue
            if not self.port_ready("fxo", t.fxo_port):
                down = a
                continue
            if a.state != "idle":
                busy = a
                continue
            self.counters["routed_fxo"] += 1
            a.incoming(offer, digits)
            return True
        if busy is not None:
            cdr.gateway_refused(self, offer, 486, "every line busy", ("fxo", busy.port))
            offer.respond(486)
            return True
        if down is not None:
            cdr.gateway_refused(self, offer, 503, "Trunk Out Of Service", ("fxo", down.port))
            offer.respond(503, "Trunk Out Of Service")
            return True
        self.counters["not_found"] += 1
        return False

    # -- views
    def place_call(self, number, owner, body, station=None, trunk=None, cid=None, auth=None,
                   display=None):
        """A call from a port to number through the call server in control:
        in process when it is this appliance's (the caller half of a local
        pair), else an INVITE to the peer; an emergency number from a station
        always in process.  None when it cannot be placed."""
        now = self.app.clock.now()
        cs = getattr(self.app, "callserver", None)
        s = self.settings
        # an emergency number from a station never depends on the WAN: it
        # leaves through a local line even while a peer is in control
        emergency = station is not None and s is not None and number in s.emergency
        if self.app.control.local or emergency:
            if cs is None:
                return None
            return cs.local_call(number, body, owner,
                                 station=station.extension if station is not None else None,
                                 cid=cid)
        srv = self.call_server
        if station is not None:
            frm, user = "sip:%s@%s" % (station.extension, srv.domain()), station.extension
        else:
            frm = "sip:%s@%s" % ((cid[0] if cid else None) or "anonymous", srv.domain())
            user = TRUNK_CONTACT_PREFIX + trunk.name
        return self.ua.invite("sip:%s@%s" % (number, srv.hostport()), frm,
                              "sip:%s@%s" % (number, srv.domain()), srv.dest(), body, owner, now,
                              display=display, auth=auth, contact_user=user,
                              transport=srv.transport)

    def port_status(self, kind, port):
        a = (self.fxs if kind == "fxs" else self.fxo).get(port)
        if a is None:
            return ("-", "-")
        cid = a.last_cid
        text = "-"
        if cid is not None:
            num, name = cid
            text = "%s%s" % (num or "anonymous", (" " + name) if name else "")
        return (a.status_text(), text)

    def leaks(self):
        """What is still allocated (for tests and `show gateway`)."""
        return {"dialogs": len(self.ua.dialogs), "sessions": len(self.ua.sessions),
                "rtp": len(self.media), "transactions": len(self.ua.layer)}


def _ruri_user(req):
    return req.uri.user_plain if req.uri.scheme == "sip" else req.uri.user


def _show_gateway(app, args):
    gw = getattr(app, "gateway", None)
    if gw is None:
        return "gateway not running"
    from firmware.textfmt import table
    lines = ["Call server in control: %s" % gw.call_server.describe()]
    rows = [("Extension", "Registration", "Status", "Refreshes")]
    for ext in sorted(gw.registrations):
        r = gw.registrations[ext]
        rows.append((ext, r.state, str(r.status or "-"), str(r.count)))
    if len(rows) > 1:
        lines.append(table(rows))
    lk = gw.leaks()
    lines.append("Dialogs %d, sessions %d, RTP sessions %d, transactions %d, "
                 "refer subscriptions %d" % (lk["dialogs"], lk["sessions"], lk["rtp"],
                                             lk["transactions"], len(gw.ua.subscriptions)))
    for name in sorted(gw.ua.counters):
        lines.append("  %-24s %d" % (name.replace("_", " "), gw.ua.counters[name]))
    return "\n".join(lines)
