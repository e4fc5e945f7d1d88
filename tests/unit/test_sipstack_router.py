# portable: micropython
"""The one router (firmware/sipstack/router.py): an ordered table of modules
with explicit priorities; the first module that takes a request owns it."""
from tests.portable import raises
from firmware.sipstack.router import Router, Module, RouterError


class _Req:
    def __init__(self, method):
        self.method = method


def test_modules_are_offered_requests_in_priority_order_until_one_takes_it():
    r = Router()
    seen = []
    r.add(Module("late", 90, ("INVITE", "OPTIONS"), take=lambda s: seen.append("late") or True))
    r.add(Module("early", 20, ("INVITE",), take=lambda s: seen.append("early") or False))
    r.add(Module("middle", 40, ("INVITE",), take=lambda s: seen.append("middle") or s.method == "INVITE"))
    assert [m.name for m in r.modules] == ["early", "middle", "late"]
    assert r.route(_Req("INVITE")).name == "middle" and seen == ["early", "middle"]
    assert r.route(_Req("OPTIONS")).name == "late"
    assert r.route(_Req("BYE")) is None and not r.handles("BYE")
    assert r.methods() == ["INVITE", "OPTIONS"]
    assert r.taken == {"early": 0, "middle": 1, "late": 1} and r.declined["early"] == 1
    text = r.show()
    assert text.index("early") < text.index("middle") < text.index("late"), text


def test_priorities_and_names_are_unique_and_screens_run_first():
    r = Router()
    r.add(Module("a", 10, ("INVITE",)))
    assert raises(RouterError, r.add, Module("b", 10, ("BYE",)))
    assert raises(RouterError, r.add, Module("a", 11, ("BYE",)))
    r.add(Module("gate", 5, (), screen=lambda msg, src: "drop" if src == "bad" else None))
    assert r.screen(None, "bad") == "drop" and r.screen(None, "good") is None
    r.remove("gate")
    assert r.screen(None, "bad") is None and r.get("gate") is None
