"""One photo as a DICOM VL Photographic Image (SOP class 1.2.840.10008.5.1.4.1.1.77.1.4, XC).

:func:`photo_to_dicom` takes the stored (metadata-stripped) photo bytes and a :class:`PhotoMeta`
and returns a DICOM Part 10 file:

* the patient is the clinic's pseudonymous code (Patient's Name and Patient ID); no name, and no
  birth date (Candor keeps the birth year only); Patient Identity Removed = YES;
* one Study per series, one Series per session (UIDs derived deterministically from the ids, so a
  re-export of the same record gives the same UIDs and a PACS merges rather than duplicates);
* anatomic region as SNOMED CT (:mod:`analysis.interop.views`), image laterality and patient
  orientation where the view gives them, the view name in Image Comments;
* pixel data: the image re-encoded as JPEG baseline (ISO 10918-1, 8 bit) with 4:2:2 chroma
  subsampling, hence Photometric Interpretation YBR_FULL_422 (Part 5, 8.2.1); the re-encode is
  what guarantees no EXIF/XMP/ICC metadata is carried over, and it is declared lossy.

``DERMOSCOPY`` attributes (magnification, contact, polarisation) are not written: Candor does not
record them per photo yet.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    JPEGBaseline8Bit,
    VLPhotographicImageStorage,
)

from analysis.interop.views import SCT, view_coding

JPEG_QUALITY = 95
SEXES = {"female": "F", "male": "M", "other": "O", "unknown": ""}


@dataclass(frozen=True)
class PhotoMeta:
    """What the DICOM file says about one photo; ids make the UIDs."""

    photo_id: int
    patient_code: str
    sex: str
    series_id: int
    session_id: int
    session_number: int
    series_started_on: date
    view: str
    taken_at: datetime | None
    performed_on: date
    study_description: str
    series_description: str
    instance_number: int
    #: unique per clinic database and stable (the service uses its first audit event's hash)
    clinic_uid_salt: str = "candor"


_UID_NS = uuid.UUID("0f0c3b1e-6a8d-4b7e-9a55-2f3c9d1e7a40")


def uid_for(salt: str, kind: str, ident: int) -> str:
    """A stable UID under 2.25 (Part 5, B.2: a UUID as a decimal integer) for ``kind`` ``ident``:
    the same clinic (``salt``) and record give the same UID, other clinics others."""
    return f"2.25.{uuid.uuid5(_UID_NS, f'{salt}/{kind}/{ident}').int}"


def jpeg_baseline_422(data: bytes) -> tuple[bytes, int, int]:
    """Re-encode any image Pillow reads as JPEG baseline 4:2:2 without metadata.

    Returns ``(jpeg, rows, columns)``. Raises ``ValueError`` for bytes that are not an image.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"the photo could not be decoded: {exc}") from exc
    out = io.BytesIO()
    rgb.save(
        out,
        format="JPEG",
        quality=JPEG_QUALITY,
        subsampling="4:2:2",
        progressive=False,
        optimize=False,
    )
    return out.getvalue(), rgb.height, rgb.width


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = SCT
    item.CodeMeaning = meaning
    return item


def _da(d: date) -> str:
    return d.strftime("%Y%m%d")


def _tm(t: datetime) -> str:
    return t.strftime("%H%M%S")


def photo_to_dicom(data: bytes, meta: PhotoMeta, *, now: datetime | None = None) -> bytes:
    """The DICOM Part 10 bytes of one photo (see the module docstring)."""
    coding = view_coding(meta.view)
    jpeg, rows, cols = jpeg_baseline_422(data)
    now = now or datetime.now(UTC)
    acquired = meta.taken_at.astimezone(UTC) if meta.taken_at else None
    content_date = acquired.date() if acquired else meta.performed_on
    sop_uid = uid_for(meta.clinic_uid_salt, "photo", meta.photo_id)

    fm = FileMetaDataset()
    fm.MediaStorageSOPClassUID = VLPhotographicImageStorage
    fm.MediaStorageSOPInstanceUID = UID(sop_uid)
    fm.TransferSyntaxUID = JPEGBaseline8Bit
    fm.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    fm.ImplementationVersionName = "CANDOR_1"

    ds = Dataset()
    ds.file_meta = fm
    ds.SpecificCharacterSet = "ISO_IR 192"
    # SOP Common
    ds.SOPClassUID = VLPhotographicImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = _da(now.date())
    ds.InstanceCreationTime = _tm(now)
    ds.TimezoneOffsetFromUTC = "+0000"
    # Patient: the pseudonymous code only
    ds.PatientName = meta.patient_code
    ds.PatientID = meta.patient_code
    ds.PatientBirthDate = ""
    ds.PatientSex = SEXES.get(meta.sex, "")
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Candor: pseudonymous clinic code, no name or birth date stored"
    # General Study: one study per series
    ds.StudyInstanceUID = uid_for(meta.clinic_uid_salt, "series", meta.series_id)
    ds.StudyDate = _da(meta.series_started_on)
    ds.StudyTime = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = str(meta.series_id)[-16:]
    ds.AccessionNumber = ""
    ds.StudyDescription = meta.study_description[:64]
    # General Series: one series per session
    ds.Modality = "XC"
    ds.SeriesInstanceUID = uid_for(meta.clinic_uid_salt, "session", meta.session_id)
    ds.SeriesNumber = meta.session_number
    ds.SeriesDate = _da(meta.performed_on)
    ds.SeriesDescription = meta.series_description[:64]
    # General Equipment (the camera is not known to Candor)
    ds.Manufacturer = ""
    # General Acquisition / General Image
    if acquired:
        ds.AcquisitionDateTime = acquired.strftime("%Y%m%d%H%M%S") + "+0000"
        ds.AcquisitionDate = _da(acquired.date())
        ds.AcquisitionTime = _tm(acquired)
    ds.ContentDate = _da(content_date)
    ds.ContentTime = _tm(acquired) if acquired else "000000"
    ds.InstanceNumber = meta.instance_number
    ds.PatientOrientation = list(coding.orientation) if coding.orientation else ""
    ds.ImageLaterality = coding.laterality
    ds.ImageComments = f"Candor view: {meta.view}"
    ds.BurnedInAnnotation = "NO"
    ds.RecognizableVisualFeatures = "YES" if meta.view.startswith("face_") else "NO"
    # VL Image
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.DerivationDescription = "re-encoded as JPEG baseline 4:2:2; all metadata removed"
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = f"{(rows * cols * 3) / len(jpeg):.2f}"[:16]
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.AnatomicRegionSequence = [_code(coding.region_code, coding.region_meaning)]
    # Acquisition Context (required, may be empty)
    ds.AcquisitionContextSequence = []
    # Image Pixel
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.Rows = rows
    ds.Columns = cols
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([jpeg])
    ds["PixelData"].VR = "OB"

    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def embedded_jpeg(dicom_bytes: bytes) -> bytes:
    """The JPEG frame inside a file written by :func:`photo_to_dicom` (for checks)."""
    from pydicom import dcmread
    from pydicom.encaps import generate_frames

    ds = dcmread(io.BytesIO(dicom_bytes))
    return next(generate_frames(ds.PixelData, number_of_frames=1))
