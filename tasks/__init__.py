"""Huey queues and task modules. Importing this package registers every task."""

from tasks import emails, maintenance, uploads  # noqa: F401  (registration side effect is the point)
