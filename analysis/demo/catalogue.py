"""What the demo clinic offers: endpoint definitions, protocols and products (all fictional brands).

Figures are plausible for the literature the protocols are modelled on (phototrichogram density
gains of +15-30 hairs/cm^2 after a course of scalp mesotherapy or PRP; Corneometer hydration
+5-15 AU and Cutometer R2 +0.03-0.08 after skin boosters), not taken from any one study.

Two kinds of endpoint:

* **baseline-anchored** (``relative=False``): measured at every session including session 1; the
  change from session 1 is the outcome (hair density, pull test, shedding, hydration, elasticity).
* **relative** (``relative=True``): rated at follow-ups only, *against* the baseline photos or
  state (GAIS, the 7-point global photographic score, satisfaction); ``neutral`` is the "no change"
  anchor. ``expected_course`` gives their expected shift from ``neutral`` by session.

``expected_course`` (protocol): endpoint code -> ``{"session number": expected change}`` in the
endpoint's units and sign (a fall in pull-test count is negative).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# re-exported for the demo (``X as X`` marks an explicit re-export)
from analysis.outcomes.endpoint_library import ENDPOINTS as ENDPOINTS
from analysis.outcomes.endpoint_library import ENDPOINTS_BY_CODE as ENDPOINTS_BY_CODE
from analysis.outcomes.endpoint_library import FACE_SITE_ELASTICITY as FACE_SITE_ELASTICITY
from analysis.outcomes.endpoint_library import FACE_SITE_HYDRATION as FACE_SITE_HYDRATION
from analysis.outcomes.endpoint_library import HAIR_SITE as HAIR_SITE
from analysis.outcomes.endpoint_library import EndpointSpec as EndpointSpec


@dataclass(frozen=True)
class ProductSpec:
    """A product and its lots (lot number, expiry as days relative to the seeding date)."""

    name: str
    lots: tuple[tuple[str, int], ...]
    volume_ml: tuple[float, float]  # typical range per session
    preparation: tuple[str, ...]
    depth_intent: str
    sites: tuple[str, ...]
    mixed_share: float = 0.0


@dataclass(frozen=True)
class ProtocolSpec:
    """One ``Protocol`` row plus the seeder's schedule and response model.

    ``share``: share of series on this protocol; ``first_intervals_days``: optional denser start
    (weekly sessions before settling on ``interval_days``), used for half of the series.
    """

    name: str
    modality: str
    target_area: str
    planned_sessions: int
    interval_days: int
    required_views: tuple[str, ...]
    endpoint_codes: tuple[str, ...]
    primary_endpoint: str
    expected_course: dict[str, dict[str, float]]
    tolerances: dict[str, float]
    description: str
    product: ProductSpec
    share: float
    first_intervals_days: tuple[int, ...] = ()
    goals: tuple[str, ...] = ()
    reactions: tuple[tuple[str, float, str, tuple[float, float]], ...] = field(default=())

    def row(self) -> dict[str, Any]:
        return dict(
            name=self.name,
            modality=self.modality,
            target_area=self.target_area,
            planned_sessions=self.planned_sessions,
            interval_days=self.interval_days,
            required_views=list(self.required_views),
            endpoint_codes=list(self.endpoint_codes),
            primary_endpoint=self.primary_endpoint,
            tolerances=dict(self.tolerances),
            expected_course=self.expected_course,
            description=self.description,
        )


def _course(values: list[float]) -> dict[str, float]:
    """Session number (from 1) -> value, as JSON-keyed dict."""
    return {str(i): round(v, 3) for i, v in enumerate(values, start=1)}


#: Scalp protocols tolerate more camera-distance and framing drift (the head is round; the
#: registration scale is noisier than the inter-pupillary distance).
_SCALP_TOLERANCES = {
    "distance_warn_pct": 8.0,
    "distance_fail_pct": 15.0,
    "framing_warn_frac": 0.15,
    "framing_fail_frac": 0.25,
}

# reactions: (term, probability per session, severity, duration range in days)
_NEEDLE_REACTIONS = (
    ("erythema", 0.55, "mild", (0.2, 1.5)),
    ("pinpoint_bleeding", 0.35, "mild", (0.0, 0.1)),
    ("tenderness", 0.25, "mild", (0.5, 2.0)),
    ("oedema", 0.12, "mild", (0.5, 2.0)),
    ("bruising", 0.06, "mild", (3.0, 8.0)),
    ("headache", 0.04, "mild", (0.2, 1.0)),
)
_FACE_REACTIONS = (
    ("erythema", 0.6, "mild", (0.5, 2.0)),
    ("papules", 0.45, "mild", (1.0, 3.0)),
    ("oedema", 0.3, "mild", (1.0, 3.0)),
    ("bruising", 0.15, "mild", (3.0, 10.0)),
    ("tenderness", 0.2, "mild", (0.5, 2.0)),
    ("pinpoint_bleeding", 0.3, "mild", (0.0, 0.1)),
)

PROTOCOLS: tuple[ProtocolSpec, ...] = (
    ProtocolSpec(
        name="Scalp mesotherapy for hair (8 sessions)",
        modality="mesotherapy",
        target_area="scalp",
        planned_sessions=8,
        interval_days=14,
        first_intervals_days=(7, 7, 7),
        required_views=("scalp_vertex", "scalp_frontal_hairline"),
        endpoint_codes=(
            "hair_density",
            "pull_test",
            "global_photo_score",
            "sinclair_shedding",
            "patient_satisfaction",
            "norwood_stage",
            "ludwig_stage",
        ),
        primary_endpoint="hair_density",
        expected_course={
            "hair_density": _course([0, 6, 12, 16, 19, 22, 24, 26]),
            "pull_test": _course([0, -1.5, -2.4, -3.0, -3.4, -3.7, -3.9, -4.0]),
            "sinclair_shedding": _course([0, -0.8, -1.2, -1.4, -1.6, -1.7, -1.8, -1.8]),
            "global_photo_score": _course([0, 0.9, 1.2, 1.4, 1.6, 1.7, 1.8, 1.9]),
            "patient_satisfaction": _course([0, 1.5, 2.0, 2.4, 2.7, 2.9, 3.0, 3.1]),
        },
        tolerances=dict(_SCALP_TOLERANCES),
        description=(
            "Intradermal microinjections (nappage / micropapules) over the thinning area "
            "every 1-2 weeks: weekly for the first sessions when possible, then every two "
            "weeks; 8 sessions. Photos: vertex and frontal hairline. Primary endpoint: "
            "phototrichogram density at the tattoo-marked vertex target site."
        ),
        product=ProductSpec(
            name="Capillaria hair cocktail 5 mL (biotin, dexpanthenol, copper peptide)",
            lots=(("CH23-0412", -120), ("CH24-0107", 60), ("CH24-0733", 240), ("CH25-0218", 420)),
            volume_ml=(3.0, 5.0),
            preparation=(
                "undiluted, 32G 4 mm needle",
                "undiluted, injector gun 0.05 mL/shot",
                "with 0.5 mL lidocaine 2% added",
            ),
            depth_intent="intradermal 1-2 mm (nappage)",
            sites=(
                "vertex",
                "crown",
                "frontal hairline",
                "mid-scalp",
                "temporal left",
                "temporal right",
            ),
            mixed_share=0.15,
        ),
        share=0.30,
        goals=(
            "Reduce shedding and improve density at the vertex",
            "Thicker hair along the parting before an event",
            "Slow progression of androgenetic alopecia",
        ),
        reactions=_NEEDLE_REACTIONS,
    ),
    ProtocolSpec(
        name="PRP for hair (4 sessions, monthly)",
        modality="prp",
        target_area="scalp",
        planned_sessions=4,
        interval_days=28,
        required_views=("scalp_vertex", "scalp_frontal_hairline"),
        endpoint_codes=(
            "hair_density",
            "pull_test",
            "global_photo_score",
            "sinclair_shedding",
            "patient_satisfaction",
            "norwood_stage",
            "ludwig_stage",
        ),
        primary_endpoint="hair_density",
        expected_course={
            "hair_density": _course([0, 15, 24, 30]),
            "pull_test": _course([0, -2.6, -3.6, -4.2]),
            "sinclair_shedding": _course([0, -1.1, -1.5, -1.8]),
            "global_photo_score": _course([0, 1.1, 1.6, 1.9]),
            "patient_satisfaction": _course([0, 1.8, 2.6, 3.1]),
        },
        tolerances=dict(_SCALP_TOLERANCES),
        description=(
            "Autologous platelet-rich plasma (single spin, ~4-6 mL from 20 mL whole "
            "blood, not activated) injected intradermally over the thinning area every "
            "4 weeks for 3-4 sessions. Photos: vertex and frontal hairline."
        ),
        product=ProductSpec(
            name="AutoSpin PRP kit 20 mL (ACD-A tube)",
            lots=(("PK-2311-A", -30), ("PK-2403-C", 150), ("PK-2409-B", 330), ("PK-2502-A", 510)),
            volume_ml=(4.0, 6.0),
            preparation=(
                "single spin 1500 g x 10 min, 20 mL whole blood -> 5 mL PRP",
                "single spin 1500 g x 10 min, 20 mL whole blood -> 4 mL PRP, "
                "buffered with 0.5 mL sodium bicarbonate 8.4%",
            ),
            depth_intent="intradermal / superficial subcutaneous 2-3 mm",
            sites=("vertex", "crown", "frontal hairline", "mid-scalp"),
            mixed_share=0.1,
        ),
        share=0.25,
        goals=(
            "Improve density at the crown",
            "Stabilise hair loss after stopping finasteride",
            "Support density alongside topical minoxidil",
        ),
        reactions=_NEEDLE_REACTIONS,
    ),
    ProtocolSpec(
        name="Facial mesotherapy for skin quality (5 sessions)",
        modality="mesotherapy",
        target_area="face",
        planned_sessions=5,
        interval_days=14,
        first_intervals_days=(7, 7),
        required_views=("face_frontal", "face_oblique_left", "face_oblique_right"),
        endpoint_codes=("skin_hydration", "gais_clinician", "gais_patient", "patient_satisfaction"),
        primary_endpoint="skin_hydration",
        expected_course={
            "skin_hydration": _course([0, 7, 10, 12, 13]),
            "gais_clinician": _course([0, -1.0, -1.3, -1.5, -1.6]),
            "gais_patient": _course([0, -1.1, -1.4, -1.6, -1.7]),
            "patient_satisfaction": _course([0, 1.8, 2.4, 2.8, 3.0]),
        },
        tolerances={},
        description=(
            "Micropapules of a non-crosslinked hyaluronic acid / vitamin / amino-acid "
            "cocktail over the face every 1-2 weeks, 4-6 sessions (5 planned). Photos: "
            "frontal and both 45-degree obliques, make-up removed."
        ),
        product=ProductSpec(
            name="Vitalux revitalising cocktail 3 mL (non-crosslinked HA 0.3%, vitamins)",
            lots=(("VX-23K09", -200), ("VX-24C15", 90), ("VX-24H02", 270), ("VX-25A20", 450)),
            volume_ml=(2.0, 3.0),
            preparation=(
                "undiluted, 32G 4 mm needle, micropapules 1 cm apart",
                "undiluted, 30G 13 mm needle, linear retrograde",
            ),
            depth_intent="superficial intradermal (micropapules)",
            sites=("forehead", "cheeks", "periorbital", "perioral", "neck"),
            mixed_share=0.0,
        ),
        share=0.25,
        goals=(
            "Brighter, more hydrated skin",
            "Improve fine lines and texture before a wedding",
            "Skin quality after summer sun exposure",
        ),
        reactions=_FACE_REACTIONS,
    ),
    ProtocolSpec(
        name="HA skin booster (3 sessions, monthly)",
        modality="skin_booster",
        target_area="face",
        planned_sessions=3,
        interval_days=28,
        required_views=("face_frontal", "face_oblique_left", "face_oblique_right"),
        endpoint_codes=(
            "skin_elasticity_r2",
            "skin_hydration",
            "gais_clinician",
            "gais_patient",
            "patient_satisfaction",
        ),
        primary_endpoint="skin_elasticity_r2",
        expected_course={
            "skin_elasticity_r2": _course([0, 0.06, 0.085]),
            "skin_hydration": _course([0, 10, 14]),
            "gais_clinician": _course([0, -1.2, -1.7]),
            "gais_patient": _course([0, -1.3, -1.8]),
            "patient_satisfaction": _course([0, 2.2, 3.1]),
        },
        tolerances={"color_warn_de": 3.5, "color_fail_de": 7.0},
        description=(
            "Stabilised hyaluronic acid 20 mg/mL with glycerol, injected as 5 bolus points "
            "per side (malar/submalar) plus micro-depots, every 4 weeks for 3 sessions. "
            "Photos: frontal and both obliques; redness is compared more strictly."
        ),
        product=ProductSpec(
            name="Hydrelle HA skin booster 2 mL (HA 20 mg/mL, glycerol)",
            lots=(
                ("HB-2310-17", -60),
                ("HB-2402-05", 120),
                ("HB-2408-11", 300),
                ("HB-2501-02", 480),
            ),
            volume_ml=(1.0, 2.0),
            preparation=("as supplied, 29G 13 mm needle", "as supplied, 25G 38 mm cannula"),
            depth_intent="deep dermis (bolus points)",
            sites=("malar left", "malar right", "submalar left", "submalar right", "neck"),
            mixed_share=0.0,
        ),
        share=0.20,
        goals=(
            "Improve skin laxity and hydration of the lower face",
            "Crepey skin of the cheeks",
            "Skin quality maintenance",
        ),
        reactions=_FACE_REACTIONS,
    ),
)

#: The recalled lot (one per demo clinic) and the note on it.
RECALLED_LOT = ("Hydrelle HA skin booster 2 mL (HA 20 mg/mL, glycerol)", "HB-2402-05")
RECALL_NOTE = (
    "Manufacturer field safety notice FSN-2025-031: sterility assurance deviation at "
    "the filling line; quarantine remaining stock and review patients treated with "
    "this lot for delayed inflammatory reactions."
)

ADVERSE_EVENTS: tuple[dict[str, Any], ...] = (
    dict(
        term="prolonged_nodules",
        severity="moderate",
        onset_day=10,
        duration_days=42.0,
        resolved=True,
        escalation="Reviewed by medical director day 14; massage, observation.",
        notes="Palpable, non-tender nodules at two injection points; resolved by week 6.",
        target_area="face",
    ),
    dict(
        term="delayed_inflammatory_nodule",
        severity="moderate",
        onset_day=21,
        duration_days=28.0,
        resolved=True,
        escalation="Medical director reviewed day 22; oral antibiotic course, lot reported to "
        "manufacturer.",
        notes="Tender erythematous nodule, left malar.",
        target_area="face",
        recalled_lot=True,
    ),
    dict(
        term="injection_site_infection",
        severity="moderate",
        onset_day=3,
        duration_days=12.0,
        resolved=True,
        escalation="GP letter; flucloxacillin 500 mg qds 7 days; swab taken.",
        notes="Localised folliculitis-like pustules at the crown.",
        target_area="scalp",
    ),
    dict(
        term="vascular_occlusion",
        severity="severe",
        onset_day=0,
        duration_days=21.0,
        resolved=True,
        escalation="Blanching and livedo at the left nasolabial area within minutes; treatment "
        "stopped, hyaluronidase 1500 IU in divided doses, warm compress, aspirin "
        "300 mg; medical director attended; reviewed daily for 5 days; healed "
        "without necrosis.",
        notes="Vascular event during the skin booster bolus technique.",
        target_area="face",
    ),
    dict(
        term="telogen_effluvium_flare",
        severity="mild",
        onset_day=14,
        duration_days=35.0,
        resolved=True,
        escalation="",
        notes="Transient increased shedding after the first sessions; reassured.",
        target_area="scalp",
    ),
)
