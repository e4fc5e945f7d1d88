"""The auto attendant (issue 14 item 10) on the virtual clock: a menu key
that cannot start a longer entry transfers at once, without waiting for the
digit timeout (one that can waits for it); with no greeting configured the
caller hears the shipped prompt made from text at build time
(prompts/aa-greeting.ul, tools/gen-prompts.py), which mkimage puts in every
image."""
import os

from firmware.media.prompt import open_prompt
from tests.sim.cs_world import CsWorld, B
from tests.sim.test_callserver_attendant import Caller, _watch, _incoming

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AA = [B + "auto-attendant extension 500", B + "auto-attendant digit-timeout 10",
      B + "auto-attendant menu 1 target 2002", B + "auto-attendant menu 2 target 2002"]


def test_a_key_that_cannot_start_a_longer_entry_transfers_at_once(tmp_path):
    w = CsWorld(tmp_path, seed=191, sip_exts=("2001", "2002"), extra=AA)
    try:
        w.register_all()
        _watch(w)
        w.phones["2002"].ring_ms = None
        caller = Caller(w, "2001")
        c = w.phones["2001"].call("500")
        w.run_until(lambda: c.state == "connected", 3000)
        w.run(300)
        t0 = w.now()
        caller.rfc4733("1")                       # no extension starts with 1
        w.run_until(lambda: _incoming(w, "2002"), 1000)
        assert w.now() - t0 < 500, w.now() - t0   # not the 10 s digit timeout
        w.phones["2001"].hangup(c)
        w.run_until(lambda: c.state == "terminated", 3000)
        caller.close()
        # "2" may begin 2001 or 2002: the attendant waits for the digit timeout
        caller = Caller(w, "2001")
        c = w.phones["2001"].call("500")
        w.run_until(lambda: c.state == "connected", 3000)
        w.run(300)
        t0 = w.now()
        caller.rfc4733("2")
        w.run_until(lambda: len(_incoming(w, "2002")) == 2, 12000)
        assert 9500 <= w.now() - t0 <= 10500, w.now() - t0
        w.phones["2001"].hangup(c)
        caller.close()
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_the_shipped_greeting_is_played_when_none_is_configured(tmp_path):
    path = os.path.join(ROOT, "prompts", "aa-greeting.ul")
    p = open_prompt(path)
    assert p.law == "ulaw"
    first = bytearray(160)
    frames = []
    while p.read_frame(first) and len(frames) < 100:
        frames.append(bytes(first))
    p.close()
    w = CsWorld(tmp_path, seed=192, sip_exts=("2001", "2002"), extra=AA)
    try:
        w.register_all()
        caller = Caller(w, "2001")
        c = w.phones["2001"].call("500")
        w.run_until(lambda: c.state == "connected", 3000)
        w.run(1000)
        caller.listen()
        got = [pk[12:] for pk in caller.heard if pk[1] & 0x7F == 0]
        assert len(got) >= 40, len(got)
        # the payloads are the prompt's frames, in order (speech, not beeps)
        i = frames.index(got[0])
        assert got[:40] == frames[i:i + 40]
        assert len(set(got[:40])) > 30                 # speech: frames differ
        w.phones["2001"].hangup(c)
        caller.close()
        w.assert_no_leaks(bindings=2)
    finally:
        w.close()


def test_every_image_ships_the_default_prompt_set():
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import mkimage
    files = dict(mkimage.payload_files("cpython", mkimage.DEFAULT_CONFIG,
                                       mkimage.DEFAULT_PROMPTS, quiet=True))
    with open(os.path.join(ROOT, "prompts", "aa-greeting.ul"), "rb") as f:
        assert files["prompts/aa-greeting.ul"] == f.read()
    for d in range(10):
        assert "prompts/digit-%d.ul" % d in files
