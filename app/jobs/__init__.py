"""Durable background jobs: the `jobs` table is the source of truth, huey the transport."""
