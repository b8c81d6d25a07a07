"""``python -m depthscope.cli``."""

import sys

from depthscope.cli import main

sys.exit(main())
