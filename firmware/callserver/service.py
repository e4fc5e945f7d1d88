"""The call server service: wires the registrar, the B2BUA and the security
checks into the SIP core, and gives the console its views.

    cs = CallServer(app)     # after SIP (app.boot); reads app.callserver_settings
    cs.start()
    cs.configure(settings)   # a commit changed the configuration
    cs.in_control            # the local call server handles calls (no peer call
                             # server configured; survivability switches it later)
    cs.leaks()               # table sizes, for tests and show commands

Request flow: the router's security module (app._start_security: allow list, blocked sources,
rate limit; the appliance's own address is exempt: that is the analog
gateway talking to us) -> REGISTER: Registrar.handle; a new INVITE without the
gateway's `;line=` marker while in control: caller identification (below),
then B2bua.incoming.

Caller identification for a new INVITE (issue 12 items 3 and 4):
  - from the appliance's own address (the analog gateway): its FXO trunk
    calls and its FXS stations, trusted;
  - a station with `caller-authentication registered-source` (a phone that
    cannot answer a challenge), when the packet comes from one of its
    registered contacts: that station, without a challenge.  Whoever can
    forge that IP:port can then call as the station: an explicit choice;
  - everything else must answer a 407 digest challenge (Proxy-Authorization,
    the nonce bound to the source); the credentials must be those of the
    station the From names.  A wrong answer to our nonce is an access failure
    like a failed registration.  A From that names no station gets the very
    same 407 as one that does (and a wrong answer the same 407 again), so an
    unauthenticated caller cannot tell which extensions exist;
  - `call-server unknown-source trunk`: an INVITE without credentials to a
    local destination (a station's extension or DID, a hunt group, the auto
    attendant: reachable_by_trunk) is a trunk call, whatever its From says;
    anything else, outside numbers included, is challenged as above.

Console: show sip registrations, show calls (and the call server's sections of
show sip statistics); security views come from firmware/sipstack/security.py.
"""
from firmware.compat import const
from firmware.sipstack.dialogs import user_agent
from firmware.sipstack.router import Module, REGISTRAR, CALL_SERVER
from firmware.callserver.registrar import Registrar, nonce_bind
from firmware.callserver.b2bua import B2bua
from sip import digest
from sip.transport import uri_address

NONCE_TTL_MS = const(300000)


class CallServer:
    def __init__(self, app):
        self.app = app
        self.core = app.sip
        self.ua = user_agent(app)
        self.settings = None
        self.registrar = Registrar(self)
        self.b2b = B2bua(self)
        self._digest = None
        self._digest_realm = None
        self._timer = None
        self._deadline = None
        self.started = False
        from firmware.callserver.config import MAX_BINDINGS
        self.max_bindings = MAX_BINDINGS
        self.security = app.security        # built with the SIP core (app._start_security)
        self.counters = {"calls_from_unknown": 0, "invite_challenges": 0, "invite_auth_failures": 0,
                         "calls_trusted_by_source": 0}
        self.attendant = None     # built once an auto-attendant extension is configured
        self.configure(app.callserver_settings)
        self.core.router.add(Module("registrar", REGISTRAR, ("REGISTER",), take=self._register))
        self.core.router.add(Module("call-server", CALL_SERVER, ("INVITE",), take=self._route))
        from firmware.proxy.outbound import OutboundProxy
        self.outbound = app.outbound = OutboundProxy(app, self)   # router slot 50
        self.core.stat_sections.append(("Registrar", self.registrar.statistics))
        self.core.stat_sections.append(("Calls", self._call_stats))
        register_commands(app)

    def configure(self, settings):
        old = self.settings
        self.settings = settings
        if settings.attendant.extension and self.attendant is None:
            from firmware.callserver.attendant import Attendant
            self.attendant = Attendant(self)
            self.core.stat_sections.append(("Auto attendant", self.attendant.statistics))
        if old is not None:
            for st in old.stations:
                if settings.by_user.get(st.user_id) is None or \
                        settings.by_ext.get(st.extension) is None:
                    self.registrar.drop_station(st.name)

    @property
    def in_control(self):
        return self.app.control.local

    def start(self):
        self.started = True
        self._rearm()

    def now(self):
        return self.app.clock.now()

    def survival_expiry(self):
        """Seconds to grant a phone registering while the local call server
        stands in for a configured peer (None: no cap), drawn uniformly from
        the upper half of survival-registration-expiry so that the phones'
        refreshes after failback are spread over that window."""
        g = getattr(self.app, "gateway_settings", None)
        if not self.in_control or g is None or not g.peers:
            return None
        top = self.settings.survival_expiry
        return top - self.app.rng.randbelow(top // 2 + 1)

    def emergency(self):
        g = getattr(self.app, "gateway_settings", None)
        return g.emergency if g is not None else ("911", "112")

    # -- digest
    def digest(self):
        realm = self.settings.realm
        algs = self.settings.algorithms
        if self._digest is None or self._digest_realm != (realm, algs):
            self._digest = digest.DigestServer(realm, self.app.rng.token(16), self.app.rng,
                                               nonce_ttl_ms=NONCE_TTL_MS, algorithms=algs)
            self._digest_realm = (realm, algs)
        return self._digest

    def lookup_ha1(self, user, realm, algorithm):
        st = self.settings.by_user.get(user)
        if st is None:
            return None
        return st.ha1_for(realm, algorithm)

    # -- security
    def security_failed(self, src, user, reason):
        if not self.app.own_address(src.addr):
            self.security.auth_failed(src.addr[0], src.addr[1], user or "-", reason, self.now())
            self._rearm()

    def security_blocked(self, src):
        return not self.app.own_address(src.addr) and self.security.is_blocked(src.addr[0], self.now())

    def security_record(self, src, user, reason):
        self.security.record(src.addr[0], src.addr[1], user or "-", reason, self.now())

    # -- SIP handlers
    def _register(self, sreq):
        if self.outbound.claims(sreq):
            return False        # a peer is in control: relayed upstream (slot 50)
        self.registrar.handle(sreq)
        self._rearm()
        return True

    def _route(self, sreq):
        req = sreq.request
        if self.outbound.claims(sreq):
            return False        # to or from a phone through the peer (slot 50)
        if not self.in_control and _number(req) not in self.emergency():
            return False        # a station's emergency call is ours even while a peer is
        src = sreq.source
        s = self.settings
        f = req.from_
        fuser = f.uri.user_plain if f.uri.scheme == "sip" else f.uri.user
        st = s.station_for_aor(fuser or "")
        if st is not None and st.trust_source:
            # caller-authentication registered-source: a phone that cannot answer
            # a challenge, trusted when the packet comes from one of its contacts
            b = self.registrar.binding_from(st.name, src.addr)
            if b is not None:
                self.counters["calls_trusted_by_source"] += 1
                self._station_call(sreq, st, b.dest if b.nat else None)
                return True
        now = self.now()
        srv = self.digest()
        bind = nonce_bind(src)
        res = srv.verify("INVITE", req.get("proxy-authorization"), self.lookup_ha1, now,
                         uri=str(req.uri), bind=bind)
        if res.outcome == digest.MALFORMED:
            sreq.respond(400, "Malformed Proxy-Authorization Header")
            return True
        if res.outcome == digest.OK and st is not None and res.username == st.user_id:
            b = self.registrar.binding_from(st.name, src.addr)
            if b is not None:
                flow = b.dest if b.nat else None
            else:
                flow = src.addr if _contact_differs(req, src.addr) else None
            self._station_call(sreq, st, flow)
            return True
        if res.outcome in (digest.FAILED, digest.OK):   # OK: another station's user than From
            self.counters["invite_auth_failures"] += 1
            self.security_failed(src, res.username, "call: wrong credentials")
        else:   # no credentials, or a nonce not issued to this source (stale)
            if (s.unknown_trunk and res.outcome != digest.STALE
                    and self.b2b.reachable_by_trunk(_number(req))):
                # unknown-source trunk: an unauthenticated call to a local
                # destination is a trunk call, whatever its From says (a From
                # naming a station gets no other answer than any other From)
                self.counters["calls_from_unknown"] += 1
                self.b2b.incoming(sreq, _number(req), None, fuser, f.display, True, None)
                return True
            # the same work whether From names a station or not: nothing here
            # may take longer for one than for the other (no record, no lookup)
            self.counters["invite_challenges"] += 1
        sreq.respond(407, None, [("Proxy-Authenticate", c) for c in srv.challenge(
            now, stale=res.outcome == digest.STALE, bind=bind)])
        return True

    def _station_call(self, sreq, st, flow):
        f = sreq.request.from_
        name = st.display_name or (f.display if f.display else None)
        self.b2b.incoming(sreq, _number(sreq.request), st, st.extension, name, False, flow)

    # -- the analog gateway's calls, in process (firmware/voice/handover.py)
    def local_call(self, number, body, owner, station=None, cid=None):
        """An FXS station (its extension) or an FXO trunk (caller ID
        (number, name)) calls number through this call server: the caller
        half of a local pair, or None when the call server is not in control
        (a station's emergency call is taken in either case: it never depends
        on the peer)."""
        if not self.in_control and not (station is not None and number in self.emergency()):
            return None
        from firmware.voice.handover import local_pair
        st = self.settings.by_ext.get(station) if station is not None else None
        if station is not None and st is None:
            return None
        if st is not None:
            caller_id = (st.extension, st.display_name)
        else:
            caller_id = (cid[0] if cid else None, cid[1] if cid else None)
        leg, cs_half = local_pair(self.app, caller_id, (number, None), body)
        leg.owner = owner
        if st is not None:
            self.b2b.incoming(cs_half, number, st, st.extension, st.display_name, False, None)
        else:
            self.b2b.incoming(cs_half, number, None, caller_id[0] or "anonymous", caller_id[1],
                              True, None)
        return leg

    # -- timers: binding expiry and security blocks on one TU timer
    def rearm(self):
        """Bindings changed outside a REGISTER of ours (the outbound proxy's
        shadow bindings): move the expiry timer."""
        self._rearm()

    def _rearm(self):
        if not self.started:
            return
        d = self.registrar.next_deadline()
        sd = self.security.next_deadline()
        if sd is not None and (d is None or sd < d):
            d = sd
        if d == self._deadline and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = d
        if d is None:
            return
        try:
            self._timer = self.core.call_later(max(0, d - self.now()), self._fire)
        except Exception:
            self._timer = None

    def _fire(self):
        self._timer = None
        self._deadline = None
        now = self.now()
        self.registrar.on_timer(now)
        self.security.on_timer(now)
        self._rearm()

    # -- views
    def leaks(self):
        return {"bindings": self.registrar.count, "calls": len(self.b2b.calls),
                "dialogs": len(self.ua.dialogs), "sessions": len(self.ua.sessions),
                "transactions": len(self.core.layer), "active": len(self.b2b.active)}

    def _call_stats(self):
        out = [("in control", "local" if self.in_control else "peer")]
        out.extend(self.b2b.statistics())
        for k in sorted(self.counters):
            out.append((k.replace("_", " "), self.counters[k]))
        return out


def _number(req):
    u = req.uri
    return u.user_plain if u.scheme == "sip" else u.user


def _contact_differs(req, addr):
    cs = req.contact
    if not cs or cs[0] == "*":
        return False
    return uri_address(cs[0].uri) != (addr[0], addr[1])


def _show_registrations(app, args):
    cs = getattr(app, "callserver", None)
    if cs is None:
        return "no station is configured"
    from firmware.textfmt import table
    now = cs.now()
    n = cs.registrar.shadow_count()
    # the Held column only while the outbound proxy holds shadow bindings
    rows = [("Station", "Contact", "Source", "Expires") + (("Held",) if n else ()) +
            ("User agent",)]
    for b in cs.registrar.all():
        rows.append((b.station, b.contact, "%s:%d/%s%s" % (b.host, b.port, b.transport.lower(),
                                                            " nat" if b.nat else ""),
                     "%ds" % max(0, (b.expires_at - now) // 1000)) +
                    ((("shadow" if cs.registrar.is_shadow(b) else "local"),) if n else ()) +
                    (b.user_agent or "-",))
    s = cs.settings
    head = "Registrations: %d (licensed %d%s), stations %d" % (
        cs.registrar.count, min(s.max_registrations, cs.max_bindings),
        ", %d shadow: granted by the peer" % n if n else "", len(s.stations))
    if len(rows) == 1:
        return head
    return head + "\n" + table(rows)


def _show_calls(app, args):
    cs = getattr(app, "callserver", None)
    if cs is None:
        return "no station is configured"
    from firmware.textfmt import table, duration
    now = cs.now()
    calls = cs.b2b.calls
    head = "Calls: %d (limit %d)" % (len(calls), cs.settings.max_calls)
    if not calls:
        return head
    rows = [("Id", "Caller", "Callee", "State", "Duration")]
    for c in calls:
        since = c.answered if c.answered is not None else c.started
        who = c.caller_num or "anonymous"
        if c.caller is None:
            who += " (trunk)"
        callee = c.number
        if c.callee is not None and c.callee.extension != c.number:
            callee += " (%s)" % c.callee.extension   # the hunt group member or forward target
        rows.append((str(c.id), who, callee, c.state, duration(now - since)))
    return head + "\n" + table(rows)


def register_commands(app):
    from firmware.callserver import config   # show sip registrations [all]
    app.commands.register("show sip registrations", config._show_registrations,
                          config.REGISTRATIONS_HELP, args=config._registrations_args)
    app.commands.register("show calls", _show_calls, "Show the calls in progress")
    from firmware.sipstack import security
    reg = getattr(security, "register_commands", None)
    if reg is not None:
        reg(app)
