"""Starting child processes safely from any host (Streamlit pages, AppTest, the CLI).

multiprocessing's spawn and forkserver start methods re-import ``__main__`` from its ``__file__``
in every new child. Under Streamlit (and AppTest, which leaves the last script in
``sys.modules["__main__"]``) that file is a page script: the child would run the page and die
before doing its job. :func:`main_module_hidden` swaps in a bare ``__main__`` while children start.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def main_module_hidden() -> Iterator[None]:
    """While inside, ``__main__`` is a bare module with no file for a new child to re-import.

    Callers that can run concurrently (server threads) must hold one lock around it so that
    the swaps cannot interleave.
    """
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved
        else:
            sys.modules.pop("__main__", None)
