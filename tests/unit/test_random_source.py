# portable: micropython
"""Issue 12 item 1: a running appliance draws every outsider-visible value
(tags, branches, Call-IDs, nonces, salts, SSRCs) from the OS's cryptographic
source; the seeded xorshift generator is only the simulation's injection point."""
from firmware import cli, compat
from firmware.app import Appliance
from firmware.sched import VirtualClock


def _opts(*extra):
    return cli.parse(["--board", "sim", "--state", "/tmp/rng-test-state", "--console", "none",
                      "--sip-port", "0"] + list(extra))


def test_a_booted_appliance_does_not_use_the_seeded_generator():
    # what `python -m firmware --seed 7` builds (firmware/__main__.py: Appliance(opts))
    app = Appliance(_opts("--seed", "7"))
    assert not isinstance(app.rng, compat.Random)
    assert isinstance(app.rng, compat.SystemRandom)
    seeded = compat.Random(7)
    mine = [app.rng.token(6) for _ in range(8)]
    theirs = [seeded.token(6) for _ in range(8)]
    assert not set(mine) & set(theirs)
    # two appliances given the same seed do not draw the same values either
    other = Appliance(_opts("--seed", "7"))
    assert other.rng.token(16) != app.rng.token(16)


def test_the_simulation_still_injects_a_seeded_generator():
    rng = compat.Random(7)
    app = Appliance(_opts("--seed", "7"), clock=VirtualClock(), rng=rng)
    assert app.rng is rng


def test_system_random_interface():
    r = compat.SystemRandom()
    for n in (1, 4, 6, 8, 10, 16):
        t = r.token(n)
        assert len(t) == 2 * n
        for ch in t:
            assert ch in "0123456789abcdef"
    assert r.token(16) != r.token(16)
    for _ in range(200):
        assert 0 <= r.randbelow(7) < 7
        assert 0.0 <= r.random() < 1.0
        assert 0 <= r.next64() < (1 << 64)
    assert len(r.bytes(16)) == 16


def test_system_random_reads_the_source_per_call_without_modulo_bias():
    feed = [b"\xff" * 8, b"\x00" * 7 + b"\x05"]   # the first is above the last multiple of 3
    calls = []

    def read(n):
        calls.append(n)
        return feed.pop(0)
    r = compat.SystemRandom(read)
    assert r.randbelow(3) == 2          # 0xff..ff rejected, 5 % 3
    assert calls == [8, 8]
    r = compat.SystemRandom(lambda n: bytes(range(n)))
    assert r.token(4) == "00010203"
