import sys

from hyenadna.cli import main

sys.exit(main())
