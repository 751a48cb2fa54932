"""Huey task modules and this app's queues (tasks.queues). Task modules import domain
services, never the reverse: a service enqueues a task by its name (app.jobs.service.enqueue_task).
"""

from app.jobs.periodic import PeriodicTask
from tasks import emails, maintenance, reports, stats, uploads, webhooks
from tasks.runtime import DurableTask, collect_tasks

TASK_MODULES = (emails, maintenance, reports, stats, uploads, webhooks)
DURABLE_TASKS: tuple[DurableTask, ...] = collect_tasks(TASK_MODULES, DurableTask)
PERIODIC_TASKS: tuple[PeriodicTask, ...] = collect_tasks(TASK_MODULES, PeriodicTask)
