"""GraphiQL served entirely by Herald: a local page and vendored assets, no CDN.

The assets under app/static/graphiql/assets are built by app/static/graphiql/build.sh from
the npm registry and committed, so the IDE works on a machine with no internet access.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from string import Template

import orjson
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from app.config import Settings

STATIC_DIR = Path(__file__).resolve().parents[1] / "static" / "graphiql"
ASSETS_DIR = STATIC_DIR / "assets"
ASSETS_PATH = "/graphiql-assets"

DEFAULT_QUERY = """\
# Herald GraphiQL. Run with Ctrl-Enter (or the play button).
{
  version
  dashboard {
    contactCount
    campaignCount
  }
}
"""

_PAGE = Template((STATIC_DIR / "page.html").read_text(encoding="utf-8"))

# The page's own headers (nosniff comes on every response, app/http/protocol.py). The policy
# allows what the page uses: scripts from Herald only (the page has no inline script),
# styles from Herald and inline ones (GraphiQL's dialogs add <style> elements at run time,
# with no way to give them a nonce), GraphiQL's fonts and icons inlined as data: URLs, and
# /graphql over HTTP and WebSocket ('self' covers ws:/wss: to the page's own host).
PAGE_HEADERS = {
    "Content-Security-Policy": "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src data:",
            "font-src data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def is_loopback(host: str | None) -> bool:
    """Whether `host` (an address or `localhost`) stays on this machine."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def render_graphiql(*, root_path: str = "", default_headers: dict[str, str] | None = None) -> str:
    """The IDE page; `default_headers` fill its Headers tab, so they are visible and the
    user can edit or remove them (e.g. the dev key).

    The config is embedded as JSON in a non-executable script tag; `<` is escaped so no
    value can close the tag early.
    """
    config = {"defaultHeaders": default_headers or {}, "defaultQuery": DEFAULT_QUERY}
    payload = orjson.dumps(config).decode().replace("<", "\\u003c")
    return _PAGE.substitute(assets=f"{root_path}{ASSETS_PATH}", config=payload)


def graphiql_routes(settings: Settings) -> list[BaseRoute]:
    """The assets mount, only when the IDE is on (production serves neither)."""
    if not settings.graphiql_enabled:
        return []
    return [Mount(ASSETS_PATH, StaticFiles(directory=ASSETS_DIR), name="graphiql-assets")]
