import sys
from pathlib import Path

import pytest

# The project root holds the program's packages (stacks/, components/) and versions.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@pytest.fixture
def monitors(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every RecordingMonitor the offline engine creates during the test (to check that nothing
    was registered before a config error)."""
    from offline import plan as plan_module

    created: list[plan_module.RecordingMonitor] = []

    class Capturing(plan_module.RecordingMonitor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(plan_module, "RecordingMonitor", Capturing)
    return created
