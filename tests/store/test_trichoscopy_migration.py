"""Migrations 0009 (device calibrations, follicle counts) and 0010 (photo site, counted area,
corrected density) up and down on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, inspect

from analysis.store import db


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_migration_0009_trichoscopy_tables_up_and_down(db_url: str) -> None:
    engine = db.make_engine(db_url)
    new = {"device_calibrations", "follicle_counts"}
    assert new <= _tables(engine)
    db.downgrade(engine, "0008")
    assert not new & _tables(engine) and "photos" in _tables(engine)
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision() and new <= _tables(engine)
    cols = {c["name"] for c in inspect(engine).get_columns("follicle_counts")}
    assert {
        "auto_count",
        "points_px",
        "method",
        "version",
        "confirmed_count",
        "confirmed_by_id",
        "confirmed_at",
        "density_per_cm2",
        "measurement_id",
    } <= cols
    engine.dispose()


def test_migration_0010_site_area_and_corrected_density_up_and_down(db_url: str) -> None:
    engine = db.make_engine(db_url)

    def cols(table: str) -> set[str]:
        return {c["name"] for c in inspect(engine).get_columns(table)}

    new = {"area_cm2", "confirmed_density_per_cm2"}
    assert new <= cols("follicle_counts") and "site" in cols("photos")
    db.downgrade(engine, "0009")
    assert not new & cols("follicle_counts") and "site" not in cols("photos")
    assert "auto_count" in cols("follicle_counts")
    db.upgrade(engine)
    assert new <= cols("follicle_counts") and "site" in cols("photos")
    engine.dispose()
