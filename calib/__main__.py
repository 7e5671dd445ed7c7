"""``python -m calib``: see calib.cli."""

import sys

from calib.cli import main

sys.exit(main())
