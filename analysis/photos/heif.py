"""HEIC/HEIF decoding: importing this module registers pillow-heif's opener with Pillow.

It is imported when a HEIF file is first opened (:func:`analysis.photos.ingest.read_photo` and
:func:`~analysis.photos.ingest.clean_original` sniff the format from the content first), not with
``ingest``: loading libheif and its codecs took 12-20 ms of every process start, and a batch of
JPEGs never needs it. The photo workers' fork server imports it ahead
(``analysis.photos.worker.PRELOAD``), so an upload does not pay it either. Python's import lock makes
the registration happen once, whichever thread opens the first HEIF.

Only the primary image is ever read: no embedded thumbnails (which could differ from the photo),
depth maps or auxiliary images.
"""

from __future__ import annotations

import pillow_heif

pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
