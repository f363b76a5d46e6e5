import sys
from pathlib import Path

# The project root holds the program's packages (stacks/, components/) and versions.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
