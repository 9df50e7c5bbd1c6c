"""Every action a page may call, in one floor.

A service function takes ``(session, actor, ...)``: it checks the actor's permission
(:func:`analysis.store.access.require`, called nowhere else), validates its input (raising
:class:`analysis.errors.FieldError` naming the form field), reads or writes the record through
:mod:`analysis.store`, computes with the pure floors (:mod:`analysis.photos`,
:mod:`analysis.outcomes`) and writes an audit event. Pages import from here only:
:mod:`analysis.services.common` carries the names they need besides the actions, and
:mod:`analysis.services.analytics` the pure computations over frames a page has loaded.
"""
