"""pytest for the simulation tests: the report of a failing test names the
seed of every SimNetwork it built (tests/sim/simnet.py take_seeds), so that
any failure, in whatever helper it was raised, can be replayed from its seed."""
import pytest

from tests.sim import simnet


def pytest_runtest_setup(item):
    simnet.take_seeds()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call":
        return
    seeds = simnet.take_seeds()
    if rep.failed and seeds:
        rep.sections.append(("simulation seed", "replay with seed %s" % (
            ", ".join(str(s) for s in seeds))))
