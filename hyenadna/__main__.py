"""``python -m hyenadna``: the command line."""

import sys

from hyenadna.cli import main

sys.exit(main())
