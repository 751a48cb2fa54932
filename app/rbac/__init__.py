"""Roles and permissions (seed §6): `resource:action` permissions granted through roles."""
