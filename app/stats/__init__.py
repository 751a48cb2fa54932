"""Daily statistics (docs/architecture.md, "Daily statistics"): one row per day, metric and
dimension in `daily_stats`, rolled up nightly on the `sync` queue; today's figures are
computed live when a series reaches today."""
