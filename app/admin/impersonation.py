"""`POST /admin/users/<id>/impersonate` and `/admin/impersonation/stop`: "view as" (issue 16, in progress)."""
