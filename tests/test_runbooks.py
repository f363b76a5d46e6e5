"""The operations runbooks: every one is linked from the README, and their links resolve."""

from __future__ import annotations

import re

from stacks.loader import ROOT

RUNBOOKS = ROOT / "docs" / "operations"
LINK = re.compile(r"\[[^\]]+\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_upgrade_and_disaster_recovery_runbooks_exist():
    assert (RUNBOOKS / "upgrades.md").is_file()
    assert (RUNBOOKS / "disaster-recovery.md").is_file()


def test_readme_links_every_runbook():
    readme = (ROOT / "README.md").read_text()
    linked = set(LINK.findall(readme))
    missing = [f"docs/operations/{p.name}" for p in sorted(RUNBOOKS.glob("*.md"))
               if f"docs/operations/{p.name}" not in linked]
    assert not missing, f"README.md does not link: {missing}"


def test_relative_links_in_runbooks_resolve():
    for page in sorted(RUNBOOKS.glob("*.md")):
        for target in LINK.findall(page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


def test_disaster_recovery_gives_a_duration_for_every_step():
    text = (RUNBOOKS / "disaster-recovery.md").read_text()
    rows = re.findall(r"^\| (\d+) \| [^|]+ \| ([^|]+) \|$", text, re.M)
    steps = re.findall(r"^### (\d+)\. ", text, re.M)
    assert [n for n, _ in rows] == steps and len(steps) >= 10
    assert all(re.search(r"\d", d) for _, d in rows)
