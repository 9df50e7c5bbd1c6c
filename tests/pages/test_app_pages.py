"""Every page in the registry (``ui.frame.PAGES``) opens without an exception for a role allowed to
use it, inside the real router (``app.py``) on a small seeded clinic. Pages added later by anyone are
covered automatically."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from analysis.store.access import PERMISSIONS, Actor
from analysis.store.models import ROLES
from tests.conftest import PROJECT_ROOT
from ui.frame import ACTOR_KEY, PAGES, PageSpec

APP = str(PROJECT_ROOT / "app.py")


def _role_for(action: str) -> str:
    return next(role for role in ROLES if role in PERMISSIONS[action])


@pytest.mark.parametrize("spec", PAGES, ids=[p.title for p in PAGES])
def test_page_opens_without_exception(spec: PageSpec, seeded_clinic: dict[str, int]) -> None:
    assert (PROJECT_ROOT / spec.path).is_file(), f"{spec.path} is registered but does not exist"
    role = _role_for(spec.action)
    user_id = seeded_clinic["clinician_user_id"] if role == "clinician" else None
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[ACTOR_KEY] = Actor(user_id=user_id, email=f"{role}@test.candor", role=role)
    at.run()
    assert not at.exception, at.exception
    at.switch_page(spec.path).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [e for e in at.error if "Traceback" in str(e.value)]


def test_signed_out_visitor_sees_only_the_sign_in_form(seeded_clinic: dict[str, int]) -> None:
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.dataframe
