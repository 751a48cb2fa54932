"""Caching (docs/architecture.md §8): L1 in-process with cross-instance invalidation, L2 through
Flask-Caching (Redis in production), stampede protection, and graceful degradation when
Redis is down. What is cached lives beside its feature, each with its named invalidator."""

from app.cache.aside import CacheKey, bump, cached, invalidate

__all__ = ["CacheKey", "bump", "cached", "invalidate"]
