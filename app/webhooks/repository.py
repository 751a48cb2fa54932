"""Queries over webhook endpoints and deliveries. Nothing here commits: the webhook service's
units of work do (app.core.unit_of_work)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import aliased

from app.core.repository import Repository
from app.jobs.models import FINAL_STATUSES, Job
from app.webhooks.models import ACTIVE_DELIVERY_STATUSES, DeliveryStatus, WebhookDelivery, WebhookEndpoint


def endpoint_list_statement() -> Select:
    """Every endpoint, newest first."""
    return select(WebhookEndpoint).order_by(WebhookEndpoint.created_at.desc(), WebhookEndpoint.id)


def delivery_list_statement(endpoint_id: str) -> Select:
    """One endpoint's deliveries, newest first."""
    return (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
    )


class EndpointRepository(Repository[WebhookEndpoint]):
    model = WebhookEndpoint

    def locked(self, endpoint_id: str) -> WebhookEndpoint | None:
        """The endpoint as committed now, its row held until the unit of work ends (FOR UPDATE
        on PostgreSQL), so deliveries finishing at once update `failing_since` in turn."""
        return self.session.scalar(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    def active_routes(self) -> list[tuple[str, list[str]]]:
        """(id, events) of every active endpoint: what `emit` routes by."""
        return [
            (row.id, list(row.events or []))
            for row in self.session.execute(
                select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.is_active.is_(True))
            )
        ]

    def failing_before(self, cutoff: datetime) -> Sequence[WebhookEndpoint]:
        """Active endpoints whose deliveries have all failed since before `cutoff`."""
        return self.session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.is_active.is_(True),
                WebhookEndpoint.failing_since.is_not(None),
                WebhookEndpoint.failing_since <= cutoff,
            )
        ).all()

    def with_expired_previous_secret(self, now: datetime) -> Sequence[WebhookEndpoint]:
        """Endpoints still holding a rotated-out secret past its 24 hours."""
        return self.session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.previous_secret_encrypted.is_not(None),
                WebhookEndpoint.previous_secret_expires_at <= now,
            )
        ).all()


class DeliveryRepository(Repository[WebhookDelivery]):
    model = WebhookDelivery

    def prune_finished(self, finished_before: datetime) -> int:
        """Delete deliveries that ended (succeeded or failed) before `finished_before`; how many."""
        return self.session.execute(
            delete(WebhookDelivery)
            .where(
                WebhookDelivery.status.in_((DeliveryStatus.succeeded, DeliveryStatus.failed)),
                WebhookDelivery.finished_at < finished_before,
            )
            .execution_options(synchronize_session=False)
        ).rowcount

    def locked(self, delivery_id: str) -> WebhookDelivery | None:
        """The delivery as committed now, held until the unit of work ends."""
        return self.session.scalar(
            select(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    def find(self, endpoint_id: str, delivery_id: str) -> WebhookDelivery | None:
        return self.session.scalar(
            select(WebhookDelivery).where(WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id)
        )

    def latest_of(self, endpoint_ids: Collection[str]) -> dict[str, WebhookDelivery]:
        """Each endpoint's newest delivery (endpoints with none left out), in one statement:
        a window ranking each endpoint's deliveries newest first, keeping rank 1 (SQLite and
        PostgreSQL alike)."""
        if not endpoint_ids:
            return {}
        rank = (
            func.row_number()
            .over(
                partition_by=WebhookDelivery.endpoint_id,
                order_by=(WebhookDelivery.created_at.desc(), WebhookDelivery.id),
            )
            .label("rank")
        )
        ranked = select(WebhookDelivery, rank).where(WebhookDelivery.endpoint_id.in_(list(endpoint_ids))).subquery()
        newest = aliased(WebhookDelivery, ranked)
        return {row.endpoint_id: row for row in self.session.scalars(select(newest).where(ranked.c.rank == 1))}

    def orphaned(self, limit: int) -> Sequence[WebhookDelivery]:
        """Deliveries not yet final whose job ended or disappeared (a worker lost on the last
        attempt, a job revoked or purged): nothing will ever finish them."""
        return self.session.scalars(
            select(WebhookDelivery)
            .outerjoin(Job, Job.id == WebhookDelivery.job_id)
            .where(
                WebhookDelivery.status.in_(ACTIVE_DELIVERY_STATUSES),
                (Job.id.is_(None)) | Job.status.in_(FINAL_STATUSES),
            )
            .limit(limit)
        ).all()
