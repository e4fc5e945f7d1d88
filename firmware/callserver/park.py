"""Call park on the local call server (configuration: features_config.py).

To park:
  - a blind transfer (REFER, or an FXS port's hook-flash transfer) to the
    lot extension takes the first free slot; to park-code + slot, that
    slot.  The final NOTIFY is "SIP/2.0 200 Parked At <slot>" (the
    sipfrag's reason phrase names the slot; a full lot: 486 "Park Lot
    Full", a taken slot: 486 "Park Slot Taken").
  - dialling park-code + slot (or the lot) while another call of the
    station is on hold parks that call's other party in that slot (the
    first free one for the lot) and ends the station's leg; the code call
    itself is answered 480 "Parked At <slot>" (a handled code, station
    manual), or 486 / 481 "No Held Call To Park".
The parked party's session belongs to its slot (Parked): its re-INVITEs are
answered with what it had, INFO with 200, and its BYE frees the slot.

To retrieve: an INVITE (SIP phone, or an analog port in process) to the
slot or to retrieve-code + slot.  The parked party is re-INVITEd with the
retriever's offer (direction forced to sendrecv) and its answer answers the
retriever; an empty slot: 404 "Slot Empty"; no offer: 488.

Recall: after recall-timeout the slot is freed and the station that parked
the call rings with the parked party (transfer.py XferCall.recall); nobody
answers within transfer.RECALL_RING_MS: the parked party gets BYE.  A call
parked by no station (a trunk caller's transfer) has no one to recall and
gets BYE.

Bounds: the slots of the configuration (at most features_config.MAX_PARK_SLOTS).
"""
from sip.usage.invite import CONFIRMED
from firmware.callserver.b2bua import Call, fix_sdp, _public_of
from firmware.callserver.transfer import XferCall, sendrecv, _Leaving


class Parked:
    """One occupied slot; the owner of the parked party's session."""

    def __init__(self, park, slot, session, station, parker, number, name):
        self.park = park
        self.slot = slot
        self.session = session
        self.station = station        # the parked party's station, or None (trunk)
        self.parker = parker          # Station that parked it, or None
        self.number = number
        self.name = name
        self.since = park.b2b.cs.now()
        self.timer = None
        session.owner = self

    def on_ended(self, s, reason):
        self.park.free(self, "parked party hung up")

    def on_offer(self, s, sdp):
        return s.local_sdp

    def on_request(self, s, sreq):
        sreq.respond(200)

    def on_refer(self, s, sub):
        return 603


class Park:
    def __init__(self, b2b):
        self.b2b = b2b
        self.slots = {}           # slot -> Parked
        self.counters = {"parked": 0, "retrieved": 0, "recalled": 0, "abandoned": 0,
                         "lot_full": 0, "empty_slot": 0}

    @property
    def settings(self):
        return getattr(self.b2b.cs.app, "feature_settings", None)

    def is_lot(self, number):
        """A transfer target that parks: the lot, or park-code + a slot."""
        f = self.settings
        if f is None or not f.slots:
            return False
        return number == f.lot or (number.startswith(f.park_code)
                                   and number[len(f.park_code):] in f.slots)

    def _slot_for(self, number):
        """(slot, None) for the slot the number asks, the first free one for
        the lot, or (None, (status, reason))."""
        f = self.settings
        if number == f.lot:
            for slot in f.slots:
                if slot not in self.slots:
                    return slot, None
            self.counters["lot_full"] += 1
            return None, (486, "Park Lot Full")
        slot = number[len(f.park_code):]
        if slot in self.slots:
            return None, (486, "Park Slot Taken")
        return slot, None

    def park(self, slot, session, station, parker, now):
        ident = session.remote_identity
        num = station.extension if station is not None else ident[0]
        p = Parked(self, slot, session, station, parker, num, ident[1])
        self.slots[slot] = p
        b2b = self.b2b
        if station is not None:        # a parked phone is in a call (busy, BLF)
            b2b.active[station.name] = b2b.active.get(station.name, 0) + 1
        try:
            p.timer = b2b.cs.core.call_later(self.settings.recall_ms, lambda p=p: self._recall(p))
        except Exception:
            p.timer = None              # timer table full: it stays until retrieved
        self.counters["parked"] += 1
        b2b.cs.app.log.write("info", "call server: %s parked at %s" % (num or "anonymous", slot))
        return p

    def free(self, p, why):
        if self.slots.get(p.slot) is not p:
            return
        del self.slots[p.slot]
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        if p.station is not None:
            self.b2b.release_station(p.station)
        if why == "parked party hung up":
            self.counters["abandoned"] += 1

    # -- parking
    def park_by_transfer(self, call, s, other, other_st, me, sub):
        """transfer.refer's act for a REFER to the lot or park-code + slot."""
        number = _user(sub.target)
        slot, err = self._slot_for(number)
        now = self.b2b.cs.now()
        if slot is None:
            sub.final(err[0], now, phrase=err[1])
            return
        self._take_from(call, other, slot)
        self.park(slot, other, other_st, me, now)
        sub.final(200, now, phrase="Parked At " + slot)
        if s.state == CONFIRMED:
            _Leaving(self.b2b, s)

    def _take_from(self, call, other, slot):
        """call ends; its party `other` is left alone (it goes to `slot`)."""
        # call accounting: the record ends as parked at the slot (docs/cdr.md)
        self.b2b.cs.app.calls.redirected(getattr(call, "cdr", None), "parked", slot)
        call.cdr_pinned = True
        call.xfer = None
        call.legs = []
        if other is call.a:
            call.a = call.b
        call.b = None
        call.end("parked")

    def park_by_code(self, sreq, number, caller):
        """park-code + slot (or the lot) dialled by a station: park the other
        party of its call on hold.  -> (status, reason) for the code call."""
        if caller is None:
            return 403, "Park Only From Stations"
        held = None
        for c in self.b2b.calls:
            if c.state == "connected" and c.xfer is None and c.b is not None and \
                    caller in (c.caller, c.callee):
                held = c
                break
        if held is None:
            return 481, "No Held Call To Park"
        slot, err = self._slot_for(number)
        if slot is None:
            return err
        if caller is held.caller:
            mine, other, other_st = held.a, held.b, held.callee
        else:
            mine, other, other_st = held.b, held.a, held.caller
        self._take_from(held, other, slot)
        self.park(slot, other, other_st, caller, self.b2b.cs.now())
        mine.hangup(self.b2b.cs.now())     # the parker's held leg: the party is in the slot
        return 480, "Parked At " + slot

    # -- retrieving
    def retrieve(self, sreq, slot, caller, caller_num, caller_name, flow):
        b2b = self.b2b
        p = self.slots.get(slot)
        if p is None or p.session.state != CONFIRMED:
            self.counters["empty_slot"] += 1
            sreq.respond(404, "Slot Empty")
            return
        from firmware.voice.handover import accept
        b2b.next_id += 1
        call = Call(b2b, sreq, caller, caller_num, caller_name, None, slot)
        a = accept(b2b.cs.ua, sreq, call)
        a.flow = flow
        call.a = a
        call.body = fix_sdp(a.remote_body, _public_of(flow))
        if not call.body:
            a.reject(488, "SDP Offer Required")
            call.state = "ended"
            return
        self.free(p, "retrieved")
        self.counters["retrieved"] += 1
        parked = p.session
        call.callee = p.station
        call.b = parked
        call.legs = [parked]
        parked.owner = call
        b2b._admit(call, ring=False)

        def done(status):
            if call.state == "ended":
                return
            if not 200 <= status < 300 or a.state == "terminated":
                a.reject(480)
                parked.bye(b2b.cs.now())
                call.end("retrieve failed %d" % status)
                return
            if a.answer(fix_sdp(parked.remote_body, _public_of(parked.flow))) is None:
                parked.bye(b2b.cs.now())
                call.end("retriever gone")
                return
            call.answered = b2b.cs.now()
            b2b.counters["answered"] += 1
            call._state("connected")

        if not parked.reinvite(sendrecv(call.body), b2b.cs.now(), done):
            a.reject(480)
            call.end("parked party gone")

    # -- recall
    def _recall(self, p):
        p.timer = None
        if self.slots.get(p.slot) is not p:
            return
        self.free(p, "recall")
        b2b = self.b2b
        s = p.session
        if p.parker is None or s.state != CONFIRMED:
            s.bye(b2b.cs.now())
            return
        self.counters["recalled"] += 1
        xc = XferCall(b2b, None, None, s, p.station, p.parker, None)
        s.owner = xc
        b2b._admit(xc, ring=False)
        xc.recall()

    # -- feature codes (B2bua.incoming hook)
    def take(self, sreq, number, caller, caller_num, caller_name, flow):
        """A new call to a park number: True once answered here."""
        f = self.settings
        if f is None or not f.slots:
            return False
        if number in f.slots:
            self.retrieve(sreq, number, caller, caller_num, caller_name, flow)
            return True
        rc = f.retrieve_code
        if number.startswith(rc) and number[len(rc):] in f.slots:
            self.retrieve(sreq, number[len(rc):], caller, caller_num, caller_name, flow)
            return True
        if self.is_lot(number):
            st, reason = self.park_by_code(sreq, number, caller)
            peer = getattr(sreq, "peer", None)     # an FXS port's half of a local pair
            if st == 480 and peer is not None:
                peer.feature_done = True            # the port plays the confirmation tone
            sreq.respond(st, reason)
            return True
        return False

    def show(self):
        f = self.settings
        if f is None or not f.slots:
            return "call park is not configured"
        from firmware.textfmt import table
        now = self.b2b.cs.now()
        rows = [("Slot", "Party", "Parked by", "Parked", "Recall in")]
        for slot in f.slots:
            p = self.slots.get(slot)
            if p is None:
                continue
            left = max(0, f.recall_ms - (now - p.since)) // 1000
            rows.append((slot, p.number or "anonymous",
                         p.parker.extension if p.parker is not None else "-",
                         "%ds ago" % ((now - p.since) // 1000), "%ds" % left))
        head = "Park lot %s, slots %s-%s: %d of %d taken" % (
            f.lot, f.first, f.last, len(self.slots), len(f.slots))
        if len(rows) == 1:
            return head
        return head + "\n" + table(rows)

    def statistics(self):
        return [("park " + k.replace("_", " "), v) for k, v in sorted(self.counters.items())]


def _user(uri):
    from firmware.callserver.transfer import target_number
    return target_number(uri) or ""
