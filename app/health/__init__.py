"""Health probes (docs/architecture.md §13): /health/live, /health/ready, /health/startup.

Its blueprint and views are in app.health.routes."""
