"""A Ctrl-C during the command line's start-up, held until torch and the model stack have imported, then acted on.

Importing torch runs C++ code that calls back into Python. A KeyboardInterrupt raised there is either cleared (numpy's
import inside torch's was one such place, and the command ran on) or, inside pybind11, ends the process with
``terminate`` (exit -6); raised while ``torch._dynamo`` defines its dataclasses, Python 3.11 turned it into a
RuntimeError with a traceback. So the ``hyenadna`` entry point installs a handler that only remembers the Ctrl-C, and
the command line calls ``resume`` once those imports are done: the remembered Ctrl-C is raised there, before any work.
From then on a Ctrl-C that Python drops (raised inside a weakref callback or finalizer) is delivered again.
"""

import signal
import sys

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
        if not getattr(sys.unraisablehook, "_hyenadna", False):
            sys.unraisablehook = _redeliver_interrupts(sys.unraisablehook)
    if interrupted:
        raise KeyboardInterrupt


def _redeliver_interrupts(previous):
    """A KeyboardInterrupt raised while Python runs a weakref callback or a finalizer (importlib's module locks
    have one; a Ctrl-C during a later import landed there) cannot propagate: Python prints "Exception ignored" with a
    traceback and the command ran on to the end. This hook keeps it off the terminal and delivers the Ctrl-C to the
    main thread again a moment later (from a timer thread, so that it is not raised inside the hook itself)."""
    import threading

    def hook(unraisable) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            timer = threading.Timer(0.01, signal.raise_signal, (signal.SIGINT,))
            timer.daemon = True
            timer.start()
            return
        previous(unraisable)

    hook._hyenadna = True
    return hook
