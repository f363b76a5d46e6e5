"""The README stays true: its config reference matches the model, its commands exist."""

from __future__ import annotations

import re

from stacks.loader import ROOT
from offline.reference import readme_with_reference


def test_readme_config_reference_is_generated_from_the_model():
    readme = (ROOT / "README.md").read_text()
    assert readme_with_reference(readme) == readme, "run: python -m offline.reference --write"


def test_readme_quick_start_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    setup, tests = blocks[0].strip(), blocks[1].strip()
    assert "requirements.txt" in setup and "offline.plan prod" in setup
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci
