"""Every pin lives in versions.py with a Renovate marker; the chart specs are exact versions."""

from __future__ import annotations

import json
import re

import versions
from stacks.loader import ROOT

PIN = re.compile(r'^([A-Z0-9_]+) = "([^"]+)"', re.M)


def test_every_pin_has_a_renovate_marker_that_renovate_reads():
    lines = (ROOT / "versions.py").read_text().splitlines()
    manager = json.loads((ROOT / "renovate.json").read_text())["customManagers"][0]
    patterns = [re.compile(m.replace("(?<", "(?P<")) for m in manager["matchStrings"]]
    pins = [i for i, line in enumerate(lines) if PIN.match(line)]
    assert len(pins) >= 10
    for i in pins:
        assert lines[i - 1].startswith("# renovate: datasource="), f"no renovate marker above: {lines[i]}"
        assert any(p.search(lines[i - 1] + "\n" + lines[i]) for p in patterns), f"renovate cannot read: {lines[i]}"


def test_versions_are_exact():
    for name, value in vars(versions).items():
        if name.isupper() and isinstance(value, str) and not name.endswith("_REPO"):
            assert value not in ("latest", "main", "master", "*"), name
            assert not value.startswith(("^", "~", ">", "<")), name
    for spec in versions.CHARTS.values():
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", spec.version), spec


def test_tenant_matrix_is_within_what_the_providers_support():
    for talos_minor, k8s_minors in versions.TENANT_VERSION_MATRIX.items():
        # CACPPT v0.5.12 stops at Talos 1.12 / Kubernetes 1.35.
        assert tuple(map(int, talos_minor.split("."))) <= (1, 12)
        assert all(tuple(map(int, m.split("."))) <= (1, 35) for m in k8s_minors)


def test_images_on_a_moving_tag_are_pinned_by_digest_and_renovate_keeps_the_digest():
    """A tag that is not a full x.y.z release (BIND's "9.20" is rebuilt for every 9.20.x) is
    no pin: such images carry a digest, and Renovate's pinDigests covers them."""
    lines = (ROOT / "versions.py").read_text().splitlines()
    rules = json.loads((ROOT / "renovate.json").read_text())["packageRules"]
    pinned_by_rule = {name for r in rules if r.get("pinDigests") for name in r.get("matchPackageNames", [])}
    moving = 0
    for i, line in enumerate(lines):
        m = PIN.match(line)
        if not m or not m.group(1).endswith("_IMAGE"):
            continue
        image = m.group(2)
        ref, _, digest = image.partition("@")
        tag = ref.rsplit(":", 1)[1]
        if re.fullmatch(r"v?\d+\.\d+\.\d+", tag):
            continue
        moving += 1
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{m.group(1)}: moving tag {tag!r} without digest"
        dep = re.search(r"depName=(\S+)", lines[i - 1]).group(1)
        assert dep in pinned_by_rule, f"{m.group(1)}: no pinDigests rule for {dep} in renovate.json"
    assert moving >= 1  # BIND9_IMAGE
    assert "@sha256:" in versions.BIND9_IMAGE
