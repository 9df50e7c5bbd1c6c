"""Candor's clinic record: models, database, image store and audit trail."""
