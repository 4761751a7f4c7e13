"""SVG status badges: ``GET /badge/<namespace>/<name>.svg`` on the metrics port (issue 16
item 4), for a README or a wall screen.

Read-only and unauthenticated, so off unless ``--badges`` (settings.MetricsSettings.badges):
whoever reaches the metrics port then learns a monitor's state by its name (docs/
operating.md says so). A badge shows the monitor's name and its ``status.state``
(``Paused``, ``Down``, ...), nothing else: no reason, message, time or output. An unknown
monitor is a 404 (an SVG saying "not found"), the same for one outside the watched
namespaces.

``render_badge`` is pure (a flat badge in the shields.io style, widths estimated from
character counts, text escaped); the view asks ``lookup(namespace, name)`` for the state.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from xml.sax.saxutils import escape

from aiohttp import web

#: ``(namespace, name) -> state`` (``New``, ``Healthy``, ...), ``""`` for a monitor the
#: operator has not judged yet, None for no such monitor.
StateLookup = Callable[[str, str], str | None]

BADGE_ROUTE = "/badge/{namespace}/{file}"
BADGE_METHODS = ("GET", "HEAD")

#: Colours by state (DESIGN section 2), the usual traffic lights.
COLOURS = {
    "Healthy": "#4c1",  # green
    "Grace": "#dfb317",  # yellow: late, or failing below the threshold
    "Down": "#e05d44",  # red
    "Paused": "#9f9f9f",  # grey
    "New": "#007ec6",  # blue
}
UNKNOWN_COLOUR = "#9f9f9f"

_NAMESPACE_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
#: Badges are cached by proxies and browsers for at most this long (seconds): a state
#: change shows within a minute, and a README full of badges does not hammer the port.
MAX_AGE = 60


def _width(text: str) -> int:
    # Verdana 11px averages about 7 px a character; 10 px of padding on each side.
    return 7 * len(text) + 10


def render_badge(label: str, message: str, colour: str) -> str:
    """A flat two-part badge: ``label`` on grey, ``message`` on ``colour``."""
    left, right = _width(label), _width(message)
    total = left + right
    label_x, message_x = left * 5, (left + right / 2) * 10
    label_text, message_text = escape(label), escape(message)
    title = escape(f"{label}: {message}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" '
        f'role="img" aria-label="{title}"><title>{title}</title>'
        f'<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        f'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,'
        f'sans-serif" font-size="110">'
        f'<text x="{label_x:.0f}" y="140" transform="scale(.1)">{label_text}</text>'
        f'<text x="{message_x:.0f}" y="140" transform="scale(.1)">{message_text}</text>'
        f"</g></svg>"
    )


def badge_for(name: str, state: str | None) -> tuple[int, str]:
    """``(HTTP status, SVG)`` for a monitor's state as ``lookup`` gave it."""
    if state is None:
        return 404, render_badge(name, "not found", UNKNOWN_COLOUR)
    shown = state.lower() if state else "pending"
    return 200, render_badge(name, shown, COLOURS.get(state, UNKNOWN_COLOUR))


def badge_view(lookup: StateLookup) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def badge(request: web.Request) -> web.StreamResponse:
        if request.method not in BADGE_METHODS:
            return web.Response(
                status=405,
                text=f"method {request.method} not allowed",
                headers={"Allow": ", ".join(BADGE_METHODS)},
            )
        namespace = request.match_info["namespace"]
        file = request.match_info["file"]
        name = file.removesuffix(".svg")
        if (
            name == file
            or not _NAMESPACE_RE.fullmatch(namespace)
            or len(name) > 253
            or not _NAME_RE.fullmatch(name)
        ):
            return web.Response(status=404, text="not found")
        status, svg = badge_for(name, lookup(namespace, name))
        return web.Response(
            status=status,
            text=svg,
            content_type="image/svg+xml",
            headers={"Cache-Control": f"max-age={MAX_AGE}"},
        )

    return badge
