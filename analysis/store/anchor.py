"""Signed audit heads kept outside the database, so truncation and re-chaining are detected.

After every commit that appended audit events, one line ``{"id": …, "hash": …, "mac": …}`` is
appended to the anchor file (:func:`analysis.config.audit_anchor_path`). ``mac`` is
HMAC-SHA-256 over ``"<id>:<hash>"`` with a key that lives neither in the database nor in the data
directory: ``CANDOR_AUDIT_KEY`` (hex or text), else the key file
(:func:`analysis.config.audit_key_path`, created with 32 random bytes on first use).

:func:`verify_anchor` checks that every anchored head is still in the database with the same hash
and that the newest event is not older than the newest anchor: deleting the newest events
(truncation) or deleting/editing an event and re-computing later hashes (re-chaining) is named.
An attacker holding the database *and* the key can still forge anchors; ship the anchor lines off
the box (syslog, a second host) to close that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from analysis import config
from analysis.store.models import AuditEvent

log = logging.getLogger(__name__)
_PENDING = PENDING_KEY = "candor_audit_head"  # session.info: newest uncommitted event


def audit_key() -> bytes:
    """The anchor HMAC key (bytes); created in the key file when neither env nor file has one."""
    env = config.setting("CANDOR_AUDIT_KEY")
    if env:
        try:
            return bytes.fromhex(env)
        except ValueError:
            return env.encode()
    path = config.audit_key_path()
    if not path.exists():
        _create_key_file(path)
    return bytes.fromhex(path.read_text().strip())


def _create_key_file(path: Path) -> None:
    """Create the key file whole or not at all: several processes (replicas, workers) may start
    at once. The key is written to a private temporary file and hard-linked into place; a process
    that loses the race reads the winner's key, and none ever reads a half-written (empty) file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o600)
        try:
            os.link(temp, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
    finally:
        os.unlink(temp)


def sign_head(event_id: int, event_hash: str) -> str:
    """HMAC-SHA-256 (hex) of one chain head."""
    return hmac.new(audit_key(), f"{event_id}:{event_hash}".encode(), hashlib.sha256).hexdigest()


def note_head(session: Session, event_id: int, event_hash: str) -> None:
    """Remember the newest event appended in ``session``; anchored when it commits."""
    current = session.info.get(_PENDING)
    if current is None or event_id > current[0]:
        session.info[_PENDING] = (event_id, event_hash)


def write_anchor(event_id: int, event_hash: str) -> None:
    """Append one signed head line to the anchor file (one ``write`` of one line, O_APPEND)."""
    line = (
        json.dumps({"id": event_id, "hash": event_hash, "mac": sign_head(event_id, event_hash)})
        + "\n"
    )
    path = config.audit_anchor_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@event.listens_for(Session, "after_commit")
def _anchor_on_commit(session: Session) -> None:
    head = session.info.pop(_PENDING, None)
    if head is None:
        return
    try:
        write_anchor(*head)
    except OSError as exc:  # the commit stands; verify-audit will report the missing anchor
        log.error("audit anchor could not be written: %s", exc)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING, None)


@dataclass(frozen=True)
class AnchorProblem:
    event_id: int
    problem: str


def read_anchors(path: Path | None = None) -> list[tuple[int, str, str]]:
    """All anchor lines as (id, hash, mac) of ``path`` (default: the configured anchor file);
    unreadable lines are returned with id -1."""
    path = path or config.audit_anchor_path()
    if not path.exists():
        return []
    out: list[tuple[int, str, str]] = []
    for raw in path.read_text().splitlines():
        try:
            item = json.loads(raw)
            out.append((int(item["id"]), str(item["hash"]), str(item["mac"])))
        except (ValueError, KeyError, TypeError):
            out.append((-1, "", ""))
    return out


def verify_anchor(session: Session, path: Path | None = None) -> list[AnchorProblem]:
    """Compare the database's chain against the signed anchors (of ``path``, default the
    configured anchor file, e.g. a backup's copy); an empty list means they agree."""
    problems: list[AnchorProblem] = []
    hashes = {int(i): str(h) for i, h in session.execute(select(AuditEvent.id, AuditEvent.hash))}
    newest_db = max(hashes, default=0)
    newest_anchor = 0
    lines = read_anchors(path)
    if not lines:
        # every commit since the keyed chain (migration 0006) is anchored: keyed events without
        # any anchor mean the anchor file was deleted or never written (an older clinic, all of
        # whose events are unkeyed, may legitimately have none)
        first_keyed = session.scalar(
            select(AuditEvent.id)
            .where(AuditEvent.chain_scheme == "hmac-sha256")
            .order_by(AuditEvent.id)
            .limit(1)
        )
        if first_keyed is not None:
            problems.append(
                AnchorProblem(
                    int(first_keyed),
                    "no audit anchor found, yet keyed "
                    "events exist (anchor file deleted or not written)",
                )
            )
    for event_id, event_hash, mac in lines:
        if event_id < 0 or not hmac.compare_digest(mac, sign_head(event_id, event_hash)):
            problems.append(
                AnchorProblem(
                    max(event_id, 0), "anchor line forged or damaged (signature does not match)"
                )
            )
            continue
        newest_anchor = max(newest_anchor, event_id)
        stored = hashes.get(event_id)
        if stored is None:
            if event_id > newest_db:
                continue  # reported once below as truncation
            problems.append(AnchorProblem(event_id, "anchored event deleted from the database"))
        elif stored != event_hash:
            problems.append(
                AnchorProblem(
                    event_id,
                    "anchored event's hash changed "
                    "(events deleted or edited, later hashes re-chained)",
                )
            )
    if newest_anchor > newest_db:
        problems.append(
            AnchorProblem(
                newest_anchor,
                f"audit trail truncated: anchor names event "
                f"{newest_anchor}, the newest in the database is {newest_db}",
            )
        )
    return problems
