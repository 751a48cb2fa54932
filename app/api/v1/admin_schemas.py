"""Request and response schemas of the admin API (`/api/v1/admin/...`).

Job schemas list their fields explicitly: a job's `payload` can hold secrets (links with
tokens), so no admin schema has it, and `from_attributes` never picks it up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.api.pagination import PageQuery
from app.core.input import MAX_ID
from app.jobs.models import JobStatus
from app.jobs.queues import QUEUES

# Built from the one list of queues and the one enum of statuses, so the document stays true.
QueueName = Literal[tuple(QUEUES)]
JobStatusName = Literal[tuple(str(status) for status in JobStatus)]

# Users ------------------------------------------------------------------------------------


class AdminUserRolesIn(BaseModel):
    """The complete set of roles the user should hold (it replaces the current one)."""

    model_config = ConfigDict(extra="forbid")

    roles: list[str] = Field(max_length=10, examples=[["manager"]])


# Roles and permissions --------------------------------------------------------------------


class AdminPermissionOut(BaseModel):
    name: str = Field(examples=["users:read"])
    description: str


class AdminPermissionList(BaseModel):
    items: list[AdminPermissionOut]


class AdminRoleOut(BaseModel):
    name: str
    description: str
    permissions: list[str]
    members: int = Field(ge=0, description="Accounts holding the role (deleted accounts not counted)")
    built_in: bool = Field(description="Built-in roles cannot be deleted")


class AdminRoleList(BaseModel):
    items: list[AdminRoleOut]


class AdminRoleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=2,
        max_length=64,
        description="Lower-case letters, digits, '-' and '_', starting with a letter",
        examples=["editor"],
    )
    description: str = Field(default="", max_length=200)
    permissions: list[str] = Field(default_factory=list, max_length=50)


class AdminRolePatch(BaseModel):
    """Send `permissions` (the complete new set), `description`, or both."""

    model_config = ConfigDict(extra="forbid")

    permissions: list[str] | None = Field(default=None, max_length=50)
    description: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _something_to_change(self) -> AdminRolePatch:
        if self.permissions is None and self.description is None:
            raise ValueError("send `permissions`, `description` or both")
        return self


# Jobs -------------------------------------------------------------------------------------


class AdminJobQuery(PageQuery):
    queue: QueueName | None = None
    status: JobStatusName | None = None
    q: str | None = Field(
        default=None,
        max_length=100,
        description="Job id (or its start), task name, the causing user's email, or text in the arguments summary",
    )
    user_id: int | None = Field(default=None, ge=1, le=MAX_ID, description="Jobs caused by this user")


class AdminJobOut(BaseModel):
    """A job as listed: what it is, where it stands and when it ran."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    queue: str
    task: str = Field(examples=["tasks.emails.send_email"])
    status: str = Field(examples=[str(status) for status in JobStatus])
    attempts: int
    max_attempts: int
    progress: int | None = Field(description="0–100 while a long task runs")
    error: str | None = Field(description="The last failure's message")
    user_id: int | None = Field(description="Who caused the job, if anyone")
    created_at: datetime
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None


class AdminJobDetailOut(AdminJobOut):
    """One job in full, except its payload (never shown: it can hold secrets)."""

    traceback: str | None = Field(description="The last failure's traceback")
    progress_message: str | None
    next_attempt_at: datetime | None = Field(description="When a `retrying` job runs again")
    updated_at: datetime
    request_id: str | None = Field(description="The request that enqueued the job")
    args_summary: dict[str, Any] = Field(description="The arguments with secrets and bodies left out")


class AdminQueueOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    workers: int = Field(description="Configured worker concurrency")
    max_attempts: int
    counts: dict[str, int] = Field(description="Jobs per status (every status, zeros included)")
    total: int


class AdminQueueList(BaseModel):
    items: list[AdminQueueOut]
