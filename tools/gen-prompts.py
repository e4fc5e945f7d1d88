#!/usr/bin/env python3
"""Build the default voice prompts from text, on the build host (never on
the device): espeak-ng (Debian package espeak-ng) speaks each text to a WAV,
sox converts it to 8 kHz mono G.711 u-law, written raw as prompts/NAME.ul.
mkimage ships prompts/ in every image (installed to the flash's prompts/,
where a user's own file of the same name wins).

    tools/gen-prompts.py           # rewrite prompts/ from PROMPTS below
    tools/gen-prompts.py --check   # exit 1 when a prompt is missing or unusable

The files are committed, so a build needs neither tool; rerun this after
changing a text.  Names are what the firmware opens:
    aa-greeting.ul   the auto attendant's greeting when none is configured
    digit-0..9.ul    single digits, for announcing numbers (e.g. a park slot)
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "prompts")
VOICE = "en-us"
SPEED = 150          # words per minute: clear over a phone line
MAX_BYTES = 491520   # firmware/callserver/config.py MAX_PROMPT_BYTES (60 s)

PROMPTS = {
    "aa-greeting": "Welcome. Please dial the extension you want, "
                   "or press zero for the operator.",
}
for _d, _w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven",
                         "eight", "nine")):
    PROMPTS["digit-%d" % _d] = _w


def build(name, text, tmp):
    wav = os.path.join(tmp, name + ".wav")
    subprocess.run(["espeak-ng", "-v", VOICE, "-s", str(SPEED), "-w", wav, text], check=True)
    out = os.path.join(OUT, name + ".ul")
    # -G: guard against clipping; 8 kHz mono u-law, headerless (.ul)
    subprocess.run(["sox", "-G", wav, "-r", "8000", "-c", "1", "-e", "u-law", "-b", "8",
                    "-t", "ul", out], check=True)
    return out


def check():
    bad = []
    for name in sorted(PROMPTS):
        p = os.path.join(OUT, name + ".ul")
        try:
            n = os.path.getsize(p)
        except OSError:
            bad.append("%s: missing" % p)
            continue
        if not 800 <= n <= MAX_BYTES:      # 0.1 s .. 60 s
            bad.append("%s: %d bytes" % (p, n))
    for b in bad:
        print(b)
    return 1 if bad else 0


def main(argv):
    if "--check" in argv:
        return check()
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(PROMPTS):
            out = build(name, PROMPTS[name], tmp)
            print("%s (%d bytes)" % (os.path.relpath(out, ROOT), os.path.getsize(out)))
    return check()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
