"""``python -m hyenadna`` and the ``hyenadna`` command: the command line, started so that a Ctrl-C at any moment of
start-up (while numpy or torch import) ends with one line and exit 130 rather than a traceback or an abort."""

import sys


def run() -> None:
    from hyenadna import _startup

    _startup.install()
    from hyenadna.cli import main  # a Ctrl-C from here on is held until torch has imported (main calls resume)

    sys.exit(main())


if __name__ == "__main__":
    run()
