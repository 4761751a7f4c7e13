"""Unit tests of the ping receiver (the real aiohttp app, a fake PingRecorder)."""
