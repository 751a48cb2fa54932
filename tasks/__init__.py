"""Huey queues and task modules. Importing this package registers every task."""

from tasks import emails, maintenance  # noqa: F401  (registration side effect is the point)
