"""``python -m edge_operator``: same as the ``edge-operator`` command."""

from edge_operator.cli import main

raise SystemExit(main())
