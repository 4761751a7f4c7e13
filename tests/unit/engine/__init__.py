"""Unit tests of the engine (the API faked by our own seam, tests/unit/kube/fakes.py)."""
