"""A run folder belongs to one search.

A search or a resume holds an advisory lock (``flock``) on ``<folder>/.nas.lock`` for as long as it
runs, so a second search or resume of the same folder fails at once; the kernel drops the lock when
the process dies, so ``kill -9`` never leaves a folder locked. A new search refuses a folder that
already holds a search's records and names the command that continues that search instead.

``ClaimRunFolder`` (a Hydra callback, conf/config.yaml) claims the folder before Hydra writes
``.hydra/`` and its log into it: a folder that is not this run's to take stops the command there,
so the other search's saved config (what its resume and ``nas-final`` read) stays as it was.
Light imports only: it runs before torch.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from nas.errors import BadInput, CallbackError, ResumeError, UnusablePath
from nas.records import CandidateRecord, append_record, records_in

LOCK_FILE = ".nas.lock"
SEARCH_STATE_FILE = "search.json"  # what a resume needs besides candidates.jsonl: the MLflow parent run
SEARCH_STATE_FORMAT = "nas-search/1"
CANDIDATES_FILE = "candidates.jsonl"  # one CandidateRecord a line (nas.records)
CHECKPOINT_FILE = "checkpoint.pt"  # the strategy's state after its last update: networks, optimizer, RNG states
CHECKPOINT_FORMAT = "nas-search-checkpoint/1"
CONTROLLER_FILE = "controller.pt"  # PPO's networks alone: what ppo.init_from warm-starts from
SCORES_FILE = "weight_sharing.jsonl"  # evaluation=weight_sharing: one CandidateRecord a line, each a weight-sharing score
SUPERNET_FILE = "supernet.pt"  # evaluation=weight_sharing: the trained super-network (nas.weight_sharing)
# What makes a folder a search's: its MLflow binding, its records, PPO's state, a weight-sharing search's stage one.
SEARCH_FILES = (SEARCH_STATE_FILE, CANDIDATES_FILE, CHECKPOINT_FILE, SCORES_FILE, SUPERNET_FILE)

_held: dict[Path, int] = {}  # folder (resolved) -> the open descriptor that holds its lock


class FolderBusy(BadInput):
    """Another live process holds the folder (bad input: nothing of this run has started)."""


class FolderTaken(BadInput):
    """The folder holds another search's records."""


class OutputError(BadInput):
    """The output directory cannot be written."""


def _key(folder: Path) -> Path:
    return Path(os.path.abspath(folder))


def holder_of(folder: Path) -> str:
    """Who holds the lock, as the lock file says (the pid is written after the lock is taken)."""
    try:
        pid = (Path(folder) / LOCK_FILE).read_text().strip()
    except OSError:
        return "another process"
    return f"process {pid}" if pid.isdigit() else "another process"


def lock_folder(folder: Path, doing: str = "search") -> None:
    """Hold ``folder``'s lock until ``release_folder`` or the end of the process; at once or FolderBusy.
    Taking a lock this process already holds is a no-op (the Hydra callback takes it before the search does)."""
    key = _key(folder)
    if key in _held:
        return
    key.mkdir(parents=True, exist_ok=True)
    fd = os.open(key / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FolderBusy(f"'{folder}' is in use: {holder_of(key)} is running a search or a resume there. Wait for it to end "
                         f"(or stop it), then `nas resume={folder}` continues it; a new search needs another folder "
                         "(leave hydra.run.dir unset for a fresh one)") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = fd


def release_folder(folder: Path) -> None:
    fd = _held.pop(_key(folder), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock


def search_files(folder: Path) -> list[str]:
    """The files that show ``folder`` holds a search (an empty candidates.jsonl counts: a search started there)."""
    return [name for name in SEARCH_FILES if (Path(folder) / name).exists()]


def claim_new_search(folder: Path) -> None:
    """Lock ``folder`` for a new search, which must not find another search's records there."""
    lock_folder(folder)
    found = search_files(folder)
    if found:
        release_folder(folder)
        raise FolderTaken(f"'{folder}' already holds a search ({', '.join(found)}): `nas resume={folder}` continues it. "
                          "A new search needs a folder of its own (leave hydra.run.dir unset for a fresh one)")


class RunDirectory:
    """A search's output folder and the files it owns: candidates.jsonl (the records), search.json (its MLflow
    run), checkpoint.pt and controller.pt (the strategy's state), best/ and plots/; under evaluation=weight_sharing
    also supernet.pt and weight_sharing.jsonl (the scores). A search or a resume holds its lock while it runs."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.candidates = self.path / CANDIDATES_FILE
        self.state_file = self.path / SEARCH_STATE_FILE
        self.checkpoint = self.path / CHECKPOINT_FILE
        self.controller = self.path / CONTROLLER_FILE
        self.scores = self.path / SCORES_FILE
        self.supernet = self.path / SUPERNET_FILE
        self.best = self.path / "best"
        self.plots = self.path / "plots"

    def __str__(self) -> str:
        return str(self.path)

    # -- the folder ------------------------------------------------------------------------------
    def check_writable(self) -> None:
        """The folder exists (or can be made) and takes files: found now, not after the first candidate."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output directory '{self.path}': {exc.strerror} (set hydra.run.dir=...)") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write the output directory '{self.path}': permission denied (set hydra.run.dir=...)")

    def claim(self) -> None:
        """Locked for a new search; another search's records are never overwritten (FolderTaken)."""
        claim_new_search(self.path)

    def lock(self) -> None:
        lock_folder(self.path)

    def release(self) -> None:
        release_folder(self.path)

    # -- search.json: the MLflow run this folder belongs to ---------------------------------------
    def start(self, state: dict[str, Any]) -> None:
        """A new search: its MLflow binding (a resume checks the store's run against it), no records, no checkpoint."""
        self.state_file.write_text(json.dumps({"format": SEARCH_STATE_FORMAT, **state}, indent=2))
        self.candidates.write_text("")
        self.checkpoint.unlink(missing_ok=True)
        self.scores.unlink(missing_ok=True)
        self.supernet.unlink(missing_ok=True)

    def read_state(self) -> dict[str, Any]:
        if not self.path.is_dir():
            raise ResumeError(f"resume: '{self.path}' is not a directory")
        if not self.state_file.is_file():
            raise ResumeError(f"resume: '{self.path}' has no {SEARCH_STATE_FILE}; is it the output directory of a nas search?")
        try:
            state = json.loads(self.state_file.read_text())
        except json.JSONDecodeError as exc:
            raise ResumeError(f"resume: {self.state_file} is not valid JSON ({exc})") from exc
        if not isinstance(state, dict) or state.get("format") != SEARCH_STATE_FORMAT:
            raise ResumeError(f"resume: {self.state_file} is not a nas search state (no '{SEARCH_STATE_FORMAT}' format tag)")
        missing = [k for k in ("parent_run_id", "tracking_uri") if not isinstance(state.get(k), str)]
        if missing:
            raise ResumeError(f"resume: {self.state_file} lacks {', '.join(missing)}")
        return state

    # -- candidates.jsonl ------------------------------------------------------------------------
    def read_records(self) -> list[CandidateRecord]:
        """The records; a line torn by a kill mid-write is cut off the file."""
        return _read_jsonl(self.candidates)

    def append(self, record: CandidateRecord) -> None:
        append_record(self.candidates, record)

    # -- weight_sharing.jsonl: a weight-sharing search's scores (stage two) --------------------------
    def read_scores(self) -> list[CandidateRecord]:
        return _read_jsonl(self.scores)

    def append_score(self, record: CandidateRecord) -> None:
        append_record(self.scores, record)

    # -- checkpoint.pt: the strategy's state after its last update --------------------------------
    def save_checkpoint(self, strategy: Any, evaluations: int) -> None:
        """Tensors and plain containers: loads with weights_only=True."""
        state = strategy.state_dict()
        if not state:
            return  # random, evolution and TPE are a function of the seed and the history alone
        write_atomically(self.checkpoint, serialized({"format": CHECKPOINT_FORMAT, "evaluations": evaluations, **state}))

    def load_checkpoint(self) -> dict[str, Any]:
        import torch

        try:
            saved = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            raise ResumeError(f"resume: '{self.checkpoint}' is not a readable checkpoint: {type(exc).__name__}: {first_line}") from None
        if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT or not isinstance(saved.get("controller"), dict):
            raise ResumeError(f"resume: '{self.checkpoint}' is not a nas search checkpoint (no '{CHECKPOINT_FORMAT}' format tag)")
        return saved

    def checkpoint_iterations(self) -> int | None:
        """The PPO iterations the checkpoint holds (None: no checkpoint yet); checked before any work."""
        return self.load_checkpoint()["controller"].get("iterations") if self.checkpoint.is_file() else None

    def check_checkpoint(self, strategy: Any) -> None:
        """After a replay reached the checkpoint's iteration: the replayed networks must be the saved ones."""
        import torch

        saved = self.load_checkpoint()
        mine = strategy.controller_state()
        theirs = saved["controller"]
        same = all(theirs[net].keys() == mine[net].keys() and all(torch.equal(mine[net][k], v) for k, v in theirs[net].items())
                   for net in ("policy", "value"))
        if not same or theirs["iterations"] != mine["iterations"]:
            raise ResumeError(f"resume: replaying candidates.jsonl did not reproduce {self.checkpoint} (iteration {theirs['iterations']}); "
                              "the config, the code or the files were changed since the search was interrupted")


def _read_jsonl(path: Path) -> list[CandidateRecord]:
    """A file of records; a line torn by a kill mid-write is cut off the file."""
    if not path.is_file():
        return []
    text = path.read_text()
    try:
        records = records_in(text, path, drop_torn_last=True)
    except ValueError as exc:
        raise ResumeError(str(exc)) from exc
    if text and not text.endswith("\n"):  # the torn line: it was never recorded
        with path.open("r+") as f:
            f.truncate(text.rfind("\n") + 1)
    return records


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path`` then rename it over: a kill mid-write leaves the previous file intact, and a
    failed write (a full disk) leaves no temporary file and names the file it was writing."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        tmp.replace(path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # not a file we made
        if isinstance(exc, OSError) and not exc.filename:  # a write() that failed says which error, not where
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def serialized(obj: Any) -> bytes:
    """``torch.save`` into memory: written to disk by plain file I/O, a full disk is an OSError (torch's own zip
    writer reports it as a RuntimeError)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class ClaimRunFolder(Callback):
    """Hydra callback: a new search's run folder (a sweep's folder) is claimed before Hydra writes into it.

    Hydra saves ``.hydra/config.yaml`` (what ``nas resume`` and ``nas-final`` read) and appends its log to the
    run folder before the task function starts; in a folder another search owns, that would overwrite the
    owner's config. So the claim happens here, and a folder that is locked or holds a search stops the command
    before Hydra writes anything. (Hydra turns an ``Exception`` from a callback into a warning: the error
    travels as ``CallbackError``, which ``nas.errors.reporting`` reports as bad input.)
    """

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        if config.get("resume"):
            return  # a resume runs in a fresh folder of its own and locks its target in run_search
        try:
            claim_new_search(Path(str(config.hydra.run.dir)))
        except (FolderBusy, FolderTaken) as exc:
            raise CallbackError(exc) from None
        except OSError as exc:  # the folder cannot be made or written (Hydra would fail making it next)
            raise CallbackError(UnusablePath(exc, "hydra.run.dir")) from None

    def on_run_end(self, config: Any, **kwargs: Any) -> None:
        release_folder(Path(str(config.hydra.run.dir)))

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        # Each job locks its own folder in run_search; the sweep's folder is held here so that two sweeps
        # cannot share it, and one that already holds a sweep's searches is refused.
        sweep = Path(str(config.hydra.sweep.dir))
        try:
            lock_folder(sweep)
        except FolderBusy as exc:
            raise CallbackError(exc) from None
        except OSError as exc:
            raise CallbackError(UnusablePath(exc, "hydra.sweep.dir")) from None
        found = sorted(str(p.parent) for name in SEARCH_FILES for p in sweep.glob(f"*/{name}"))
        if found:
            release_folder(sweep)
            raise CallbackError(FolderTaken(f"'{sweep}' already holds a sweep's searches ({found[0]}, ...): "
                                            f"`nas resume={found[0]}` continues one; a new sweep needs a folder of its own "
                                            "(leave hydra.sweep.dir unset for a fresh one)"))

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        release_folder(Path(str(config.hydra.sweep.dir)))
