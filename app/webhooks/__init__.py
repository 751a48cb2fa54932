"""Outbound webhooks on the `sync` queue (docs/webhooks.md, docs/architecture.md §9).

`models` (endpoints and deliveries), `catalogue` (the events and their data), `signing`
(Standard Webhooks signatures, secrets encrypted at rest), `targets` (which URLs may be
called, and the pinned HTTP request), `repository` (queries), `service` (what the API and
admin pages call, and `emit`) and `delivery` (one attempt, run by tasks.webhooks)."""
