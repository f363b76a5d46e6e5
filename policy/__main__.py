"""Entry point of the CrossGuard policy pack (``pulumi preview --policy-pack policy``).

The engine starts this file inside policy/; the project root goes on sys.path so the pack and
the offline plan import the very same ``policy.rules``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy.pack import serve  # noqa: E402

serve()
