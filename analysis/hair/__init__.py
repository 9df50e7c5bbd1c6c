"""Follicle counting on trichoscopy images (pure: numpy, OpenCV). See ``analysis.hair.count``."""
