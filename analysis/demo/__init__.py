"""The demo clinic: synthetic, ground-truthed patients and photos (``python -m analysis demo``).

Nothing here is patient data: faces come from scikit-image's bundled ``astronaut()`` portrait,
scalps are drawn procedurally, and every record is simulated.
"""

DEFAULT_PATIENTS = 64
DEFAULT_SEED = 2025
