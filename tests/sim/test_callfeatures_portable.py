# portable: micropython
# mpy-heapsize: 8M
"""The call features of the local call server (transfer, park, pickup) on
both interpreters: the simulation tests of tests/sim/test_transfer.py,
test_park.py and test_pickup.py that need no pytest fixture but a
directory, run here under the MicroPython unix port as well (the device
modules firmware/callserver/transfer.py, park.py, pickup.py and
features_config.py must run there)."""
from tests.portable import tmpdir, rmtree
from tests.sim import test_transfer as T
from tests.sim import test_park as P
from tests.sim import test_pickup as K


def _run(fn):
    d = tmpdir("callfeatures")
    try:
        fn(d)
    finally:
        rmtree(d)


def test_blind_transfer_and_recall():
    _run(T.test_blind_transfer_connects_the_transferee_to_the_target)
    _run(T.test_unanswered_blind_transfer_recalls_the_transferor)


def test_attended_transfer_and_replaces_refusal():
    _run(T.test_attended_transfer_joins_transferee_and_target)
    _run(T.test_replaces_naming_another_stations_dialog_is_forbidden)


def test_analog_transfers():
    _run(T.test_analog_hook_flash_attended_transfer_through_the_local_call_server)
    _run(T.test_analog_hook_flash_blind_transfer_rings_the_target)


def test_park_retrieve_and_recall():
    _run(P.test_park_by_transfer_to_the_lot_and_retrieve_by_calling_the_slot)
    _run(P.test_unretrieved_call_rings_the_parker_after_the_recall_timeout)
    _run(P.test_analog_phone_parks_by_flash_and_park_code)


def test_pickup():
    _run(K.test_group_and_directed_pickup_by_sip_phones)
    _run(K.test_busy_lamp_key_picks_up_with_replaces_of_the_ringing_dialog)
