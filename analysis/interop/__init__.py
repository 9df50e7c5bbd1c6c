"""Interop: what Candor hands to other systems and reads from devices.

The modules here are pure writers and readers (no database, no streamlit):

* :mod:`analysis.interop.dicom`: a photo as a DICOM VL Photographic Image (JPEG baseline).
* :mod:`analysis.interop.fhir`: a patient's series as a FHIR R4 (R4B models) Bundle.
* :mod:`analysis.interop.tables`: tidy CSV tables for analysts, with a data dictionary.
* :mod:`analysis.interop.device_import`: hair-density CSV files as trichoscopes write them.

The audited, consent- and role-checked entry points that read the database are in
:mod:`analysis.services.interop`.
"""
