"""The offline engine: the plan CLI (``python -m offline.plan``), the mock engine and its recording
monitor, invoke answers, plan file writers, parallel planning, SDK speed-ups, the config reference.

It imports the program (``stacks``, ``components``) and the checks (``policy``, ``convergence``);
the program never imports it (``tests/test_layering.py``), so ``pulumi up`` runs without any of it.
"""
