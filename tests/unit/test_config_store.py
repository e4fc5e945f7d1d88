# portable: micropython
"""Crash safety of the configuration on flash: power is cut after every byte
and every file operation of a commit, then the appliance boots again on what
the flash kept; the configuration must be exactly the old or the new one,
and the rollback history must still load."""
from firmware.config import store as ST
from firmware.config.schema import ConfigError
from firmware.config.tree import render_set
from tests.portable import raises
from tests.unit.test_config_support import FakeApp, MemFlash, PowerCut

OLD = ["set system host-name old-branch", "set system domain-name old.example",
       "set services convergence-services service-class voice dscp-rtp ef",
       "set services convergence-services sip service-class voice"]
NEW = ["set system host-name new-branch", "set system syslog level warning",
       "set services convergence-services sip port 5070",
       "set services convergence-services service-class voice dscp-sip cs3"]


def _prepared(generations):
    """Flash files after `generations` commits, the last one being OLD."""
    if not generations:
        return {}, []
    app = FakeApp()
    for g in range(generations - 1):
        app.conf("set system host-name h%d" % g, "commit")
    app.conf(*OLD)
    assert app.cli("commit") == "commit complete"
    return dict(app.flash.files), render_set(app.config.committed.tree)


def _commit_new(files, budget):
    """Commit NEW on flash that dies after `budget` units; returns
    (committed, units used) — committed False if the power went first."""
    app = FakeApp(MemFlash(files))
    app.conf(*NEW)
    app.flash.budget = budget
    try:
        out = app.cli("commit")
    except PowerCut:
        return False, app.flash.used
    return out == "commit complete", app.flash.used


def _boot(files):
    return FakeApp(MemFlash(files))


def _cut_everywhere(generations):
    files, old = _prepared(generations)
    ok, total = _commit_new(dict(files), None)
    assert ok
    new_app = FakeApp(MemFlash(files))
    new_app.conf(*NEW)
    new = render_set(new_app.config.candidate)
    seen_new = False
    points = 0
    for budget in range(total + 1):
        survivor = _commit_survivor(files, budget)
        app = _boot(survivor)
        got = render_set(app.config.committed.tree)
        assert got == old or got == new, (budget, got)
        if got == new:
            seen_new = True
        else:
            assert not seen_new, "went back to the old config at cut %d" % budget
        # rollback 1 is the old configuration once the new one is in
        if got == new and old:
            assert app.cli("configure") and app.cli("rollback 1") == "load complete"
            assert render_set(app.config.candidate) == old
        # and the appliance can commit again on what the cut left
        app.config.mode = "configure"
        assert app.cli("set system host-name after-cut") == ""
        assert app.cli("commit") == "commit complete"
        assert _boot(dict(app.flash.files)).hostname == "after-cut"
        points += 1
    assert seen_new
    return points, total


def _commit_survivor(files, budget):
    flash = MemFlash(dict(files), budget=budget)
    app = FakeApp(MemFlash(dict(files)))
    app.conf(*NEW)
    app.config.store.flash = flash
    try:
        app.cli("commit")
    except PowerCut:
        pass
    return flash.files


def test_power_cut_at_every_byte_of_the_first_commit_from_factory_default():
    points, total = _cut_everywhere(0)
    assert points == total + 1 and total > 200


def test_power_cut_at_every_byte_of_a_commit_over_a_previous_one():
    points, total = _cut_everywhere(1)
    assert points == total + 1 and total > 300


def test_power_cut_at_every_byte_with_a_full_rollback_history_being_pruned():
    points, total = _cut_everywhere(ST.MAX_ROLLBACK + 1)
    assert points == total + 1 and total > 300


def test_a_renamed_but_torn_or_corrupted_file_falls_back_to_the_previous_commit():
    # a filesystem may persist the rename before the data: the newest file is
    # then any prefix of itself, or has a damaged byte
    files, old = _prepared(3)
    ok, _ = _commit_new(files, None)
    app = FakeApp(MemFlash(dict(files)))
    app.conf(*NEW)
    app.cli("commit")
    names = [n for n in app.flash.files if n not in files]
    assert len(names) == 1
    newest = app.flash.files[names[0]]
    step = 1
    for k in range(0, len(newest), step):
        torn = dict(app.flash.files)
        torn[names[0]] = newest[:k]
        assert render_set(_boot(torn).config.committed.tree) == old, k
    for k in range(0, len(newest), 7):
        bad = dict(app.flash.files)
        b = bytearray(newest)
        b[k] ^= 0x20
        bad[names[0]] = bytes(b)
        assert render_set(_boot(bad).config.committed.tree) == old, k


def test_store_round_trip_and_limits():
    flash = MemFlash()
    st = ST.Store(flash, max_rollback=3, max_bytes=400)
    for i in range(6):
        st.save("set system host-name h%d" % i, {"ms": i, "user": "root", "comment": "c%d" % i})
    recs = st.records()
    assert [r[0] for r in recs] == [6, 5, 4, 3]
    assert recs[0][2] == "set system host-name h5\n" or recs[0][2].startswith("set system host-name h5")
    assert recs[0][1]["comment"] == "c5" and recs[0][1]["ms"] == 5
    assert st.rollback(3)[0] == 3 and st.rollback(4) is None
    e = raises(ConfigError, st.save, "x" * 500, {})
    assert "more than the 400 bytes" in str(e)
    assert st.latest()[0] == 6      # nothing was written
    flash.files["c.7.tmp"] = b"partial"
    flash.files["c.99"] = b"garbage"
    st.cleanup()
    assert "c.7.tmp" not in flash.files
    assert st.latest()[0] == 6
    assert st.save("set system host-name z", {}) == 100
    assert "c.99" not in flash.files    # the torn file is removed once a newer one is safe


def test_decode_rejects_bad_trailers():
    data = ST.encode(4, "set system host-name a", {"ms": 1})
    assert ST.decode(data, 4)[1].startswith("set system host-name a")
    assert ST.decode(data, 5) is None
    assert ST.decode(data[:-1], 4) is None
    assert ST.decode(data + b"x\n", 4) is None
    assert ST.decode(b"", 4) is None


def _log_text(app):
    return "\n".join(app.log.lines())


def test_a_corrupt_newest_generation_is_logged_and_shown_not_silent():
    # issue 12 item 6: the fallback names the generation used and the reason
    files, old = _prepared(3)
    newest = "c.3"
    b = bytearray(files[newest])
    b[len(b) // 2] ^= 0x20
    files[newest] = bytes(b)
    app = _boot(files)
    assert render_set(app.config.committed.tree) == render_set(_boot(dict(
        (k, v) for k, v in files.items() if k != newest)).config.committed.tree)
    log = _log_text(app)
    assert "generation 3 is unusable: CRC or length mismatch" in log, log
    assert "booted generation 2, the newest valid one" in log, log
    assert not app.config.safe_state
    out = app.cli("show system commit")
    assert out.startswith("Boot: configuration fallback: generation 3 unusable (CRC or length "
                          "mismatch); booted generation 2, the newest valid one"), out
    # a torn one says so too
    files[newest] = files[newest][:40]
    log = _log_text(_boot(files))
    assert "generation 3 is unusable: torn: no end line" in log, log


def test_no_valid_generation_boots_a_loud_safe_state_until_a_commit():
    files, old = _prepared(2)
    for name in list(files):
        files[name] = files[name][:-3] + b"xx\n"
    app = _boot(files)
    assert app.config.committed.tree == {}
    assert app.config.safe_state
    log = _log_text(app)
    assert "generation 2 is unusable" in log and "generation 1 is unusable" in log, log
    assert "SAFE STATE: no valid configuration generation" in log, log
    out = app.cli("show system commit")
    assert out.startswith("Boot: SAFE STATE: no valid configuration generation (generation 2 "
                          "unusable (CRC or length mismatch), generation 1 unusable (CRC or "
                          "length mismatch)); booted an EMPTY configuration"), out
    app.conf("set system host-name fresh")
    assert app.cli("commit") == "commit complete"
    app.config.mode = "operational"
    assert not app.config.safe_state
    assert "left by the commit of generation 3" in app.cli("show system commit")
    assert "safe state left by the commit of generation 3" in _log_text(app)
    again = _boot(dict(app.flash.files))
    assert not again.config.safe_state and again.hostname == "fresh"


def test_a_factory_default_flash_is_no_fallback():
    app = _boot({})
    assert app.config.boot_notice is None and not app.config.safe_state
    assert "Boot:" not in app.cli("show system commit")
