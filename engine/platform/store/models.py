"""Outcome-model versions and their promotions (which version Operation Mode serves).

Versions are registered once (shipped ones from ``models/``, trained ones by Learning Mode);
promotions and rollbacks are appended rows, never updates, so the newest promotion of a protocol
names the version it serves and the history stays auditable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from engine.platform.store.audit import audit_event
from engine.platform.store.connection import Database
from engine.platform.store.records import ModelVersionInfo, PromotionInfo, StoreError
from engine.platform.store.tables import ModelVersion, Promotion
from engine.platform.store.values import json_safe, utc_now

__all__ = ["ModelQueries"]


class ModelQueries(Database):
    """Model versions, promotions and rollbacks."""

    def register_model_version(
        self, *, protocol: str, arch: str, version: str, location: str, source: str,
        created_by: str, metrics: Mapping[str, Any], training: Mapping[str, Any],
    ) -> ModelVersionInfo:
        """Record a model version (idempotent on ``version``: the existing row is returned)."""

        def insert(s: Session) -> ModelVersionInfo:
            row = ModelVersion(protocol=protocol, arch=arch, version=version, location=location,
                               source=source, created_at=utc_now(), created_by=created_by,
                               metrics=json_safe(dict(metrics)),
                               training=json_safe(dict(training)))
            s.add(row)
            s.flush()
            return _model_info(row)

        return self._find_or_insert(lambda: self.model_version(version), insert)

    def update_model_metrics(self, version: str, metrics: Mapping[str, Any]) -> None:
        """Replace the metrics of a registered version."""
        with self.session() as s:
            s.execute(update(ModelVersion).where(ModelVersion.version == version)
                      .values(metrics=json_safe(dict(metrics))))

    def model_version(self, version: str) -> ModelVersionInfo | None:
        """The registered version ``version``, None when unknown."""
        with self.session() as s:
            m = s.scalar(_by_version(version))
            return None if m is None else _model_info(m)

    def model_versions(self, protocol: str) -> list[ModelVersionInfo]:
        """Every version of a protocol, newest first."""
        with self.session() as s:
            return [_model_info(m) for m in s.scalars(
                select(ModelVersion).where(ModelVersion.protocol == protocol)
                .order_by(ModelVersion.id.desc()))]

    def promote(self, protocol: str, version: str, *, username: str, action: str = "promote",
                reason: str = "") -> PromotionInfo:
        """Make ``version`` the one Operation Mode serves for ``protocol`` (audited)."""
        if action not in ("promote", "rollback"):
            raise StoreError(f"action {action!r} is not promote or rollback")
        with self.session() as s:
            m = s.scalar(_by_version(version))
            if m is None or m.protocol != protocol:
                raise StoreError(f"no {protocol} model version {version!r}")
            row = Promotion(protocol=protocol, model_version_pk=m.id, action=action,
                            reason=reason, created_at=utc_now(), created_by=username)
            s.add(row)
            s.add(audit_event(username, action, {"protocol": protocol, "version": version,
                                                 "reason": reason}))
            s.flush()
            return PromotionInfo(row.id, protocol, version, action, reason, row.created_at,
                                 username)

    def serving_version(self, protocol: str) -> ModelVersionInfo | None:
        """The version the newest promotion of ``protocol`` names (None: never promoted)."""
        with self.session() as s:
            m = s.scalar(select(ModelVersion).join(Promotion,
                                                   Promotion.model_version_pk == ModelVersion.id)
                         .where(Promotion.protocol == protocol)
                         .order_by(Promotion.id.desc()).limit(1))
            return None if m is None else _model_info(m)

    def latest_promotion_id(self) -> int:
        """Id of the newest promotion of any protocol (0 when none): cheap to poll."""
        with self.session() as s:
            return int(s.scalar(select(func.max(Promotion.id))) or 0)

    def promotions(self, protocol: str) -> list[PromotionInfo]:
        """Promotions and rollbacks of a protocol, newest first."""
        with self.session() as s:
            rows = s.execute(select(Promotion, ModelVersion.version)
                             .join(ModelVersion, Promotion.model_version_pk == ModelVersion.id)
                             .where(Promotion.protocol == protocol)
                             .order_by(Promotion.id.desc())).all()
            return [PromotionInfo(p.id, p.protocol, v, p.action, p.reason, p.created_at,
                                  p.created_by) for p, v in rows]


def _by_version(version: str) -> Select[tuple[ModelVersion]]:
    return select(ModelVersion).where(ModelVersion.version == version)


def _model_info(m: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(m.id, m.protocol, m.arch, m.version, m.location, m.source,
                            m.created_at, m.created_by, dict(m.metrics), dict(m.training))
