"""A peer SDK's own test suite (E2B's), ported onto crownest and run against CrowNest Local."""
