"""The comparison checks, one module per check: its rule, its message and the tolerances it reads.

``analysis.photos.compare.compare`` runs them in order; ``common`` holds the shared grading helpers.
"""
