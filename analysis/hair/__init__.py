"""Follicle counting on trichoscopy images (pure: numpy, OpenCV). See ``analysis.hair.count``."""

#: The count's stated error: median absolute relative count error of the engine against the expert
#: boxes of the 23 held-out subjects (92 images) of ``../shared/datasets/trichoscopy_follicles``,
#: as printed by ``benchmarks/hair_counts.py`` for method ``shaft-components+mlp`` version
#: ``STATED_ERROR_VERSION`` (10.0 % for 0.3, 8.7 % for 0.2; README "Follicle counts"). Charts draw it as the band
#: ``density × (1 ± STATED_REL_ERROR)``. Re-run the benchmark and update both constants whenever
#: ``analysis.hair.count.VERSION`` changes (the page says when a count's version differs).
STATED_REL_ERROR = 0.100
STATED_ERROR_VERSION = "0.3"
