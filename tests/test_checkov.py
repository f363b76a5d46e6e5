"""checkov over the Kubernetes manifests the offline plan writes (build/plan/<stack>/manifests).

No HIGH or CRITICAL finding may remain unless it is suppressed in code, next to the object,
with its reason. A component suppresses a check by annotating the object it renders::

    metadata=k8s.meta.v1.ObjectMetaArgs(
        annotations={"checkov.io/skip1": "CKV_K8S_19=Cilium's agent runs the host datapath"},
    )

(``checkov.io/skip2``, ``skip3``… for more; the text after ``=`` is the reason and is
required). Helm charts are not scanned: the plan holds their values, not rendered templates.

Severities: offline (``--skip-download``, no Prisma Cloud API key) checkov reports every
severity as ``None``, so the checks we treat as HIGH/CRITICAL are listed here, with why. A
severity checkov does report (with an API key) counts too.

checkov cannot live in the program's virtualenv (checkov 3.3.30 requires ``packaging<24``,
pulumi 3.259.0 requires ``packaging>=26``): install it in its own, from requirements-checkov.txt,
and point ``CHECKOV`` at its executable (or put it on PATH). Without it these tests skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from offline.plan import write_plan
from tests.helpers.factories import stack_plan

HIGH_CRITICAL = {
    "CKV_K8S_10": "no CPU request: the scheduler cannot place the pod safely (also rule workload-resources)",
    "CKV_K8S_11": "no CPU limit (also rule workload-resources)",
    "CKV_K8S_12": "no memory request (also rule workload-resources)",
    "CKV_K8S_13": "no memory limit: one pod can exhaust a node (also rule workload-resources)",
    "CKV_K8S_14": "image tag 'latest' or missing: not reproducible (also rule pinned-images)",
    "CKV_K8S_16": "privileged container: full access to the host",
    "CKV_K8S_17": "host PID namespace: sees and signals every process of the node",
    "CKV_K8S_18": "host IPC namespace",
    "CKV_K8S_19": "host network namespace",
    "CKV_K8S_20": "allowPrivilegeEscalation not disabled",
    "CKV_K8S_21": "object in the default namespace, outside the platform's namespaces and policies",
    "CKV_K8S_23": "container may run as root",
    "CKV_K8S_27": "container runtime socket mounted: root on the node",
    "CKV_K8S_28": "NET_RAW not dropped: spoofing inside the cluster network",
    "CKV_K8S_39": "CAP_SYS_ADMIN: nearly root on the node",
    "CKV_K8S_49": "wildcards in a Role or ClusterRole",
    "CKV_K8S_155": "ClusterRole controlling admission webhooks",
    "CKV_K8S_156": "ClusterRole approving CertificateSigningRequests",
    "CKV_K8S_157": "Role able to bind roles",
    "CKV_K8S_158": "Role able to escalate roles",
    "CKV2_K8S_3": "impersonation rights",
    "CKV2_K8S_5": "a ServiceAccount able to read all secrets",
}
SEVERE = {"HIGH", "CRITICAL"}
NO_REASON = {"", "No comment provided"}


def checkov_command() -> list[str] | None:
    if importlib.util.find_spec("checkov") is not None:
        return [sys.executable, "-m", "checkov.main"]
    local = Path(__file__).resolve().parent.parent / ".venv-checkov" / "bin" / "checkov"
    exe = os.environ.get("CHECKOV") or (str(local) if local.exists() else None) or shutil.which("checkov")
    return [exe] if exe else None


CONTROLS = {
    # A privileged host-network DaemonSet: the scan must flag it.
    "unsuppressed.yaml": """
        apiVersion: apps/v1
        kind: DaemonSet
        metadata: {name: unsuppressed, namespace: controls}
        spec:
          selector: {matchLabels: {app: a}}
          template:
            metadata: {labels: {app: a}}
            spec:
              hostNetwork: true
              containers:
                - name: c
                  image: registry.example.org/agent:1.0.0
                  securityContext: {privileged: true}
    """,
    # The same, suppressed in code with reasons: the scan must report the skips.
    "suppressed.yaml": """
        apiVersion: apps/v1
        kind: DaemonSet
        metadata:
          name: suppressed
          namespace: controls
          annotations:
            checkov.io/skip1: CKV_K8S_16=the eBPF datapath needs a privileged agent
            checkov.io/skip2: CKV_K8S_19=the agent programs the host network
        spec:
          selector: {matchLabels: {app: b}}
          template:
            metadata: {labels: {app: b}}
            spec:
              hostNetwork: true
              containers:
                - name: c
                  image: registry.example.org/agent:1.0.0
                  securityContext: {privileged: true}
    """,
}


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    command = checkov_command()
    if command is None:
        pytest.skip("checkov is not installed: python -m venv .venv-checkov && .venv-checkov/bin/pip install "
                    "-r requirements-checkov.txt, then export CHECKOV=$PWD/.venv-checkov/bin/checkov "
                    "(it cannot share the program's venv: checkov needs packaging<24, pulumi packaging>=26)")
    root = tmp_path_factory.mktemp("checkov")
    for stack in ("prod", "dev"):
        plan_dir = root / "plans" / stack
        write_plan(stack_plan(stack), plan_dir)
        shutil.copytree(plan_dir / "manifests", root / "scan" / stack)
    (root / "scan" / "controls").mkdir()
    for name, text in CONTROLS.items():
        (root / "scan" / "controls" / name).write_text(textwrap.dedent(text).lstrip())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_"))}
    proc = subprocess.run(
        [*command, "-d", str(root / "scan"), "--framework", "kubernetes", "--output", "json", "--skip-download",
         "--compact"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: some check failed
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"].get("failed_checks", [])]
    skipped = [c for r in reports for c in r["results"].get("skipped_checks", [])]
    return {"failed": failed, "skipped": skipped, "summary": [r["summary"] for r in reports]}


def in_dir(check: dict[str, Any], directory: str) -> bool:
    return check["file_path"].lstrip("/").startswith(f"{directory}/")


def reason(check: dict[str, Any]) -> str:
    return str((check.get("check_result") or {}).get("suppress_comment") or "").strip()


def is_severe(check: dict[str, Any]) -> bool:
    return check["check_id"] in HIGH_CRITICAL or str(check.get("severity") or "").upper() in SEVERE


def test_scan_flags_an_unsuppressed_privileged_workload(scan):
    ids = {c["check_id"] for c in scan["failed"] if in_dir(c, "controls") and "unsuppressed" in c["resource"]}
    assert {"CKV_K8S_16", "CKV_K8S_19"} <= ids


def test_scan_honours_suppressions_written_in_code(scan):
    skips = {c["check_id"]: reason(c) for c in scan["skipped"] if in_dir(c, "controls")}
    assert skips == {"CKV_K8S_16": "the eBPF datapath needs a privileged agent",
                     "CKV_K8S_19": "the agent programs the host network"}
    failed = {c["check_id"] for c in scan["failed"] if in_dir(c, "controls") and "suppressed" == c["resource"].split(".")[2]}
    assert not failed & {"CKV_K8S_16", "CKV_K8S_19"}


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_rendered_manifests_have_no_high_or_critical_finding(scan, stack: str):
    assert any(s["resource_count"] for s in scan["summary"])
    severe = [f"{c['check_id']} {c['resource']} ({HIGH_CRITICAL.get(c['check_id'], c.get('severity'))})"
              for c in scan["failed"] if in_dir(c, stack) and is_severe(c)]
    assert severe == [], "HIGH/CRITICAL checkov findings: fix them or suppress them in code with a reason"


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_every_suppression_in_rendered_manifests_has_a_reason(scan, stack: str):
    unexplained = [f"{c['check_id']} {c['resource']}" for c in scan["skipped"]
                   if in_dir(c, stack) and reason(c) in NO_REASON]
    assert unexplained == []
