"""The standard endpoint library: the definitions a clinic starts from (hair, skin, PROMs, GAIS).

Production code (Protocol setup's "add from the library") and the demo generator both read these;
the demo only adds protocols, products and simulated courses on top
(:mod:`analysis.demo.catalogue`).

Two kinds of endpoint:

* **baseline-anchored** (``relative=False``): measured at every session including session 1; the
  change from session 1 is the outcome (hair density, pull test, shedding, hydration, elasticity).
* **relative** (``relative=True``): rated at follow-ups only, *against* the baseline photos or
  state (GAIS, the 7-point global photographic score, satisfaction); ``neutral`` is the "no change"
  anchor.

``baseline_mean`` / ``baseline_sd`` are typical untreated baselines from the literature the demo
protocols are modelled on (used to simulate the demo clinic; not clinical reference ranges).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HAIR_SITE = "vertex target site (tattoo-marked, 1 cm²)"
FACE_SITE_HYDRATION = "left malar (Corneometer)"
FACE_SITE_ELASTICITY = "left cheek (Cutometer, 2 mm probe)"


@dataclass(frozen=True)
class EndpointSpec:
    """One ``EndpointDefinition`` row plus how the seeder simulates it.

    ``baseline_mean`` / ``baseline_sd``: distribution of the true baseline (baseline-anchored
    endpoints); ``neutral``: the no-change anchor (relative endpoints); ``integer``: stored as whole
    numbers (ordinal and count kinds).
    """

    code: str
    name: str
    kind: str
    unit: str | None
    scale_min: float | None
    scale_max: float | None
    higher_is_better: bool
    mcid: float | None
    noise_sd: float | None
    anchors: dict[str, str] | None = None
    patient_reported: bool = False
    relative: bool = False
    neutral: float | None = None
    baseline_mean: float | None = None
    baseline_sd: float | None = None
    site: str = ""
    blinded: bool = False

    @property
    def integer(self) -> bool:
        return self.kind in ("ordinal", "count")

    def row(self) -> dict[str, Any]:
        """Keyword arguments for ``EndpointDefinition``."""
        return dict(
            code=self.code,
            name=self.name,
            kind=self.kind,
            unit=self.unit,
            scale_min=self.scale_min,
            scale_max=self.scale_max,
            anchors=self.anchors,
            higher_is_better=self.higher_is_better,
            mcid=self.mcid,
            noise_sd=self.noise_sd,
            patient_reported=self.patient_reported,
            neutral=self.neutral if self.relative else None,
        )


_GAIS_ANCHORS = {
    "1": "exceptional improvement",
    "2": "very improved",
    "3": "improved",
    "4": "no change",
    "5": "worse",
}

ENDPOINTS: tuple[EndpointSpec, ...] = (
    EndpointSpec(
        "hair_density",
        "Hair density, phototrichogram at the vertex target site",
        "numeric",
        "hairs/cm²",
        0,
        400,
        True,
        mcid=12.0,
        noise_sd=7.0,
        baseline_mean=135.0,
        baseline_sd=22.0,
        site=HAIR_SITE,
        blinded=True,
    ),
    # what a trichoscope reports beside density (imported from its CSV, analysis.interop)
    # counted by analysis.hair on a calibrated trichoscopy photo (services.trichoscopy); the
    # clinician's confirmed or corrected count is stored beside it with the photo
    EndpointSpec(
        "follicle_density_auto",
        "Follicle density, automated",
        "numeric",
        "hairs/cm²",
        0,
        1000,
        True,
        mcid=None,
        noise_sd=None,
    ),
    EndpointSpec(
        "hair_terminal_pct",
        "Terminal hairs, share of hairs counted (trichoscopy)",
        "numeric",
        "%",
        0,
        100,
        True,
        mcid=None,
        noise_sd=None,
    ),
    EndpointSpec(
        "hair_vellus_pct",
        "Vellus hairs, share of hairs counted (trichoscopy)",
        "numeric",
        "%",
        0,
        100,
        False,
        mcid=None,
        noise_sd=None,
    ),
    EndpointSpec(
        "hair_mean_diameter_um",
        "Mean hair shaft diameter (trichoscopy)",
        "numeric",
        "µm",
        0,
        500,
        True,
        mcid=None,
        noise_sd=None,
    ),
    EndpointSpec(
        "pull_test",
        "Hair pull test (hairs extracted from a ~60-hair grasp, 3 areas)",
        "count",
        "hairs",
        0,
        40,
        False,
        mcid=2.0,
        noise_sd=1.3,
        baseline_mean=8.0,
        baseline_sd=2.5,
    ),
    EndpointSpec(
        "sinclair_shedding",
        "Sinclair hair shedding scale (patient-rated, 1-6)",
        "ordinal",
        None,
        1,
        6,
        False,
        mcid=1.0,
        noise_sd=0.45,
        anchors={
            "1": "minimal shedding",
            "2": "very light",
            "3": "light",
            "4": "moderate",
            "5": "heavy (excessive)",
            "6": "very heavy (excessive)",
        },
        patient_reported=True,
        baseline_mean=4.8,
        baseline_sd=0.6,
    ),
    EndpointSpec(
        "global_photo_score",
        "Global photographic assessment vs baseline (7-point)",
        "ordinal",
        None,
        -3,
        3,
        True,
        mcid=1.0,
        noise_sd=0.45,
        anchors={
            "-3": "greatly decreased",
            "-2": "moderately decreased",
            "-1": "slightly decreased",
            "0": "no change",
            "1": "slightly increased",
            "2": "moderately increased",
            "3": "greatly increased",
        },
        relative=True,
        neutral=0.0,
        blinded=True,
    ),
    EndpointSpec(
        "norwood_stage",
        "Hamilton-Norwood stage at baseline (men)",
        "ordinal",
        None,
        1,
        7,
        False,
        mcid=None,
        noise_sd=None,
        anchors={
            str(i): f"Norwood {r}"
            for i, r in enumerate(("I", "II", "III", "IV", "V", "VI", "VII"), start=1)
        },
    ),
    EndpointSpec(
        "ludwig_stage",
        "Ludwig grade at baseline (women)",
        "ordinal",
        None,
        1,
        3,
        False,
        mcid=None,
        noise_sd=None,
        anchors={"1": "Ludwig I (mild)", "2": "Ludwig II (moderate)", "3": "Ludwig III (severe)"},
    ),
    EndpointSpec(
        "gais_clinician",
        "Global Aesthetic Improvement Scale, clinician-rated",
        "ordinal",
        None,
        1,
        5,
        False,
        mcid=1.0,
        noise_sd=0.45,
        anchors=_GAIS_ANCHORS,
        relative=True,
        neutral=4.0,
        blinded=True,
    ),
    EndpointSpec(
        "gais_patient",
        "Global Aesthetic Improvement Scale, patient-rated",
        "ordinal",
        None,
        1,
        5,
        False,
        mcid=1.0,
        noise_sd=0.55,
        anchors=_GAIS_ANCHORS,
        patient_reported=True,
        relative=True,
        neutral=4.0,
    ),
    EndpointSpec(
        "skin_hydration",
        "Stratum corneum hydration (Corneometer)",
        "numeric",
        "AU",
        0,
        120,
        True,
        mcid=6.0,
        noise_sd=3.0,
        baseline_mean=42.0,
        baseline_sd=8.0,
        site=FACE_SITE_HYDRATION,
    ),
    EndpointSpec(
        "skin_elasticity_r2",
        "Gross elasticity R2 (Cutometer, Ua/Uf)",
        "numeric",
        "ratio",
        0,
        1,
        True,
        mcid=0.04,
        noise_sd=0.015,
        baseline_mean=0.62,
        baseline_sd=0.07,
        site=FACE_SITE_ELASTICITY,
    ),
    EndpointSpec(
        "patient_satisfaction",
        "Patient satisfaction (0-10 numeric rating)",
        "ordinal",
        None,
        0,
        10,
        True,
        mcid=1.0,
        noise_sd=0.8,
        anchors={"0": "not at all satisfied", "5": "neither", "10": "completely satisfied"},
        patient_reported=True,
        relative=True,
        neutral=5.0,
    ),
)
ENDPOINTS_BY_CODE = {e.code: e for e in ENDPOINTS}
