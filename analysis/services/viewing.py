"""Two stored photos of one view, graded and aligned for display (the action behind the pair viewers).

The composites themselves (blend, wipe, difference map, side by side, alignment) are pure and live
in :mod:`analysis.photos.viewing`; they are re-exported here so a page has one module to call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from analysis.photos.viewing import (
    AlignedPair,
    align_pair,
    blend,
    decode_for_display,
    difference_map,
    landmarks_for,
    side_by_side,
    to_png,
    wipe,
)

if TYPE_CHECKING:
    from analysis.photos.types import Comparison

__all__ = [
    "AlignedPair",
    "PairView",
    "align_pair",
    "blend",
    "decode_for_display",
    "difference_map",
    "landmarks_for",
    "pair_view",
    "side_by_side",
    "to_png",
    "wipe",
]


@dataclass(frozen=True)
class PairView:
    """Two stored photos of one view, graded and ready to show.

    ``comparison`` grades ``later`` against ``earlier`` (the comparability gate between the two);
    ``later_aligned`` is ``later`` warped into ``earlier``'s frame (see :func:`align_pair`),
    ``later_original`` the unwarped display copy.
    """

    comparison: Comparison
    earlier: np.ndarray
    later_aligned: np.ndarray
    later_original: np.ndarray
    aligned: bool
    note: str

    @property
    def comparable(self) -> bool:
        return getattr(self.comparison, "verdict", "fail") != "fail"


def pair_view(
    earlier_bytes: bytes,
    later_bytes: bytes,
    *,
    view: str,
    tolerances: dict[str, Any] | None = None,
    cache: object | None = None,
    max_side: int = 1024,
) -> PairView:
    """Measure both photos (sandboxed worker, cached by SHA-256), grade ``later`` against
    ``earlier`` with the protocol's tolerances, and align ``later`` onto ``earlier`` by landmarks."""
    from analysis.photos.compare import Tolerances, compare
    from analysis.services.capture import measure_bytes

    m_early = measure_bytes(earlier_bytes, view=view, cache=cache)  # type: ignore[arg-type]
    m_late = measure_bytes(later_bytes, view=view, cache=cache)  # type: ignore[arg-type]
    comparison = compare(m_early, m_late, tolerances=Tolerances.from_dict(tolerances))
    early_rgb = decode_for_display(earlier_bytes, max_side=max_side)
    late_rgb = decode_for_display(later_bytes, max_side=max_side)
    pair = align_pair(
        early_rgb,
        late_rgb,
        reference_landmarks=landmarks_for(
            m_early.landmarks_px,
            original_width_px=m_early.width_px,
            display_width_px=early_rgb.shape[1],
        ),
        moving_landmarks=landmarks_for(
            m_late.landmarks_px,
            original_width_px=m_late.width_px,
            display_width_px=late_rgb.shape[1],
        ),
    )
    return PairView(comparison, early_rgb, pair.moving, late_rgb, pair.aligned, pair.note)
