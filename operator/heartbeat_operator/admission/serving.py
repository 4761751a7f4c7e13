"""The webhook's HTTPS listener: ``web.AppRunner`` + ``web.TCPSite(ssl_context=...)`` as
aiohttp's docs show, inside the operator's loop, with the certificate re-read when its
files change.

cert-manager renews a certificate weeks before it expires and the kubelet updates the
mounted Secret in place; re-reading the files (same ``SSLContext``, new handshakes get
the new pair) keeps a replica that runs for months from serving an expired certificate.
A pair that does not load (half-written during an update) keeps the previous one and is
tried again at the next check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from heartbeat_operator.admission.app import make_webhook_app

logger = logging.getLogger(__name__)

#: Seconds between checks of the certificate files' modification times (a stat each).
RELOAD_INTERVAL = 30.0


class Certificates:
    """A server ``SSLContext`` whose key pair is reloaded when its files change."""

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._stamp: tuple[float, float] | None = None
        self.load()  # an unreadable pair at start-up is the caller's error: raised

    def _mtimes(self) -> tuple[float, float]:
        return self.cert_file.stat().st_mtime, self.key_file.stat().st_mtime

    def load(self) -> None:
        stamp = self._mtimes()
        self.context.load_cert_chain(self.cert_file, self.key_file)
        self._stamp = stamp

    def reload_if_changed(self) -> bool:
        """Load the pair again if either file changed; True when a new pair was loaded."""
        try:
            if self._mtimes() == self._stamp:
                return False
            self.load()
        except (OSError, ssl.SSLError) as error:
            logger.warning("webhook certificate not reloaded (keeping the previous): %s", error)
            return False
        logger.info("webhook certificate reloaded from %s", self.cert_file)
        return True

    async def watch(self, interval: float = RELOAD_INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()


@dataclass(frozen=True)
class ServedWebhook:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"https://{host}:{self.port}"


@contextlib.asynccontextmanager
async def serve_webhook(
    host: str,
    port: int,
    cert_file: Path,
    key_file: Path,
    *,
    reload_interval: float = RELOAD_INTERVAL,
) -> AsyncIterator[ServedWebhook]:
    """Serve the webhook over HTTPS on ``host:port`` until the block exits."""
    certificates = Certificates(cert_file, key_file)
    runner = web.AppRunner(make_webhook_app(), handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    watcher: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, host, port, ssl_context=certificates.context)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port  # 0 asked: the real one
        watcher = asyncio.create_task(
            certificates.watch(reload_interval), name="webhook-certificates"
        )
        logger.info("admission webhook on https://%s:%d", host, bound)
        yield ServedWebhook(host, bound)
    finally:
        if watcher is not None:
            watcher.cancel()
        await asyncio.shield(runner.cleanup())
