"""Roles and permissions (docs/architecture.md §6): `resource:action` permissions granted through roles."""
