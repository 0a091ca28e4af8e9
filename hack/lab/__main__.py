"""Command line of the lab: ``python3 hack/lab {up,down,status,curl,lb}``."""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python3 hack/lab`, Python puts hack/lab itself on the path; the lab's
# modules import each other and localcluster from hack/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lab.cli import main

sys.exit(main())
