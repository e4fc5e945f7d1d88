"""Helpers for the portable test subset, which runs on CPython and MicroPython.

A test file joins the subset by carrying the marker line `# portable: micropython`
near its top.  Such files use plain asserts and argument-less `test_*`
functions, and import nothing from pytest; `tools/mpytest.py` runs them under
the MicroPython unix port, and pytest collects them as usual.
"""

MARKER = "# portable: micropython"


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception it raises; fail if it raises nothing."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s not raised by %r" % (exc_type.__name__, fn))


def tmpdir(name, rng=None):
    """A fresh directory under /tmp (MicroPython has no tempfile module)."""
    import os
    if rng is None:
        from firmware.compat import Random
        rng = Random()
    base = "/tmp/branch-voice-test-%s-%d" % (name, rng.randbelow(1 << 30))
    os.mkdir(base)
    return base


def rmtree(path):
    """Remove a directory tree (MicroPython has no shutil)."""
    import os
    for name in os.listdir(path):
        p = path + "/" + name
        if os.stat(p)[0] & 0x4000:
            rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)
