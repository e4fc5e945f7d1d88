"""Trial of tests/interop/baresip.py against the kamailio reference: two
baresip phones register (digest) to kamailio, 2000 calls 2001, 2001 answers,
2000 holds and resumes, 2001 hangs up; then the other way round with the
caller hanging up.  Exits 0 and prints "baresip-kamailio: ok" when all went
as expected.

    .venv/bin/python bench/refs/baresip_kamailio.py
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from refservers import Kamailio  # noqa: E402
from tests.interop.baresip import Baresip  # noqa: E402

DOMAIN = "branch.example.com"


def call(a, b, caller_hangs_up):
    a.dial("sip:%s@%s" % (b.user, DOMAIN))
    inc = b.wait_event("CALL_INCOMING")
    assert inc["peeruri"] == a.aor, inc
    a.wait_event("CALL_RINGING")
    b.answer()
    a.wait_event("CALL_ESTABLISHED")
    b.wait_event("CALL_ESTABLISHED")
    a.hold_and_resume(b)
    (a if caller_hangs_up else b).hangup()
    a.wait_event("CALL_CLOSED")
    b.wait_event("CALL_CLOSED")


def main():
    t0 = time.monotonic()
    with Kamailio(domain=DOMAIN) as k:
        a = Baresip("2000", "Secret-2000", k.port, domain=DOMAIN)
        b = Baresip("2001", "Secret-2001", k.port, domain=DOMAIN)
        try:
            a.wait_registered()
            b.wait_registered()
            call(a, b, caller_hangs_up=False)
            call(b, a, caller_hangs_up=True)
            assert "2000" in k.rpc("ul.dump") and "2001" in k.rpc("ul.dump")
        except BaseException:
            print("--- 2000 log\n%s\n--- 2001 log\n%s\n--- kamailio log\n%s" % (
                a.tail(), b.tail(), k.tail()))
            raise
        finally:
            a.close()
            b.close()
        left = k.rpc("ul.dump")
        assert "sip:2000@" not in left and "sip:2001@" not in left, \
            "quit did not unregister:\n" + left
    print("baresip-kamailio: ok in %.1f s" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
