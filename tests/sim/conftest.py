"""pytest for the simulation tests: the report of a failing test names the
seed of every SimNetwork it built (tests/sim/simnet.py take_seeds), so that
any failure, in whatever helper it was raised, can be replayed from its seed;
and no simulation test may open an OS socket (everything runs on the
SimNetwork: tests that mean to use real sockets belong in tests/system,
tests/interop or tests/unit/test_transport.py)."""
import socket
import ssl  # noqa: F401  (imported before socket.socket is replaced: it subclasses it)

import pytest

from tests.sim import simnet


class _NoSockets(Exception):
    pass


def _no_socket(*args, **kwargs):
    raise _NoSockets("a simulation test opened an OS socket: use the SimNetwork "
                     "(tests/sim/simnet.py)")


@pytest.fixture(autouse=True)
def no_os_sockets(monkeypatch):
    monkeypatch.setattr(socket, "socket", _no_socket)


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
