"""Exports: documents built on the `reports` queue for their owner (docs/architecture.md §9).

`models` (the `exports` table), `catalogue` (the kinds, who may ask for each, their filters),
`service` (request, build, list, download, delete, expire) and `renderers` (each kind's
document)."""
