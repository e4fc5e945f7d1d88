# portable: micropython
"""Every configuration statement and every console command, in both modes,
has help text (what `?` and `help` show)."""
from firmware.config import schema as S
from tests.unit.test_config_support import FakeApp


def _walk(node, path, out):
    for c in getattr(node, "children", ()):
        here = path + [c.name]
        if not (c.help or "").strip():
            out.append(" ".join(here))
        _walk(c, here, out)
    return out


def test_every_statement_has_help():
    FakeApp()       # loads every feature's statements
    assert _walk(S.ROOT, [], []) == []


def test_every_command_has_help_in_both_modes():
    from firmware import app as appmod, hardware
    a = FakeApp()
    appmod._register_core_commands(a.commands)
    hardware.register_commands(a.commands)
    hardware.register_sim_commands(a.commands)
    for reg in (a.commands, a.config.commands):
        missing = [" ".join(k) for k, v in reg.commands.items() if not (v[1] or "").strip()]
        assert missing == [], missing
    assert len(a.config.commands.commands) >= 20 and len(a.commands.commands) >= 15
