"""docs/config.md is generated from the schema and must be up to date."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_docs_config_md_matches_the_schema():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gendocs.py"), "--check"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_statement_is_documented_with_its_range_and_default():
    with open(os.path.join(ROOT, "docs", "config.md")) as f:
        text = f.read()
    assert "| `services convergence-services sip port <1..65535>` | port 1..65535 | `5060` |" in text
    assert "`system host-name <hostname>`" in text
    assert "`services convergence-services service-class <name> dscp-rtp <0..63\\|ef\\|afNN\\|csN>`" in text
