# portable: micropython
"""The documents of message waiting, busy lamps and presence, on both
interpreters: RFC 3842 message summaries (built and parsed), RFC 4235
dialog-info and RFC 3863 PIDF."""
from firmware.voice.mwi import Mailbox, message_summary, parse_summary, MAX_COUNT
from firmware.callserver.events import dialog_info, pidf


def test_message_summary_round_trip():
    b = Mailbox()
    b.new, b.old, b.urgent_new, b.urgent_old = 3, 7, 1, 2
    body = message_summary(b, "sip:2001@branch.example.com")
    assert body == (b"Messages-Waiting: yes\r\nMessage-Account: sip:2001@branch.example.com\r\n"
                    b"Voice-Message: 3/7 (1/2)\r\n"), body
    assert parse_summary(body) == (3, 7, 1, 2)
    assert message_summary(None, "sip:x@y").startswith(b"Messages-Waiting: no\r\n")


def test_parse_summary_forms_and_bad_input():
    assert parse_summary(b"Messages-Waiting: yes\r\n") == (1, 0, 0, 0)
    assert parse_summary(b"Messages-Waiting: no\r\n") == (0, 0, 0, 0)
    assert parse_summary(b"messages-waiting: YES\nvoice-message: 2/4\n") == (2, 4, 0, 0)
    assert parse_summary(b"Voice-Message: 99999/1 (x/y)\r\n") == (MAX_COUNT, 1, 0, 0)
    assert parse_summary(b"Voice-Message: a/b\r\n") is None
    assert parse_summary(b"") is None
    assert parse_summary(b"\xff\xfe") is None
    assert parse_summary(b"Hello: world\r\n") is None


def test_dialog_info_and_pidf():
    doc = dialog_info("sip:2002@d", 4, [("call-1", "recipient", "early", "2001")], "d").decode()
    assert 'version="4" state="full" entity="sip:2002@d"' in doc
    assert ('<dialog id="call-1" direction="recipient"><state>early</state><local><identity>'
            'sip:2002@d</identity></local><remote><identity>sip:2001@d</identity></remote>'
            '</dialog>') in doc, doc
    assert dialog_info("sip:a@d", 1, [("c", "initiator", "trying", '<"x&>')], "d").find(
        b"sip:&lt;&quot;x&amp;&gt;@d") > 0
    assert b"<basic>open</basic></status><note>On the phone</note>" in pidf("sip:a@d", True, True)
    assert b"<basic>closed</basic></status><note>Offline</note>" in pidf("sip:a@d", False, True)
    assert b"<basic>open</basic></status><note>Available</note>" in pidf("sip:a@d", True, False)
