"""The registrar (RFC 3261 §10.3) of the branch call server.

    reg = Registrar(cs)                 # cs: the CallServer (settings, security, clock)
    reg.handle(sreq)                    # a REGISTER from the SIP core
    reg.contacts(station) -> [Binding]  # live bindings, newest first
    reg.binding_from(station, addr)     # the binding whose packets come from addr
    reg.on_timer(now) / next_deadline() # bindings expire on the (virtual) clock
    reg.listeners.append(fn)            # fn(station, binding or None) after a contact
                                        # is added (binding) or removed (None); at most
                                        # MAX_LISTENERS (presence, unsolicited MWI)

Processing order for a REGISTER (each step answers and stops on failure):
  1. Digest authentication (realm = the SIP domain; MD5 and SHA-256, qop=auth).
     No credentials -> 401.  A wrong password and an unknown user both get the
     very same 401 (fresh challenge; only the nonce differs), are written to the
     security access log and count toward the failed-registration block.
     Every nonce is bound to the source it was sent to (nonce_bind: the
     packet's host:port): a nonce we never issued, or issued to another
     source, or expired, is answered 401 stale=true, without looking at the
     password and without counting, so only a source that receives our
     challenges can count failures against its own address (a spoofed UDP
     source cannot get a phone blocked).  A malformed Authorization -> 400.
  2. The To AoR must name the authenticated station (extension or user ID):
     else 403 "Not Your Address Of Record".
  3. Contacts: `*` only alone and with Expires: 0 (else 400).  Per contact the
     lifetime is its expires parameter, else the Expires header, else
     default-expires; 0 < lifetime < min-expires -> 423 with Min-Expires;
     above max-expires it is shortened.
  4. A contact already bound (same URI) with the same Call-ID and a lower CSeq
     -> 500 "Out Of Order Registration" (an equal CSeq is a retransmission
     that arrived after its transaction ended: answered as a refresh).  Another
     Call-ID replaces the binding (the phone rebooted).
  5. Limits: more than the station's max-contacts -> 403 "Too Many Contacts";
     beyond the licence count (call-server max-registrations, at most
     MAX_BINDINGS) -> 403 "Registration Limit Reached".  Nothing of a refused
     request is applied.
  6. 200 with every live contact of the station and its remaining lifetime.

NAT: a binding remembers the packet source (received/rport) and the
transport (TCP: requests to the phone go back over the connection it
registered on).  When the Contact's host:port differs from the source, the phone
is behind NAT and requests to it go to the source address and port
(station nat-check ip-port, default) or to the source address with the
Contact's port (nat-check ip).

Memory: a Binding holds strings only (contact, Call-ID, user agent shared
through a bounded intern table) and a few integers.
"""
from sip.transport import uri_address
from firmware.compat import const
from sip import digest
from sip.errors import SipError

MAX_LISTENERS = const(4)
MAX_UA_STRINGS = const(32)     # distinct User-Agent strings kept (later ones truncated, unshared)


def nonce_bind(src):
    """What a digest nonce is bound to: the request's source host:port."""
    a = src.addr
    return "%s:%s" % (a[0], a[1])


class Binding:
    def __init__(self, station, contact, host, port, transport, expires_at, call_id, cseq,
                 user_agent, nat_dest, nat, now):
        self.station = station          # the station name
        self.contact = contact          # the Contact URI as text
        self.host = host                # packet source
        self.port = port
        self.transport = transport
        self.expires_at = expires_at    # ms on the appliance clock
        self.call_id = call_id
        self.cseq = cseq
        self.user_agent = user_agent
        self.dest = nat_dest            # where requests to the phone go
        self.nat = nat                  # the phone is behind NAT (dest is not its Contact)
        self.since = now

    def __repr__(self):
        return "<Binding %s %s>" % (self.station, self.contact)


def _nat_dest(uri, host, port, nat_port):
    """((host, port), nat): where requests to a phone go: the Contact's own
    address unless the packets come from elsewhere (NAT), then the source
    (ip-port) or the source IP with the Contact's port (ip)."""
    chost, cport = uri_address(uri)
    if chost == host and cport == port:
        return (host, port), False
    if nat_port:
        return (host, port), True
    return (host, cport), True


class Registrar:
    def __init__(self, cs):
        self.cs = cs
        self.by_station = {}     # station name -> [Binding]
        self.count = 0           # bindings in total
        self.peak = 0
        self._ua_strings = {}
        self._deadline = None
        self.listeners = []
        # the bindings the peer granted through the outbound proxy: a set, not an
        # attribute (a 13th attribute costs every Binding 96 bytes on MicroPython)
        self.shadows = set()
        self.counters = {"registers": 0, "registered": 0, "refreshed": 0, "unregistered": 0,
                         "expired": 0, "auth_challenges": 0, "auth_failures": 0,
                         "stale_nonces": 0, "too_brief": 0, "out_of_order": 0,
                         "not_your_aor": 0, "too_many_contacts": 0, "licence_limit": 0,
                         "bad_requests": 0}

    # -- queries
    def contacts(self, station_name):
        return self.by_station.get(station_name) or []

    def binding_from(self, station_name, addr):
        for b in self.by_station.get(station_name) or ():
            if b.host == addr[0] and b.port == addr[1]:
                return b
        return None

    def all(self):
        out = []
        for name in sorted(self.by_station):
            out.extend(self.by_station[name])
        return out

    # -- REGISTER
    def handle(self, sreq):
        cs = self.cs
        s = cs.settings
        req = sreq.request
        now = cs.now()
        src = sreq.source
        self.counters["registers"] += 1
        srv = cs.digest()
        auth = req.get("authorization")
        bind = nonce_bind(src)
        res = srv.verify("REGISTER", auth, cs.lookup_ha1, now, uri=str(req.uri), bind=bind)
        if res.outcome == digest.MALFORMED:
            self.counters["bad_requests"] += 1
            sreq.respond(400, "Malformed Authorization Header")
            return
        if res.outcome != digest.OK:
            if res.outcome in (digest.FAILED, digest.REPLAY):
                self.counters["auth_failures"] += 1
                cs.security_failed(src, res.username, "registration: wrong credentials"
                                   if res.outcome == digest.FAILED else "registration: replayed nonce")
            elif res.outcome == digest.STALE:
                self.counters["stale_nonces"] += 1
            else:
                self.counters["auth_challenges"] += 1
            if cs.security_blocked(src):      # this failure crossed the threshold
                sreq.respond(403)
                return
            sreq.respond(401, None, [("WWW-Authenticate", c) for c in
                                     srv.challenge(now, stale=res.outcome == digest.STALE,
                                                   bind=bind)])
            return
        st = s.by_user.get(res.username)
        to = req.to
        aor = to.uri.user_plain if to is not None and to.uri.scheme == "sip" else None
        if st is None or s.station_for_aor(aor or "") is not st:
            self.counters["not_your_aor"] += 1
            cs.security_record(src, res.username, "registration: AoR %s is not the user's" % aor)
            sreq.respond(403, "Not Your Address Of Record")
            return
        try:
            self._update(sreq, st, now)
        except SipError as e:
            self.counters["bad_requests"] += 1
            sreq.respond(getattr(e, "status", 400) or 400, "Bad Contact or Expires")

    def _update(self, sreq, st, now):
        cs = self.cs
        s = cs.settings
        req = sreq.request
        src = sreq.source
        contacts = req.contact
        hexp = req.expires
        call_id = req.call_id
        cseq = req.cseq.num
        mine = self.by_station.get(st.name) or []
        if contacts and any(c == "*" for c in contacts):
            if len(contacts) != 1 or hexp != 0:
                self.counters["bad_requests"] += 1
                sreq.respond(400, "Wildcard Contact Needs Expires 0 Alone")
                return
            for b in mine:
                if b.call_id == call_id and cseq < b.cseq:
                    self.counters["out_of_order"] += 1
                    sreq.respond(500, "Out Of Order Registration")
                    return
            self._remove_all(st.name, "unregistered")
            self._ok(sreq, st, now)
            return
        # plan every change first: a refused request changes nothing
        changes = []      # (binding or None, uri text, lifetime s, uri)
        for c in contacts or ():
            e = c.params.get("expires")
            if e is not None:
                if not e.isdigit():
                    raise SipError("bad expires parameter")
                life = int(e)
            elif hexp is not None:
                life = hexp
            else:
                life = s.default_expires
            if 0 < life < s.min_expires:
                self.counters["too_brief"] += 1
                sreq.respond(423, None, (("Min-Expires", str(s.min_expires)),))
                return
            if life > s.max_expires:
                life = s.max_expires
            text = str(c.uri)
            old = None
            for b in mine:
                if b.contact == text:
                    old = b
                    break
            if old is not None and old.call_id == call_id and cseq < old.cseq:
                self.counters["out_of_order"] += 1
                sreq.respond(500, "Out Of Order Registration")
                return
            changes.append((old, text, life, c.uri))
        adds = 0
        for old, text, life, uri in changes:
            if old is None and life > 0:
                adds += 1
            elif old is not None and life == 0:
                adds -= 1
        if adds > 0:
            if len(mine) + adds > st.max_contacts:
                self.counters["too_many_contacts"] += 1
                cs.security_record(src, st.user_id, "registration: more than %d contacts" %
                                   st.max_contacts)
                sreq.respond(403, "Too Many Contacts (max %d)" % st.max_contacts)
                return
            limit = min(s.max_registrations, cs.max_bindings)
            if self.count + adds > limit:
                self.counters["licence_limit"] += 1
                cs.security_record(src, st.user_id, "registration: licence limit %d reached" % limit)
                sreq.respond(403, "Registration Limit Reached (%d licensed)" % limit)
                return
        ua_text = self._intern(req.get("user-agent"))
        added = []
        cap = cs.survival_expiry()       # survival mode: short, so phones follow the peer back
        for old, text, life, uri in changes:
            if life == 0:
                if old is not None:
                    self._remove(st.name, old, "unregistered")
                continue
            if cap is not None and life > cap:
                life = cap
            b = self._put(st, old, text, uri, src, life, call_id, cseq, ua_text, now)
            if old is None:
                added.append(b)
        self._ok(sreq, st, now)
        for b in added:
            self._changed(st.name, b)

    def _put(self, st, old, text, uri, src, life, call_id, cseq, ua_text, now, shadow=False):
        """Add (old None) or refresh a binding of st for `life` seconds."""
        host, port = src.addr[0], src.addr[1]
        if src.transport == "TCP":
            # the phone's connection is the only way back to it (the
            # transport opens no connections): requests reuse it
            dest, nat = (host, port), False
        else:
            dest, nat = _nat_dest(uri, host, port, st.nat_port)
        if old is None:
            mine = self.by_station.get(st.name) or []
            b = Binding(st.name, text, host, port, src.transport, now + life * 1000,
                        call_id, cseq, ua_text, dest, nat, now)
            mine.append(b)
            self.by_station[st.name] = mine
            self.count += 1
            if self.count > self.peak:
                self.peak = self.count
            self.counters["registered"] += 1
        else:
            b = old
            b.host, b.port, b.transport = host, port, src.transport
            b.expires_at = now + life * 1000
            b.call_id, b.cseq, b.user_agent, b.dest = call_id, cseq, ua_text, dest
            b.nat = nat
            self.counters["refreshed"] += 1
        if shadow:
            self.shadows.add(b)
        else:
            self.shadows.discard(b)
        # no scan of every binding per REGISTER: the deadline only moves earlier
        # here; a refresh or removal leaves it early, and on_timer() rescans then
        exp = now + life * 1000
        if self._deadline is None or exp < self._deadline:
            self._deadline = exp
        return b

    # -- shadow bindings (firmware/proxy/outbound.py)
    def find(self, station_name, contact):
        for b in self.by_station.get(station_name) or ():
            if b.contact == contact:
                return b
        return None

    def room_for(self, st, contacts):
        """None when the contacts (URI texts) not yet bound fit the station's
        max-contacts and the licence; else (status, reason) as _update answers."""
        mine = self.by_station.get(st.name) or []
        adds = len([c for c in contacts if self.find(st.name, c) is None])
        if adds == 0:
            return None
        if len(mine) + adds > st.max_contacts:
            self.counters["too_many_contacts"] += 1
            return (403, "Too Many Contacts (max %d)" % st.max_contacts)
        limit = min(self.cs.settings.max_registrations, self.cs.max_bindings)
        if self.count + adds > limit:
            self.counters["licence_limit"] += 1
            return (403, "Registration Limit Reached (%d licensed)" % limit)
        return None

    def shadow(self, st, text, uri, src, life, call_id, cseq, user_agent, now):
        """The peer granted st the contact `text` for life seconds through the
        outbound proxy: hold it (a shadow binding) so that the local call
        server has it at failover; life 0 removes it."""
        old = self.find(st.name, text)
        if life <= 0:
            if old is not None:
                self._remove(st.name, old, "unregistered")
            return None
        if old is None and self.room_for(st, (text,)) is not None:
            return None       # full: counted by room_for; the peer still has it
        b = self._put(st, old, text, uri, src, life, call_id, cseq, self._intern(user_agent),
                      now, True)
        if old is None:
            self._changed(st.name, b)
        return b

    def is_shadow(self, b):
        return b in self.shadows

    def shadow_count(self):
        return len(self.shadows)

    def listen(self, fn):
        if fn not in self.listeners and len(self.listeners) < MAX_LISTENERS:
            self.listeners.append(fn)

    def _changed(self, name, b):
        for fn in self.listeners:
            try:
                fn(name, b)
            except Exception as e:
                self.cs.app.log.write("error", "registration listener: %s: %s" % (
                    type(e).__name__, e))

    def _ok(self, sreq, st, now):
        hs = []
        for b in self.by_station.get(st.name) or ():
            left = (b.expires_at - now + 999) // 1000
            hs.append(("Contact", "<%s>;expires=%d" % (b.contact, max(left, 0))))
        sreq.respond(200, None, hs)

    def _intern(self, text):
        if text is None:
            return None
        t = self._ua_strings.get(text)
        if t is not None:
            return t
        if len(self._ua_strings) >= MAX_UA_STRINGS:
            return text[:48]
        self._ua_strings[text] = text
        return text

    # -- removal and expiry
    def _remove(self, name, b, why):
        lst = self.by_station.get(name)
        if lst is None or b not in lst:
            return
        lst.remove(b)
        self.shadows.discard(b)
        if not lst:
            del self.by_station[name]
        self.count -= 1
        self.counters[why] += 1
        self._changed(name, None)

    def _remove_all(self, name, why):
        for b in list(self.by_station.get(name) or ()):
            self._remove(name, b, why)

    def drop_station(self, name):
        """The station was deleted from the configuration."""
        self._remove_all(name, "unregistered")

    def next_deadline(self):
        return self._deadline

    def _arm(self):
        best = None
        for lst in self.by_station.values():
            for b in lst:
                if best is None or b.expires_at < best:
                    best = b.expires_at
        self._deadline = best

    def on_timer(self, now):
        if self._deadline is None or now < self._deadline:
            return
        for name in list(self.by_station):
            for b in list(self.by_station.get(name) or ()):
                if b.expires_at <= now:
                    self._remove(name, b, "expired")
        self._arm()

    def statistics(self):
        out = [("bindings", self.count), ("bindings peak", self.peak)]
        for k in sorted(self.counters):
            out.append((k.replace("_", " "), self.counters[k]))
        return out
