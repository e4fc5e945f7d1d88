import signal

import pytest


def pytest_configure(config):
    """tools/test-all bounds this tier with `timeout` (SIGTERM): turned into
    KeyboardInterrupt, it lets the fixtures delete their namespaces and end
    Kamailio, SIPp and the appliance instead of leaving them behind."""
    def interrupted(signum, frame):
        raise KeyboardInterrupt("SIGTERM")
    signal.signal(signal.SIGTERM, interrupted)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """item.rep_call: the tests' autouse fixture prints the rig's state when
    the test body failed."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def _explain(request):
    """On a failure, the appliance's and Kamailio's view go in the report
    (for tests that use a `rig` fixture: tests/netns/rig.py Rig)."""
    rig = request.getfixturevalue("rig") if "rig" in request.fixturenames else None
    yield
    rep = getattr(request.node, "rep_call", None)
    if rig is not None and rep is not None and rep.failed:
        print(rig.diagnostics())
