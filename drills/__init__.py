"""Fault drills for issue 17: a bounded loopback load generator, faults injected into a private
cluster (cluster.harness, `private_services=True`), job accounting and a markdown report.

`python -m drills [--short] [--only NAME] [--report docs/reliability.md]`, or `make drills`.
"""
