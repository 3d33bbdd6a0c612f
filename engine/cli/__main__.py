"""``python -m engine.cli`` runs the ``artds`` command."""

import sys

from engine.cli import main

sys.exit(main())
