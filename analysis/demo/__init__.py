"""The demo clinic: synthetic, ground-truthed patients and photos (``python -m analysis demo``).

Nothing here is patient data: faces come from scikit-image's bundled ``astronaut()`` portrait,
scalps are drawn procedurally, and every record is simulated.

Modules, in the order the seeder uses them:

* ``catalogue``: endpoints (units, scales, anchors, MCID, noise), the four protocols (schedule,
  views, expected course, photo tolerances), products and lots, the recalled lot, adverse events.
* ``plan``: :func:`~analysis.demo.plan.plan_clinic`, the whole clinic as plain data from one seeded
  generator (patients, consents, series, visits, ratings, reactions, photo shots and habits).
* ``synth`` / ``scalp_synth``: the photos, with every perturbation recorded as truth.
* ``photo_jobs``: one view of one series rendered and run through ingest, measure and compare.
* ``bulk``: writes the plan's record in a few statements per table (the rows and audit events the
  record's services would write), photo records sharing a pool of rendered images.
* ``clinic``: :func:`~analysis.demo.clinic.seed_demo_clinic` renders the photo pool in a process
  pool and writes the clinic in one transaction.
* ``trichoscopy_synth`` / ``trichoscopy_seed``: synthetic trichoscopy close-ups with known follicle
  positions for a few scalp series (site "vertex"), counted by the real engine and confirmed
  through the services after the record is written (a fixed few, whatever the clinic's size).
* ``cli``: the ``demo`` command.
"""

DEFAULT_PATIENTS = 64
DEFAULT_SEED = 2025
#: Photo tracks rendered for real; tracks beyond them share these images (analysis.demo.bulk).
DEFAULT_PHOTO_POOL = 80
