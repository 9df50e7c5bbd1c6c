"""Imported only inside the photo workers' fork server (``analysis.photos.worker.PRELOAD``): the
children forked from it never re-run the parent's ``__main__``.

multiprocessing hands every new child the parent's ``__main__`` (its file or module name, read
when the child is started) and the child re-runs it before its job. The parent hides its
``__main__`` while it starts a child (:func:`analysis.processes.main_module_hidden`), but under
``streamlit run`` that is not enough: every script run, on any of the server's threads, puts the
page script back into ``sys.modules["__main__"]`` without taking our lock, and a child started
at that instant ran ``app.py`` and died (seen with 50 concurrent users: "AssertionError:
unreachable" from the sign-in gate in a worker, and the upload reported as a crash). A photo
worker runs one function named by ``"module:function"``, so it needs no ``__main__``: in this
process, and hence in every child forked from it, re-running it is switched off.
"""

from __future__ import annotations

import multiprocessing.spawn


def _no_main(_main: str) -> None:
    return None


# what spawn.prepare() calls in a new child (CPython 3.8 to 3.14); a Python that renames them
# fails tests/test_processes.py::test_a_photo_worker_never_reruns_the_page_even_unhidden
for _name in ("_fixup_main_from_path", "_fixup_main_from_name"):
    setattr(multiprocessing.spawn, _name, _no_main)
