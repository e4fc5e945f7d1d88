# portable: micropython
"""The sans-I/O line editor: keys, history, help and completion."""
from firmware.lineedit import LineEditor, format_help, common_prefix

WORDS = [("show", "Show information"), ("set", "Set a parameter"), ("configure", "Enter configuration mode")]


def _complete(text):
    i = text.rfind(" ")
    part = text[i + 1:]
    if i >= 0:
        return [("version", "Show version"), ("<[Enter]>", "Execute")] if "version".startswith(part) else []
    return [w for w in WORDS if w[0].startswith(part)]


def _ed():
    ed = LineEditor(complete=_complete)
    ed.start("> ")
    ed.take_output()
    return ed


def _type(ed, data):
    ev = ed.feed(data)
    return ev, ed.take_output()


def test_plain_line_echo_and_crlf():
    ed = _ed()
    ev, out = _type(ed, b"show\r\n")
    assert ev == ("line", "show") and out == b"show\r\n"
    ed.start("> ")
    assert ed.feed(b"") is None      # the LF of CRLF was swallowed
    ev, _ = _type(ed, b"x\n")
    assert ev == ("line", "x")


def test_cursor_keys_insert_in_the_middle_and_home_end():
    ed = _ed()
    ev, _ = _type(ed, b"shw\x1b[D" + b"o" + b"\x1b[H" + b"X" + b"\x05" + b"!\r")
    assert ev == ("line", "Xshow!")
    ed.start("> ")
    ev, _ = _type(ed, b"abc\x02\x02\x06Z\x01Y\x1b[F.\x1b[1~<\x1b[4~>\r")
    assert ev == ("line", "<YabZc.>")


def test_kill_and_delete_keys():
    ed = _ed()
    assert _type(ed, b"set system host\x17\r")[0] == ("line", "set system ")
    ed.start("> ")
    assert _type(ed, b"abcdef\x01\x06\x06\x0b\r")[0] == ("line", "ab")
    ed.start("> ")
    assert _type(ed, b"abcdef\x15xy\r")[0] == ("line", "xy")
    ed.start("> ")
    assert _type(ed, b"abc\x7f\x08d\r")[0] == ("line", "ad")
    ed.start("> ")
    assert _type(ed, b"abc\x01\x04\x1b[3~\r")[0] == ("line", "c")


def test_ctrl_c_abandons_the_line():
    ed = _ed()
    ev, out = _type(ed, b"junk\x03")
    assert ev == ("interrupt",) and out.endswith(b"^C\r\n")


def test_history_is_bounded_and_browsable():
    ed = LineEditor(history_max=3)
    for i in range(5):
        ed.start("> ")
        ed.feed(b"cmd%d\r" % i)
    assert ed.history == ["cmd2", "cmd3", "cmd4"]
    ed.start("> ")
    assert ed.feed(b"\x1b[A\x1b[A\r") == ("line", "cmd3")
    ed.start("> ")
    assert ed.feed(b"new\x10\x0e\r") == ("line", "new")   # down returns to the edited line
    ed.start("> ")
    assert ed.history == ["cmd4", "cmd3", "new"]
    assert ed.feed(b"\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\r") == ("line", "cmd4")


def test_question_mark_lists_completions_and_redisplays():
    ed = _ed()
    ev, out = _type(ed, b"s?")
    assert ev is None
    text = out.decode()
    assert "Possible completions:" in text and "show" in text and "Set a parameter" in text
    assert text.endswith("> s")
    assert _type(ed, b'et "a?b"\r')[0] == ("line", 'set "a?b"')  # literal inside quotes


def test_tab_completes_unique_words_and_lists_ambiguous_ones():
    ed = _ed()
    ev, out = _type(ed, b"con\t")
    assert ed.buf == "configure " and out == b"configure "
    _type(ed, b"v\t")
    assert ed.buf == "configure version "
    ed.start("> ")
    ev, out = _type(ed, b"s\t")
    assert ed.buf == "s" and b"show" in out and b"set" in out


def test_no_echo_for_passwords_and_line_bound():
    ed = LineEditor(max_line=8)
    ed.start("Password:", echo=False)
    ev = ed.feed(b"secret\r")
    assert ev == ("line", "secret") and b"secret" not in ed.take_output()
    assert ed.history == []
    ed.start("> ")
    ev = ed.feed(b"0123456789\r")
    assert ev == ("line", "01234567") and b"\x07" in ed.take_output()


def test_typed_ahead_bytes_wait_for_the_next_prompt():
    ed = _ed()
    assert ed.feed(b"one\rtwo\r") == ("line", "one")
    ed.start("> ")
    assert ed.feed(b"") == ("line", "two")


def test_helpers():
    assert common_prefix(["check", "confirmed", "comment"]) == "c"
    assert common_prefix(["compare", "count"]) == "co"
    assert format_help([]) == "No valid completions"
    assert format_help([("a", "x"), ("bbb", "")]) == "Possible completions:\n  a    x\n  bbb"
