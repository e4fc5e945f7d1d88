"""The outbound proxy's calls on the call-event stream: the proxy relays
dialogs it does not own (it record-routes them), so a call is tracked by
its Call-ID from the relayed INVITE to the final response, and from there
to the BYE that passes through.  Three one-line hooks in the proxy:

    tracker = ProxyCalls(app)              # one per proxy
    tracker.request(req, upstream)         # every request relayed (after the checks)
    tracker.response(req, resp)            # every final response relayed to a request
    tracker.refused(req, status, reason)   # an INVITE refused by the proxy itself

upstream: True for a phone's request going to the peer call server (the
phone is the caller), False for the peer's request to a phone.  A re-INVITE
(To tag) is not a new call.  Calls are at most MAX_PROXY_CALLS at once (the
stream's live bound); beyond, the oldest is ended as failed
("call table full") and counted.  A dialog whose BYE never passes (a phone
that vanished) is ended as failed ("no BYE seen") by the same bound.
"""
from firmware.compat import const

MAX_PROXY_CALLS = const(128)


def _user(na):
    if na is None:
        return ""
    u = na.uri
    return (getattr(u, "user", None) or "") if u is not None else ""


class ProxyCalls:
    def __init__(self, app):
        self.app = app
        self.calls = {}         # Call-ID -> record (insertion order: oldest first)
        self.order = []
        self.counters = {"calls": 0, "table_full": 0, "refused": 0}

    def _peer(self):
        srv = self.app.control.call_server() if hasattr(self.app.control, "call_server") else None
        return ("peer", getattr(srv, "name", None) or "peer") if srv is not None else ("peer", "")

    def _drop(self, cid):
        self.calls.pop(cid, None)
        if cid in self.order:
            self.order.remove(cid)

    def request(self, req, upstream):
        cid = req.call_id
        m = req.method
        if m == "INVITE" and (req.to is None or not req.to.tag):
            if cid in self.calls:
                return                   # a retransmission or an authenticated retry
            while len(self.order) >= MAX_PROXY_CALLS:
                old = self.order[0]
                self.counters["table_full"] += 1
                self.app.calls.ended(self.calls.get(old), 500, "call table full", "system",
                                     "failed")
                self._drop(old)
            phone = ("station", _user(req.from_ if upstream else req.to))
            src, dst = (phone, self._peer()) if upstream else (self._peer(), phone)
            rec = self.app.calls.setup("proxy", _user(req.from_), _user(req.to), src, dst, cid)
            self.calls[cid] = rec
            self.order.append(cid)
            self.counters["calls"] += 1
        elif m == "BYE":
            rec = self.calls.get(cid)
            if rec is not None:
                # the phone's BYE goes upstream: the phone's side released
                caller_phone = rec.src_kind == "station"
                side = "caller" if upstream == caller_phone else "callee"
                self.app.calls.ended(rec, 0, side + " bye", side)
                self._drop(cid)
        elif m == "CANCEL":
            rec = self.calls.get(cid)
            if rec is not None and rec.answer is None:
                rec.cause = "caller cancel"

    def response(self, req, resp):
        if req.method != "INVITE" or resp.status < 200:
            if req.method == "INVITE" and resp.status in (180, 183):
                self.app.calls.ringing(self.calls.get(req.call_id))
            return
        rec = self.calls.get(req.call_id)
        if rec is None or rec.answer is not None:
            return
        if resp.status < 300:
            self.app.calls.answered(rec)
            return
        cancelled = resp.status == 487
        self.app.calls.ended(rec, resp.status, "caller cancel" if cancelled else (
            resp.reason or str(resp.status)), "caller" if cancelled else "callee",
            "cancelled" if cancelled else None)
        self._drop(req.call_id)

    def refused(self, req, status, reason=None):
        if req.method != "INVITE" or (req.to is not None and req.to.tag):
            return
        self.counters["refused"] += 1
        self.app.calls.rejected("proxy", _user(req.from_), _user(req.to), status, reason or "",
                                ("station", _user(req.from_)), self._peer(), req.call_id)
