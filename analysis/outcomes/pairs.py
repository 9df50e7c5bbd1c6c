"""Representative before/after photo pairs for consultations: typical, never the best case.

The rules, and the pure pick over a pool of candidates; :mod:`analysis.services.pairs` reads the
candidates from the record.

Eligible series (all checked at query time):

1. the series follows the protocol and has a photo of ``view`` at session 1 with verdict
   ``baseline`` or ``pass``, and its **last** photo of ``view`` (highest session number after 1)
   has verdict ``pass`` (a warn/fail last photo excludes the series; earlier photos are not used
   instead, which would cherry-pick);
2. the primary endpoint was measured at that last session, so its improvement is known;
3. the patient consents to ``consult_display`` *now* (the rule of
   :func:`analysis.services.records.consent_scopes`, read fresh in one query on every call; a withdrawal excludes the patient immediately).

Among eligible series the pair closest to the median improvement and the one closest to the lower
quartile are returned (ties go to the smaller improvement); the best result is never picked and
the lower-quartile pick never shows more than the median pick. Fewer than ``min_candidates``
(never below 3) eligible series returns no pairs: with a small pool "typical" means nothing and
the one shown would be someone's best result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_CANDIDATES = 5
#: (series_id, patient_id, baseline sha256, follow-up sha256, follow-up session, improvement)
Candidate = tuple[int, int, str, str, int, float]


@dataclass(frozen=True)
class RepresentativePair:
    """A baseline/follow-up photo pair; carries no patient code or identifier.

    ``improvement`` is the primary endpoint's change from baseline at ``followup_session``, signed
    so that positive is better, in ``unit``.
    """

    role: str  # "median" or "lower_quartile"
    label: str
    view: str
    baseline_sha256: str
    followup_sha256: str
    baseline_session: int
    followup_session: int
    improvement: float
    endpoint_code: str
    unit: str
    pool_size: int


def _closest(choices: list[Candidate], target: float) -> Candidate | None:
    return min(choices, key=lambda c: (abs(c[5] - target), c[5])) if choices else None


def pick_typical(pool: list[Candidate]) -> list[tuple[str, Candidate]]:
    """``[("median", c), ("lower_quartile", c)]`` from ``pool`` (at least 3 candidates).

    The best result (largest improvement) is never picked, and the lower-quartile pick never
    shows more improvement than the median pick; ties go to the smaller improvement.
    """
    values = np.array([c[5] for c in pool])
    best = float(values.max())
    choices = [c for c in pool if c[5] < best] or list(pool)  # all equal: nothing is "best"
    median_pick = _closest(choices, float(np.median(values)))
    assert median_pick is not None
    lower = [c for c in choices if c[0] != median_pick[0] and c[5] <= median_pick[5]]
    lq_pick = _closest(lower, float(np.percentile(values, 25)))
    out = [("median", median_pick)]
    if lq_pick is not None:
        out.append(("lower_quartile", lq_pick))
    return out
