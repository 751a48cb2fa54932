"""Notifications (docs/architecture.md §9): one `notify(user, kind, ...)` for every feature, an
in-app centre and emails per the user's preferences, queued with the change that caused them."""
