"""Convergence checks: where a real cluster would not converge, from the offline plan alone.

The policy rules (``policy/``) judge each object's shape; these rules judge the whole: does every
claim find a StorageClass, every name a DNS record, every LoadBalancer an address, every object a
quota that admits it, every pod a Pod Security level that admits it, every flow a policy that
allows it, every reference its object — counting what known controllers will create
(:mod:`convergence.controllers`). Entry point: :func:`convergence.runner.run`.
"""

from convergence.model import Violation
from convergence.runner import RULES, report, run

__all__ = ["RULES", "Violation", "report", "run"]
