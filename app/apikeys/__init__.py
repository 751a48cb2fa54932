"""Personal API keys: `hth_<prefix>_<secret>` bearer credentials for scripts and servers,
stored as a hash only, limited to scopes within the owner's current permissions."""
