"""The producers' side of the call-event stream: what the call server's
B2BUA and the analog gateway report, read from their own objects, so that
their hooks stay one line each (docs/cdr.md).

    callserver_refused(cs, sreq, caller, caller_num, number, status, reason)
    callserver_changed(cs, call)          from B2bua.changed
    callserver_ended(cs, call, why)       from B2bua.ended
    gateway_started(agent, leg, calling, called)   an FXS/FXO leg through the peer
    gateway_event(agent, leg, event, value)        from the agents' leg_event
    gateway_closed(agent, leg)                     the leg's port side let go
    gateway_refused(gw, offer, status, reason, dst)

A leg to an analog port of a call through the local call server is the
B2BUA's call (one record); the gateway adds only the media counters of its
port to it.  Only legs through the peer call server are the gateway's own.
"""
from firmware.voice.handover import is_local

CODECS = {0: "PCMU", 8: "PCMA", 9: "G722", 18: "G729"}


def _station_end(st):
    port = getattr(st, "fxs_port", None)
    if port is not None:
        return ("fxs", port)
    return ("station", st.name)


def _port_of(session):
    """(kind, port) of the gateway leg behind a local half, or None."""
    peer = getattr(session, "peer", None)
    leg = getattr(peer, "owner", None) if peer is not None else None
    agent = getattr(leg, "agent", None)
    if agent is None:
        return None
    return (agent.kind, agent.port)


def _source(caller, sreq):
    if caller is not None:
        return _station_end(caller)
    if is_local(sreq):
        return _port_of(sreq)
    src = getattr(sreq, "source", None)
    if src is not None:
        return ("trunk", "%s:%d" % (src.addr[0], src.addr[1]))
    return None


def _cid(session):
    return getattr(session, "call_id", None)


def _dialled(sreq):
    """The number as dialled: the Request-URI user, or a local pair's."""
    if is_local(sreq):
        peer = getattr(sreq, "peer", None)
        ident = getattr(peer, "remote_identity", None) if peer is not None else None
        return ident[0] if ident else None
    req = getattr(sreq, "request", None)
    if req is None:
        return None
    u = req.uri
    return u.user_plain if getattr(u, "scheme", "sip") == "sip" else u.user


def _user(uri):
    if not uri:
        return ""
    s = uri[4:] if uri.startswith("sip:") else uri
    return s.split("@")[0]


def callserver_refused(cs, sreq, caller, caller_num, number, status, reason=None):
    cs.app.calls.rejected("callserver", caller_num, number, status, reason or "",
                          _source(caller, sreq), None, _cid(getattr(sreq, "request", None)))


def _call_dst(call):
    if call.callee is not None:
        return _station_end(call.callee)
    b = call.b
    if b is not None and is_local(b):
        return _port_of(b)
    if call.group is not None:
        return ("station", "group " + call.group.name)
    return ("trunk", "")          # an outside number: the line is known once it answers


def callserver_changed(cs, call):
    calls = cs.app.calls
    rec = getattr(call, "cdr", None)
    if rec is None:
        if call.state == "ended" or call.a is None:
            return
        dialled = _dialled(call.a)
        target = getattr(call, "fwd_target", None) or call.number
        rec = call.cdr = calls.setup("callserver", call.caller_num, dialled or call.number,
                                     _source(call.caller, call.a), _call_dst(call),
                                     _cid(call.a))
        if dialled and dialled != target:
            calls.redirected(rec, "forwarded", target)   # forwarded before it rang
    _follow(calls, rec, call)
    if call.state == "ringing":
        calls.ringing(rec)
    elif call.state == "connected" and rec.answer is None:
        calls.answered(rec, _cid(call.b), _call_dst(call))


def _follow(calls, rec, call):
    """The number the call went on to: the attendant's transfer changes
    call.number and the To URI, a group's no-answer target only the To URI
    (forward-unreachable is seen at setup: the dialled number differs)."""
    if getattr(call, "cdr_pinned", False):
        return        # park or a REFER transfer named where the call went
    # a station's forward (firmware/callserver/forward.py) keeps the number
    # dialled in call.number and the To URI: where it went is call.fwd_target
    target = getattr(call, "fwd_target", None) or _user(getattr(call, "to_uri", "")) \
        or call.number
    if target and target != rec.called:
        calls.redirected(rec, "transferred" if call.number == target else "forwarded", target)


def callserver_ended(cs, call, why):
    rec = getattr(call, "cdr", None)
    if rec is None:
        return
    calls = cs.app.calls
    _follow(calls, rec, call)
    side = "caller" if why.startswith("caller") else (
        "callee" if why.startswith("callee") else "system")
    for s in (call.a, call.b):    # the media of an analog port in the call, if any
        if s is not None and is_local(s):
            peer = getattr(s, "peer", None)
            _media(calls, rec, getattr(peer, "owner", None))
    if call.answered is not None:
        if rec.answer is None:   # answered without a state change (attendant transfer)
            calls.answered(rec, _cid(call.b), _call_dst(call), call.answered)
        calls.ended(rec, 200, why, side)
        return
    status = getattr(call.a, "final_status", None) or 0
    if why.startswith("failed "):
        try:
            status = int(why[7:])
        except ValueError:
            pass
    if side == "caller":      # the caller gave up before an answer
        calls.ended(rec, status or 487, why, side, "cancelled")
        return
    calls.ended(rec, status or 500, why, side)


def _codec(rtp):
    return CODECS.get(rtp.pt, str(rtp.pt))


def _media(calls, rec, leg):
    rtp = getattr(leg, "rtp", None)
    if rtp is not None and rec is not None and (rtp.sent or rtp.received):
        calls.media(rec, _codec(rtp), rtp.sent, rtp.received, rtp.lost)


def _local_record(leg):
    """The B2BUA's record of a local call this port leg belongs to."""
    s = leg.session
    peer = getattr(s, "peer", None)
    call = getattr(peer, "owner", None) if peer is not None else None
    return getattr(call, "cdr", None)


def gateway_started(agent, leg, calling, called):
    s = leg.session
    if s is None or is_local(s):
        return
    gw = agent.gw
    srv = gw.call_server
    peer = ("peer", getattr(srv, "name", None) or srv.host) if srv is not None else None
    port = (agent.kind, agent.port)
    if leg.outgoing:
        src, dst = port, peer
    else:
        src, dst = peer, port
    leg.cdr = gw.app.calls.setup("gateway", calling, called, src, dst, _cid(s))


def gateway_event(agent, leg, event, value):
    calls = agent.gw.app.calls
    rec = getattr(leg, "cdr", None)
    if rec is None:
        if event in ("ended", "failed") and leg.session is not None and is_local(leg.session):
            _media(calls, _local_record(leg), leg)
        return
    if event == "progress":
        calls.ringing(rec)
    elif event in ("answer", "confirmed"):
        calls.answered(rec)
    elif event == "failed":
        calls.ended(rec, value or 500, "far end refused (%s)" % value,
                    "callee" if leg.outgoing else "caller")
    elif event == "ended":
        _media(calls, rec, leg)
        far = "callee" if leg.outgoing else "caller"
        if rec.answer is None and value in ("cancel", "cancelled"):
            calls.ended(rec, 487, "caller cancel", "caller", "cancelled")
            return
        st = 0 if rec.answer is not None else (getattr(leg.session, "final_status", None) or 0)
        calls.ended(rec, st, "%s %s" % (far, value), far)


def gateway_closed(agent, leg):
    """The port let the leg go (on-hook, line released, refused after
    ringing): ends a record still live, as released by the port's side."""
    calls = agent.gw.app.calls
    rec = getattr(leg, "cdr", None)
    if rec is None:
        if leg.session is not None and is_local(leg.session):
            _media(calls, _local_record(leg), leg)
        return
    if rec.end is not None:
        return
    _media(calls, rec, leg)
    side = "caller" if leg.outgoing else "callee"
    st = getattr(leg.session, "final_status", None) or 0
    if rec.answer is None and leg.outgoing:
        calls.ended(rec, 487, "caller on-hook", side, "cancelled")
        return
    calls.ended(rec, st, "%s %s" % (side, "on-hook" if agent.kind == "fxs" else "line released"),
                side)


def gateway_refused(gw, offer, status, reason, dst):
    if is_local(offer):
        return          # a call of the local call server: its record says why
    req = getattr(offer, "request", None)
    f = req.from_ if req is not None else None
    calling = (f.uri.user if f is not None else None) or "anonymous"
    called = _dialled(offer) or ""
    src = getattr(offer, "source", None)
    gw.app.calls.rejected("gateway", calling, called, status, reason or "",
                          ("peer", src.addr[0]) if src is not None else None, dst,
                          _cid(req))
