"""Candor's analysis layer: pure, typed Python (never imports streamlit).

Sub-packages
------------
photos    ingest, landmarks (the only MediaPipe user), pose, scale, lighting, expression,
          sharpness, compare, align
outcomes  endpoints, series, cohorts, timelines, safety
store     models, db, image store, audit
"""
