"""Typed errors of the SIP message layer.

    SipError            base of every error raised by sip/
    SipParseError       malformed input (message, header, URI); .status is the
                        response code a UAS should answer with (400, 505, 513),
                        .reason_phrase its phrase, .reason what was wrong and
                        .where where ("header line 5", "Request-URI" ...).
                        A malformed *response* is dropped, not answered.
    SdpError            malformed or unacceptable SDP; .status 488 or 400.

The parser guarantees that no other exception escapes it for any input bytes.
"""

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 417: "Unknown Resource-Priority", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity", 430: "Flow Failed",
    433: "Anonymity Disallowed", 436: "Bad Identity-Info", 437: "Unsupported Certificate",
    438: "Invalid Identity Header", 439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded", 469: "Bad Info Package", 470: "Consent Needed",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete",
    485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending",
    493: "Undecipherable", 494: "Security Agreement Required",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable", 607: "Unwanted", 608: "Rejected",
}


def reason_phrase(status):
    """Default reason phrase for a status code (class default when unknown)."""
    p = REASON_PHRASES.get(status)
    if p is None:
        p = REASON_PHRASES.get((status // 100) * 100, "Unknown")
    return p


class SipError(Exception):
    """Base class of sip/ errors."""


class SipParseError(SipError):
    """Malformed SIP input.  str(e) reads "<reason> at <where>"."""

    def __init__(self, reason, where=None, status=400, phrase=None):
        self.reason = reason
        self.where = where
        self.status = status
        self.reason_phrase = phrase or reason_phrase(status)
        if where:
            msg = "%s at %s" % (reason, where)
        else:
            msg = reason
        super().__init__(msg)


class SdpError(SipError):
    """Malformed SDP (status 400) or no acceptable media (status 488)."""

    def __init__(self, reason, status=488):
        self.reason = reason
        self.status = status
        self.reason_phrase = reason_phrase(status)
        super().__init__(reason)
