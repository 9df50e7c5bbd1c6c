"""Outcome analytics: pure functions over DataFrames plus a few permission-checked loaders.

frames     load_frames (the one analytics read of the database), build_frames, to_csv_bytes
stats      Wilson / exact Poisson / Student-t intervals, quartiles, the minimum-n rule
endpoints  change from baseline, responder definition, expected course
filters    series selection (protocol, lot, operator, dates, baseline severity, photo gate)
cohorts    compare_protocols (medical director)
adjusted   adjusted_protocol_effect (mixed model)
timelines  consult_timeline, plain_language_summary (consult staff)
series     list_patients, series_overview (clinicians)
safety     trace_lot
pairs      representative_pairs (consented, typical photo pairs)
simulate   simulated clinics with a known truth (tests, benchmarks)
"""
