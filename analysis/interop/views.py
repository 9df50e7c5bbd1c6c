"""Candor's photo views in DICOM terms: anatomic region (SNOMED CT), laterality, orientation.

Only codes we could verify are used; the view itself has no SNOMED CT code we know of for
clinical photography, so the view name is written in Image Comments and the Series Description.
The same table is in docs/interop.md.
"""

from __future__ import annotations

from dataclasses import dataclass

SCT = "SCT"  # DICOM's coding scheme designator for SNOMED CT


@dataclass(frozen=True)
class ViewCoding:
    region_code: str
    region_meaning: str
    #: Image Laterality (0020,0062): "L"/"R" for a view of one side, "U" for an unpaired region.
    laterality: str
    #: Patient Orientation (0020,0020): directions of the rows and columns, or () when the view
    #: gives none reliably (scalp photos are taken at any rotation).
    orientation: tuple[str, ...]


FACE = ("89545001", "Face structure")
SCALP = ("41695006", "Scalp structure")

VIEW_CODINGS: dict[str, ViewCoding] = {
    # Facing the camera: along a row the image goes toward the patient's left, down a column
    # toward the feet.
    "face_frontal": ViewCoding(*FACE, laterality="U", orientation=("L", "F")),
    "face_oblique_left": ViewCoding(*FACE, laterality="L", orientation=()),
    "face_oblique_right": ViewCoding(*FACE, laterality="R", orientation=()),
    # Left profile (camera at the patient's left): the face points to the image's left, so a row
    # runs toward posterior; the right profile is the mirror image.
    "face_lateral_left": ViewCoding(*FACE, laterality="L", orientation=("P", "F")),
    "face_lateral_right": ViewCoding(*FACE, laterality="R", orientation=("A", "F")),
    "scalp_vertex": ViewCoding(*SCALP, laterality="U", orientation=()),
    "scalp_midline_part": ViewCoding(*SCALP, laterality="U", orientation=()),
    "scalp_frontal_hairline": ViewCoding(*SCALP, laterality="U", orientation=()),
    "scalp_temporal_left": ViewCoding(*SCALP, laterality="L", orientation=()),
    "scalp_temporal_right": ViewCoding(*SCALP, laterality="R", orientation=()),
    "scalp_trichoscopy": ViewCoding(*SCALP, laterality="U", orientation=()),
}


def view_coding(view: str) -> ViewCoding:
    try:
        return VIEW_CODINGS[view]
    except KeyError:
        raise ValueError(
            f"no DICOM coding for view {view!r}; expected one of {', '.join(VIEW_CODINGS)}"
        ) from None
