"""Unit tests of the Kubernetes adapters (pure parts, our own seams faked)."""
