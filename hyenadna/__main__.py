"""``python -m hyenadna`` and the ``hyenadna`` command: the command line, started so that a Ctrl-C at any moment of
start-up (while numpy or torch import) ends with one line and exit 130 rather than a traceback or an abort."""

import sys


def run() -> None:
    from hyenadna import _startup

    _startup.install()
    # a Ctrl-C from here on is held until torch and the model stack have imported (main calls resume)
    from hyenadna.cli import main

    sys.exit(main())


if __name__ == "__main__":
    run()
