"""Loading from transformers one thread at a time.

transformers resolves its names (`from transformers import X`, and the classes that
`Auto*.from_pretrained` looks up) through a lazy module that is not thread-safe: two
threads resolving names for the first time at once make one of them fail with ImportError.
The workbench loads tokenizers and models from several worker threads, so engine code
imports and loads through this lock. Loads are slow and memory-bound anyway, so running
them one after another costs nothing worth having.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_LOCK = threading.RLock()  # process-wide, like the import system it protects


@contextlib.contextmanager
def transformers_loading(*names: str) -> Iterator[tuple[Any, ...]]:
    """Hold the lock; yields `transformers.<name>` for each name."""
    with _LOCK:
        import transformers

        yield tuple(getattr(transformers, name) for name in names)
