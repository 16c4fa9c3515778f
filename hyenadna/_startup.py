"""A Ctrl-C during the command line's start-up, remembered even where a C extension swallows it.

Importing torch runs C++ code that calls back into Python and clears any error raised meanwhile, a KeyboardInterrupt
included (numpy's import inside torch's was one such place), so a Ctrl-C there was lost and the command ran on. The
``hyenadna`` entry point installs ``handler``; the command line checks ``interrupted`` once torch is imported, before
it starts any work.
"""

import signal

interrupted = False


def handler(signum, frame) -> None:
    global interrupted
    interrupted = True
    raise KeyboardInterrupt


def install() -> None:
    signal.signal(signal.SIGINT, handler)
