"""The set-up cache: what a task derives from its data at great cost (a trained tokenizer, the encoded texts), kept in
the output tree by a digest of everything it depends on, so a search whose data and tokenizer settings have not
changed starts in well under a second instead of retraining the tokenizer and re-encoding every text.

The key of an entry is a SHA-256 over its inputs (the texts themselves, so the data files' contents, the rows used
and the label mapping all count), its settings (tokenizer kind, vocabulary size, lengths) and the versions of the
libraries that compute it; a change to any makes a new entry. Entries are safe formats only (a tokenizer's own JSON,
safetensors), written to a temporary file of their own then renamed (os.replace): searches sharing the cache never read
a half-written entry, and two that make the same entry at once both write the same bytes. An entry that cannot be
read is made again. The cache is on where a search turns it on (``with setup_cache(folder)``, the runner's
``cache_dir``); elsewhere everything is computed as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_FORMAT = "nas-setup-cache/1"
_FOLDER: ContextVar[Path | None] = ContextVar("nas_setup_cache", default=None)


@contextlib.contextmanager
def setup_cache(folder: str | Path | None) -> Iterator[None]:
    """Within the block, tasks keep and reuse their set-up under ``folder`` (None: no cache)."""
    token = _FOLDER.set(Path(folder) if folder else None)
    try:
        yield
    finally:
        _FOLDER.reset(token)


def cache_on() -> bool:
    return _FOLDER.get() is not None


def digest(*parts: Any) -> str:
    """A SHA-256 of ``parts`` (JSON-serialisable: strings, numbers, lists of texts), with the cache format and the
    versions of the libraries that train and encode."""
    import tokenizers
    import transformers

    h = hashlib.sha256()
    for part in (CACHE_FORMAT, tokenizers.__version__, transformers.__version__, *parts):
        h.update(json.dumps(part, sort_keys=True, ensure_ascii=False).encode())
        h.update(b"\0")
    return h.hexdigest()


def _write(path: Path, data: bytes) -> None:
    """``data`` to a temporary file of this writer's own beside ``path``, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def cached(kind: str, key: str, load: Callable[[bytes], Any], dump: Callable[[Any], bytes], make: Callable[[], Any]) -> Any:
    """The entry ``key`` of ``kind``, read with ``load``; else ``make()``, kept (``dump``) for the next search."""
    folder = _FOLDER.get()
    if folder is None:
        return make()
    path = folder / f"{kind}-{key}"
    try:
        return load(path.read_bytes())
    except FileNotFoundError:
        pass
    except Exception as exc:  # a torn or foreign file: made again, and replaced
        log.warning("set-up cache: cannot read %s (%s: %s); making it again", path, type(exc).__name__, exc)
    value = make()
    try:
        _write(path, dump(value))
    except OSError as exc:  # a cache that cannot be written costs time, never the search
        log.warning("set-up cache: cannot write %s: %s", path, exc)
    return value


def tokenizer_state(tokenizer: Any) -> Any:
    """A transformers tokenizer as parsed JSON (its vocabulary, rules and settings): digest() writes it with sorted
    keys, whatever order its maps were serialised in."""
    return json.loads(tokenizer.backend_tokenizer.to_str())


def cached_tensors(parts: Sequence[Any], make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``make()``'s tensors (a dict of them), from the cache when ``parts`` (what they are computed from) are those
    of an earlier search."""
    from safetensors.torch import load, save

    key = digest(*parts) if cache_on() else ""
    return cached("tensors", key + ".safetensors", load, lambda tensors: save({k: v.contiguous() for k, v in tensors.items()}), make)


def cached_encoding(tokenizer: Any, texts: Sequence[str], **kwargs: Any) -> dict[str, Any]:
    """``tokenizer(texts, return_tensors="pt", **kwargs)``'s tensors, from the cache when the same tokenizer encoded the
    same texts with the same settings before."""
    texts = list(texts)
    parts = ("encoding", tokenizer_state(tokenizer), texts, kwargs) if cache_on() else ()
    encoded = cached_tensors(parts, lambda: dict(tokenizer(texts, return_tensors="pt", **kwargs)))
    if texts:  # transformers leaves a call's truncation and padding on the tokenizer (saved with it): as the full call would
        tokenizer(texts[:1], **kwargs)
    return encoded
