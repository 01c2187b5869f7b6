"""The docs keep up with the code: every config key and every subject is documented."""

from __future__ import annotations

import re
from pathlib import Path

from tradebus_common.config import config_paths
from tradebus_common.subjects import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = README + "".join(p.read_text() for p in sorted((ROOT / "docs").rglob("*.md")))


def test_every_config_key_is_documented():
    words = set(re.findall(r"[a-z_0-9]+", DOCS))
    missing = [p for p in sorted(config_paths()) if p.rsplit(".", 1)[-1] not in words]
    assert not missing, f"config keys with no doc (add them to README or docs/): {missing}"


def test_every_subject_is_in_the_readme_subject_map():
    missing = [s.pattern for s in CATALOGUE if f"`{s.pattern}`" not in README]
    assert not missing, f"subjects missing from the README subject map: {missing}"


def test_readme_shows_the_two_commands_and_ci_runs_the_test_one():
    assert "make run" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
