"""``python -m hyenadna`` and the ``hyenadna`` command: the command line, started so that a Ctrl-C at any moment of
start-up (while numpy or torch import) ends with one line rather than a traceback."""

import sys


def run() -> None:
    from hyenadna import _startup

    _startup.install()
    try:
        # numpy before torch: torch imports it from C++ and clears any error raised meanwhile, a KeyboardInterrupt
        # included, so a Ctrl-C landing there was lost and the command ran on
        import numpy  # noqa: F401

        from hyenadna.cli import main
    except KeyboardInterrupt:
        print("hyenadna: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(main())


if __name__ == "__main__":
    run()
