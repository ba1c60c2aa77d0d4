"""What the ``nas`` and ``nas-final`` commands tell the user when a run cannot start or cannot go on.

Kept free of heavy imports: the commands classify errors before torch or MLflow are loaded.
Bad input (``is_bad_input``: a ``BadInput``, or an error Hydra, OmegaConf or YAML raised composing
the config) is reported in one message that names the key, value or file, without a traceback;
anything else, a plain ValueError or OSError included, is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_STOPPED = 1  # the search started but could not go on (its tracking store went away); resume it
EXIT_BAD_INPUT = 2  # nothing ran: fix the named key, value or file


class BadInput(ValueError):
    """The user's input is wrong: a config key or value, a data file, a resume target, a missing optional extra.

    Raised where the input is checked, with a message that names the key, value or file; the commands print that
    message alone and exit 2. A ValueError, so callers that catch ValueError (and ``pytest.raises(ValueError)``)
    still catch it."""


class UnusablePath(BadInput):
    """A file or folder the user named cannot be opened, read or written: the OSError raised where it is opened,
    named by the setting that names it (``task.train_file: Permission denied: '/data/train.csv'``)."""

    def __init__(self, error: OSError, key: str = ""):
        text = f"{error.strerror}: '{error.filename}'" if error.strerror and error.filename else str(error)
        super().__init__(f"{key}: {text}" if key else text)


@contextmanager
def user_path(key: str = "") -> Iterator[None]:
    """Around opening a file or folder the user named (with setting ``key``): an OSError there is an UnusablePath."""
    try:
        yield
    except OSError as exc:
        raise UnusablePath(exc, key) from None  # the message holds all the OSError says


class MissingExtra(BadInput, ImportError):
    """A setting needs an optional extra that is not installed; the message says what to ``pip install``.
    Still an ImportError, for callers that catch one."""


class ResumeError(BadInput):
    """``resume`` points at something that is not an interrupted search of this config, or not this search's run."""


class CallbackError(BaseException):
    """An error a Hydra callback found (nas.sweep.CheckSweep, nas.folders.ClaimRunFolder): Hydra turns an ``Exception``
    from a callback into a warning and goes on, so it travels wrapped in this; ``reporting`` reports ``error`` as if
    the command raised it."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


class ReplayError(RuntimeError):
    """A resumed search proposed something other than what the interrupted one recorded."""


class SearchStopped(RuntimeError):
    """The search could not go on; everything it recorded is complete and ``nas resume=DIR`` continues it."""


def is_bad_input(exc: BaseException) -> bool:
    """The user's mistake rather than a bug: a BadInput (also as a CallbackError's ``error``), an error Hydra, OmegaConf
    or YAML raised composing the config, or a resume that replays differently (ReplayError)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    from yaml import YAMLError

    if isinstance(exc, CallbackError):
        exc = exc.error
    return isinstance(exc, (BadInput, HydraException, OmegaConfBaseException, YAMLError, ReplayError))


# The launchers nas's optional extra "launchers" installs, as Hydra names them when they are missing.
_LAUNCHER_NOT_FOUND = re.compile(r"Could not find 'hydra/launcher/(joblib|submitit_local|submitit_slurm)'")


def describe(exc: BaseException) -> str:
    """One message for the user: the error's own text, its cause's when that says more, without internals."""
    lines = [str(exc).strip() or type(exc).__name__]
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None and str(cause).strip() and str(cause).strip() not in lines[0]:
        lines.append(str(cause).strip())
    text = "\n".join(lines)
    launcher = _LAUNCHER_NOT_FOUND.search(text)
    if launcher:  # Hydra cannot tell a launcher that is not installed from a misspelled one
        text += f"\nhydra/launcher={launcher[1]} needs Hydra's launcher plugins: pip install 'transformer-nas[launchers]'"
    # OmegaConf appends the schema classes it checked against: noise next to the full_key it also gives.
    return "\n".join(line for line in text.splitlines() if not line.strip().startswith(("reference_type=", "object_type=")))


class Interrupted(KeyboardInterrupt):
    """SIGTERM, delivered as an interruption so a search ends as cleanly as on Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signum)


class DeferredSignals:
    """While a search closes (its outputs, its MLflow run's status), SIGINT and SIGTERM are noted instead of
    raised: a second Ctrl-C, or a SIGTERM just after the last candidate, cannot leave the run half-closed.
    ``release`` puts the handlers back and, when asked, raises the noted signal then."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.pending: int | None = None
        self._previous: dict[int, object] | None = None

    def hold(self) -> None:
        import threading

        if self._previous is not None or threading.current_thread() is not threading.main_thread():
            return  # handlers can only be set in the main thread; a library caller's thread keeps its own
        self._previous = {s: signal.getsignal(s) for s in self.SIGNALS}
        for s in self.SIGNALS:
            signal.signal(s, self._note)

    def _note(self, signum: int, frame) -> None:
        self.pending = signum
        print(f"{signal.Signals(signum).name} received while the search closes its records: it stops once they are complete",
              file=sys.stderr)

    def release(self, raise_pending: bool) -> None:
        if self._previous is None:
            return
        for s, handler in self._previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)
        self._previous = None
        if self.pending is not None and raise_pending:
            raise Interrupted(self.pending)


@contextmanager
def _full_errors_from_hydra() -> Iterator[None]:
    # Hydra prints errors itself (with a traceback for some, e.g. malformed YAML) unless HYDRA_FULL_ERROR
    # is set, in which case it re-raises them: set it, so this module decides what the user sees.
    before = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    if before is not None:  # the user's own setting decides whether they see tracebacks
        os.environ["NAS_USER_HYDRA_FULL_ERROR"] = before
    try:
        yield
    finally:
        os.environ.pop("NAS_USER_HYDRA_FULL_ERROR", None)
        if before is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = before


def _wants_traceback() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("NAS_TRACEBACK", "NAS_USER_HYDRA_FULL_ERROR"))


@contextmanager
def reporting(prog: str) -> Iterator[None]:
    """Bad input -> one message and exit 2; a stopped search -> exit 1; SIGINT / SIGTERM -> exit 128 + signal.
    Exits with SystemExit, which Hydra lets through (it catches Exception), so it adds nothing of its own."""
    try:
        yield
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"{prog}: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
        sys.exit(128 + signum)
    except SearchStopped as exc:
        if _wants_traceback():
            raise
        print(f"{prog}: search stopped: {describe(exc)}", file=sys.stderr)
        sys.exit(EXIT_STOPPED)
    except (Exception, CallbackError) as exc:
        if _wants_traceback() or not is_bad_input(exc):
            raise
        error = exc.error if isinstance(exc, CallbackError) else exc
        print(f"{prog}: error: {describe(error)}", file=sys.stderr)
        print(f"{prog}: (set HYDRA_FULL_ERROR=1 for the traceback)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def run_command(entry: Callable[[], object], prog: str) -> None:
    """Run a Hydra entry point (whose task function runs inside ``reporting(prog)`` too) as a command.
    ``HYDRA_FULL_ERROR=1`` (or ``NAS_TRACEBACK=1``) shows tracebacks instead."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        with _full_errors_from_hydra(), reporting(prog):
            entry()
    finally:
        signal.signal(signal.SIGTERM, previous)
