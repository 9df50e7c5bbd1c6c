"""The keyed audit chain: every event's hash is HMAC-SHA-256 under the audit key, so someone holding
the database but not the key cannot re-chain it after a deletion or edit; events of a database
written before migration 0006 keep their unkeyed hashes and still verify; a downgrade to the
unkeyed digest is named. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from analysis.store import anchor, audit, db
from analysis.store.access import SYSTEM
from analysis.store.models import AuditEvent


def _engine(db_url: str) -> Engine:
    return db.make_engine(db_url)


def _write(engine: Engine, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        with db.session_scope(engine) as session:
            audit.record(session, SYSTEM, "test.keyed", object_id=i)


def _writable(engine: Engine) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
            conn.execute(text("DROP TRIGGER audit_events_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))


def _problems(engine: Engine) -> list[tuple[int, str]]:
    with db.session_scope(engine) as session:
        problems: list[audit.ChainProblem | anchor.AnchorProblem] = [
            *audit.verify_chain(session),
            *anchor.verify_anchor(session),
        ]
        return [(p.event_id, p.problem) for p in problems]


def _rechain(engine: Engine, digest, scheme: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """What an attacker with the database does after deleting an event: re-compute every link."""
    with db.session_scope(engine) as session:
        prev = audit.GENESIS
        for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
            event.prev_hash = "x" * 63 + str(event.id % 10)  # keep prev_hash unique meanwhile
            session.flush()
            if scheme is not None:
                event.chain_scheme = scheme
            event.prev_hash = prev
            event.hash = digest(prev, audit._fields(event))
            session.flush()
            prev = event.hash
        session.info.pop("candor_audit_head", None)  # the attacker writes no anchor


def test_new_events_are_keyed_and_verify(db_url: str) -> None:
    engine = _engine(db_url)
    _write(engine, 3)
    with db.session_scope(engine) as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [e.chain_scheme for e in events] == [audit.KEYED] * 3
    key = anchor.audit_key()
    assert events[1].hash == audit.keyed_digest(key, events[0].hash, audit._fields(events[1]))
    assert events[1].hash != audit.event_digest(events[0].hash, audit._fields(events[1]))
    assert _problems(engine) == []
    engine.dispose()


def test_rechaining_without_the_key_is_named_by_the_chain_itself(db_url: str) -> None:
    """Delete a middle event, re-chain with the public digest; anchor file gone too."""
    engine = _engine(db_url)
    _write(engine, 5)
    with db.session_scope(engine) as session:
        ids = list(session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
    _writable(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE id = :i"), {"i": ids[2]})
    _rechain(engine, audit.event_digest)
    with db.session_scope(engine) as session:
        chain = audit.verify_chain(session)
    assert chain and chain[0].event_id == ids[0] and "keyed hash" in chain[0].problem
    assert {p.event_id for p in chain} == set(ids) - {ids[2]}
    # a guessed key does no better
    _rechain(engine, lambda p, f: audit.keyed_digest(b"guessed-key", p, f))
    with db.session_scope(engine) as session:
        assert all("keyed hash" in p.problem for p in audit.verify_chain(session))
    engine.dispose()


def test_downgrading_the_chain_to_the_unkeyed_digest_is_named(db_url: str) -> None:
    engine = _engine(db_url)
    _write(engine, 4)
    with db.session_scope(engine) as session:
        ids = list(session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
    _writable(engine)
    # only the newest events rewritten as 'sha256': the chain names the downgrade
    with db.session_scope(engine) as session:
        last = session.get_one(AuditEvent, ids[-1])
        last.details = {"rewritten": True}
        last.chain_scheme = audit.UNKEYED
        last.hash = audit.event_digest(last.prev_hash, audit._fields(last))
        session.info.pop("candor_audit_head", None)
    problems = _problems(engine)
    assert any(i == ids[-1] and "downgraded" in p for i, p in problems)
    # the whole chain rewritten as 'sha256' verifies as a chain, but not against the anchor
    _rechain(engine, audit.event_digest, scheme=audit.UNKEYED)
    with db.session_scope(engine) as session:
        assert audit.verify_chain(session) == []
    assert any("hash changed" in p for _i, p in _problems(engine))
    # ... and deleting the anchor file as well leaves nothing keyed to check against: that is the
    # case an off-box copy of the anchor closes (docs/security.md)
    engine.dispose()


def test_keyed_events_without_any_anchor_are_named(db_url: str) -> None:
    engine = _engine(db_url)
    _write(engine, 2)
    from analysis import config

    config.audit_anchor_path().unlink()
    problems = _problems(engine)
    assert problems and "no audit anchor" in problems[0][1]
    engine.dispose()


def test_a_different_key_names_every_keyed_event(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(db_url)
    _write(engine, 2)
    monkeypatch.setenv("CANDOR_AUDIT_KEY", "00" * 32)
    with db.session_scope(engine) as session:
        problems = audit.verify_chain(session)
    assert len(problems) == 2 and all("keyed hash" in p.problem for p in problems)
    engine.dispose()


def test_a_clinic_written_before_the_keyed_chain_still_verifies(db_url: str) -> None:
    """Events chained with the unkeyed digest before 0006 verify after the upgrade; new events
    chain onto them keyed; an edit of an old event is still named; downgrade and upgrade again
    keep the append-only triggers."""
    engine = _engine(db_url)
    db.downgrade(engine, "0005")
    assert "chain_scheme" not in {c["name"] for c in inspect(engine).get_columns("audit_events")}
    assert "sign_in_throttle" not in inspect(engine).get_table_names()
    prev = audit.GENESIS
    with engine.begin() as conn:  # what the code before 0006 wrote
        for i in range(3):
            fields: dict[str, object] = {
                "occurred_at": f"2026-01-0{i + 1}T10:00:00.000000+00:00",
                "actor_email": "system@candor.local",
                "actor_role": "admin",
                "action": "old.event",
                "outcome": "success",
                "patient_id": None,
                "object_type": "",
                "object_id": str(i),
                "details": {},
            }
            digest = audit.event_digest(prev, fields)
            conn.execute(
                text(
                    "INSERT INTO audit_events (occurred_at, actor_email, actor_role, action, outcome, "
                    "patient_id, object_type, object_id, details, prev_hash, hash) VALUES "
                    "(:t, 'system@candor.local', 'admin', 'old.event', 'success', NULL, '', :o, '{}', "
                    ":p, :h)"
                ),
                {"t": f"2026-01-0{i + 1} 10:00:00+00:00", "o": str(i), "p": prev, "h": digest},
            )
            prev = digest
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    with db.session_scope(engine) as session:
        assert audit.verify_chain(session) == []
    _write(engine, 2)
    with db.session_scope(engine) as session:
        schemes = list(session.scalars(select(AuditEvent.chain_scheme).order_by(AuditEvent.id)))
        assert schemes == [audit.UNKEYED] * 3 + [audit.KEYED] * 2
        assert audit.verify_chain(session) == []
        assert anchor.verify_anchor(session) == []
    with pytest.raises(DBAPIError, match="append-only"):  # triggers survived the migration
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_events SET action = 'x'"))
    _writable(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE audit_events SET object_id = '9' WHERE action = 'old.event' "
                "AND object_id = '1'"
            )
        )
    with db.session_scope(engine) as session:
        problems = audit.verify_chain(session)
    assert len(problems) == 1 and "edited" in problems[0].problem
    engine.dispose()


def test_migration_0006_downgrades_and_upgrades(db_url: str) -> None:
    engine = _engine(db_url)
    _write(engine, 1)
    db.downgrade(engine, "0005")
    with pytest.raises(DBAPIError, match="append-only"):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_events"))
    db.upgrade(engine)
    names = {c["name"] for c in inspect(engine).get_columns("audit_events")}
    assert "chain_scheme" in names and "sign_in_throttle" in inspect(engine).get_table_names()
    engine.dispose()


def test_bulk_writer_chains_keyed(db_url: str) -> None:
    engine = _engine(db_url)
    _write(engine, 1)
    with db.session_scope(engine) as session:
        audit.record_many(
            session, [(SYSTEM, {"action": "bulk.event", "object_id": i}) for i in range(50)]
        )
    with db.session_scope(engine) as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.chain_scheme == audit.KEYED)
            )
            == 51
        )
    assert _problems(engine) == []
    engine.dispose()


def test_verify_audit_command_names_the_event_whose_keyed_hash_fails(
    candor_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analysis.cli import main

    assert main(["init-db"]) == 0
    engine = db.get_engine()
    _write(engine, 4)
    with db.session_scope(engine) as session:
        ids = list(session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
    _writable(engine)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_events SET outcome = 'failure' WHERE id = :i"), {"i": ids[1]}
        )
    capsys.readouterr()
    assert main(["verify-audit"]) == 1
    out = capsys.readouterr().out
    assert f"event {ids[1]}: keyed hash does not match" in out


def test_a_walk_from_an_event_links_to_its_predecessor_and_skips_only_what_came_before(
    db_url: str,
) -> None:
    """``walk_chain(since_id=k)``: the same verdicts as the whole walk for events from k on (the
    first of them must link to event k-1's stored hash; a keyed predecessor makes an unkeyed event
    a downgrade), and an edit before k is left to the whole walk."""
    engine = _engine(db_url)
    _write(engine, 6)
    with db.session_scope(engine) as session:
        ids = list(session.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))
        whole = audit.walk_chain(session)
        tail = audit.walk_chain(session, since_id=ids[3])
        stored = session.scalar(select(AuditEvent.hash).where(AuditEvent.id == ids[-1]))
    assert whole.problems == [] and whole.events == 6 and whole.first_id == ids[0]
    assert (tail.problems, tail.events, tail.first_id) == ([], 3, ids[3])
    assert (tail.last_id, tail.last_hash) == (ids[-1], stored)

    _writable(engine)
    with engine.begin() as conn:  # an edit before the tail: only the whole walk sees it
        conn.execute(text("UPDATE audit_events SET object_id = 'x' WHERE id = :i"), {"i": ids[1]})
    with db.session_scope(engine) as session:
        assert audit.walk_chain(session, since_id=ids[3]).problems == []
        assert [p.event_id for p in audit.walk_chain(session).problems] == [ids[1]]
    with engine.begin() as conn:  # the tail's predecessor deleted: its first event is unlinked
        conn.execute(text("DELETE FROM audit_events WHERE id = :i"), {"i": ids[2]})
    with db.session_scope(engine) as session:
        (problem,) = audit.walk_chain(session, since_id=ids[3]).problems
    assert problem.event_id == ids[3] and "chain broken" in problem.problem
    with db.session_scope(engine) as session:  # a downgrade inside the tail after keyed events
        last = session.get_one(AuditEvent, ids[-1])
        last.chain_scheme = audit.UNKEYED
        last.hash = audit.event_digest(last.prev_hash, audit._fields(last))
        session.info.pop("candor_audit_head", None)
    with db.session_scope(engine) as session:
        problems = audit.walk_chain(session, since_id=ids[-1]).problems
    assert [(p.event_id, "downgraded" in p.problem) for p in problems] == [(ids[-1], True)]
    engine.dispose()
