"""A Ctrl-C during the command line's start-up, held until torch has imported, then acted on.

Importing torch runs C++ code that calls back into Python. A KeyboardInterrupt raised there is either cleared (numpy's
import inside torch's was one such place, and the command ran on) or, inside pybind11, ends the process with
``terminate`` (exit -6). So the ``hyenadna`` entry point installs a handler that only remembers the Ctrl-C, and the
command line calls ``resume`` once torch is imported: the remembered Ctrl-C is raised there, before any work.
"""

import signal

interrupted = False


def _remember(signum, frame) -> None:
    global interrupted
    interrupted = True


def install() -> None:
    signal.signal(signal.SIGINT, _remember)


def resume() -> None:
    """Back to Python's Ctrl-C (KeyboardInterrupt), raising the one held since ``install``, if any."""
    import threading

    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is _remember:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if interrupted:
        raise KeyboardInterrupt
