"""Broken stack files are rejected with their key path and a hint, without a traceback, and
before anything is registered.

Each file of tests/bad_configs/ is a whole ``Pulumi.<stack>.yaml`` document whose header names
the key path the rejection must point at (``# expect-path: ...``) and its category.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stacks.config import ConfigError
from stacks.loader import ROOT, read_stack_file
from offline import plan as plan_module
from offline.plan import run_offline

CORPUS = Path(__file__).resolve().parent / "bad_configs"
CASES = sorted(CORPUS.glob("*.yaml"))
CATEGORIES = {
    "typo", "wrong-type", "missing", "invalid-address", "overlap", "duplicate", "version", "capacity",
    "unknown-setting", "secret", "credential", "yaml", "namespace", "network", "name",
}


def header(path: Path, field: str) -> str:
    # latin-1: the corpus holds files that are not UTF-8 on purpose; the headers are ASCII.
    found = re.search(rf"^# {field}: (\S+)$", path.read_bytes().decode("latin-1"), re.MULTILINE)
    assert found, f"{path.name} has no '# {field}:' header line"
    return found.group(1)


def test_corpus_has_forty_cases_covering_every_category():
    assert len(CASES) >= 40
    assert {header(p, "category") for p in CASES} == CATEGORIES


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_config_is_rejected_with_path_and_hint_and_registers_nothing(path: Path, monitors):
    expected = header(path, "expect-path")

    with pytest.raises(ConfigError) as caught:
        # The strict loader refuses YAML-level breakage; the program refuses the rest.
        run_offline(read_stack_file(path, path.stem, source=str(path)))

    problems = caught.value.problems
    # YAML problems are located as 'file:line:column' (the header holds ':line:column').
    paths = [p.path.removeprefix(str(path)) if expected.startswith(":") and p.path.startswith(str(path)) else p.path
             for p in problems]
    assert expected in paths, [p.render() for p in problems]
    for p in problems:
        assert p.problem.strip() and p.hint.strip(), p
    text = str(caught.value)
    assert f"{expected}: " in text and "fix: " in text
    assert "Traceback" not in text
    # Validation runs before the first resource: the engine saw nothing at all (or was never
    # started, when the file could not be read).
    assert len(monitors) <= 1
    if not monitors:
        return
    assert monitors[0].registrations == {}
    assert monitors[0].invokes == []
    assert monitors[0].stack_outputs == {}


def test_clear_secret_is_not_echoed_in_the_error():
    path = next(p for p in CASES if "password-clear" in p.name)
    with pytest.raises(ConfigError) as caught:
        run_offline(read_stack_file(path, "bad"))
    assert "hunter2-in-clear" not in str(caught.value)
    assert "pulumi config set --secret --path" in str(caught.value)


# ---------------------------------------------------------------------------------------------
# The command line: exit code 2, the path on stderr, no traceback, nothing written.
# ---------------------------------------------------------------------------------------------

CLI_CASES = ["typo-node-address", "secret-repository-password-clear", "credential-ovh-application-secret",
             "yaml-deep-nesting", "yaml-latin1", "namespace-misspelled-project", "network-lb-block-zero"]


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The program (code only) in a scratch directory, where bad stack files can be dropped."""
    dest = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "venv", ".venv")
    for name in ("stacks", "components", "policy", "convergence", "offline"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("versions.py", "Pulumi.yaml"):
        shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.mark.parametrize("name", CLI_CASES)
def test_command_line_rejects_bad_stack_files(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """The command's own handling (exit status 2, the path and the fix, no traceback, nothing
    written), in this process; the command as a process: the next test and tests/test_stacks.py."""
    (src,) = [p for p in CASES if p.stem.endswith(name)]
    out = tmp_path / "out"
    assert plan_module.main([str(src), "--quiet", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert header(src, "expect-path") in captured.err, captured.err
    assert "fix:" in captured.err
    assert "Traceback" not in captured.out + captured.err
    assert not out.exists()


def test_command_line_rejects_a_stack_file_that_is_not_yaml(project_copy: Path):
    (project_copy / "Pulumi.broken.yaml").write_text("config:\n  weebo-platform:domain: {parentZone: [\n")
    proc = subprocess.run([sys.executable, "-m", "offline.plan", "broken", "--quiet"], cwd=project_copy,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "not valid YAML" in proc.stderr and "line 3" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


# ---------------------------------------------------------------------------------------------
# Parallel plan: a worker's error reaches the parent intact and ends the plan.
# ---------------------------------------------------------------------------------------------

MARKER = "=== worker failure: "
WORKER_FAILS = """
import sys
import offline.plan as P
from stacks.config import ConfigError, ConfigProblem

KIND = None

def failing(stack_file, preview=True, tenants=None):
    if tenants is None:
        raise AssertionError("expected a parallel plan")
    if KIND == "config":
        raise ConfigError("prod", [ConfigProblem(path="tenants[1].name", problem="refused in a worker", hint="fix it")])
    raise KeyError("arbitrary failure in a worker")

P.run_offline = failing  # inherited by the forked workers

def run(kind, out):
    global KIND
    KIND = kind
    sys.stderr.write("%s%s\\n" % (MARKER, kind))
    sys.stderr.flush()
    code = P.main(["prod", "--quiet", "--jobs", "3", "--out", out])
    sys.stderr.write("\\nexit status %d\\n" % code)
    sys.stderr.flush()
""".replace("MARKER", repr(MARKER))


FAILURES = [
    ("config", 2, "tenants[1].name: refused in a worker"),
    ("other", 1, "arbitrary failure in a worker"),
]


def test_a_failing_worker_ends_the_parallel_plan_with_its_message_and_status(tmp_path: Path):
    # The subprocess timeout is the hang guard: before, a ConfigError could not be unpickled in the
    # parent and the plan waited forever. One process runs each failure in turn (each forks its
    # own workers): a marker line opens the stderr of each, its exit status closes it.
    script = WORKER_FAILS + "".join(f"run({kind!r}, sys.argv[1] + {kind!r})\n" for kind, _, _ in FAILURES)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out-")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    reports = proc.stderr.split(MARKER)[1:]
    assert len(reports) == len(FAILURES), proc.stderr
    for (kind, status, needle), report in zip(FAILURES, reports):
        named, *lines, last = report.strip().split("\n")
        err = "\n".join(lines)
        assert named == kind and last == f"exit status {status}", (kind, report)
        assert needle in err, (kind, report)
        assert not (tmp_path / f"out-{kind}").exists()


def test_config_error_survives_pickling():
    import pickle

    from stacks.config import ConfigProblem

    error = ConfigError("prod", [ConfigProblem(path="a.b", problem="wrong", hint="fix")])
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is ConfigError and back.problems == error.problems and str(back) == str(error)


# ---------------------------------------------------------------------------------------------
# The strict YAML reader: each refusal is one clean problem naming file:line:column.
# ---------------------------------------------------------------------------------------------

BOMB = "config:\n  a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9))


@pytest.mark.parametrize("data, words", [
    (BOMB.encode(), "YAML anchor '&a'"),  # a billion laughs: refused at the first anchor, never expanded
    ("config: {}\n".encode("utf-16"), "not UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    (b"config:\n  x: " + b"[" * 600 + b"]" * 600 + b"\n", "nested more than"),
    (b"config:\n  x: !!binary aGVsbG8=\n", "not a JSON type"),
    (b"config:\n  x: !!python/object/apply:os.system [ls]\n", "not a JSON type"),
    (b"config:\n  1: x\n", "is not a string"),
    (b"config:\n  a: 1\n  a: 2\n", "appears twice"),
])
def test_strict_loader_refuses_with_one_clean_problem(data: bytes, words: str):
    from stacks.loader import load_yaml

    with pytest.raises(ConfigError) as caught:
        load_yaml(data, "some/dir/Pulumi.x.yaml", "x")
    (problem,) = caught.value.problems
    assert words in problem.problem and problem.hint
    assert problem.path.startswith("some/dir/Pulumi.x.yaml")
    assert str(caught.value).startswith("some/dir/Pulumi.x.yaml is not a valid stack file")


def test_strict_loader_keeps_dates_as_text():
    from stacks.loader import load_yaml

    assert load_yaml(b"config:\n  a: 2024-01-01\n", "f", "x") == {"config": {"a": "2024-01-01"}}
