"""What counts as a page, and how a raw request target becomes a page id.

The predictor's vocabulary is pages, not every object: images, stylesheets and scripts follow from the page
that embeds them, so predicting them separately would only add noise. They are kept as assets for cache
work. Query strings are stripped by default so ``/a?x=1`` and ``/a?x=2`` are one page.
"""

from __future__ import annotations

from collections.abc import Collection

from precache.traces.model import Request

ASSET_EXTENSIONS: frozenset[str] = frozenset(
    {
        # images
        "gif", "jpg", "jpeg", "png", "bmp", "ico", "svg", "webp", "tif", "tiff", "xbm", "avif",
        # style, scripts, data the page pulls in
        "css", "js", "mjs", "map", "json", "xml",
        # fonts
        "woff", "woff2", "ttf", "otf", "eot",
        # audio / video
        "mpg", "mpeg", "mp4", "m4v", "mov", "avi", "wmv", "webm", "mkv", "flv", "qt",
        "mp3", "wav", "au", "aif", "aiff", "ogg", "m4a", "ra", "ram",
        # archives and downloads
        "zip", "gz", "tgz", "tar", "bz2", "xz", "7z", "rar", "z", "exe", "dmg", "iso", "bin", "pdf",
    }
)  # fmt: skip
"""Default extensions of static assets (lower case, without the dot)."""

PAGE_STATUSES: frozenset[int] = frozenset({200, 304})


def normalize_path(path: str, keep_query: bool = False) -> str:
    """The page id of a request target: no fragment, no query (unless ``keep_query``), no scheme/host.

    Old proxies logged absolute URIs (``GET http://host/a.html``); they name the same page as ``/a.html``.
    An empty result becomes ``/``.
    """
    cut = path.find("#")
    if cut >= 0:
        path = path[:cut]
    if not keep_query:
        cut = path.find("?")
        if cut >= 0:
            path = path[:cut]
    if "://" in path[:12]:
        slash = path.find("/", path.find("://") + 3)
        path = path[slash:] if slash >= 0 else "/"
    return path or "/"


def extension(path: str) -> str:
    """Lower-case extension of the last path segment of a normalised path ('' when there is none)."""
    slash = path.rfind("/")
    dot = path.rfind(".")
    if dot <= slash:
        return ""
    return path[dot + 1 :].lower()


def is_asset(path: str, asset_extensions: Collection[str] = ASSET_EXTENSIONS) -> bool:
    """True when the path (query ignored) names a static asset by its extension."""
    return extension(normalize_path(path)) in asset_extensions


NON_PAGE_METHODS: frozenset[str] = frozenset({"OPTIONS", "CONNECT", "TRACE"})
"""Methods that never fetch a page (CORS preflights, proxy tunnels, diagnostics)."""


def is_page(
    request: Request,
    asset_extensions: Collection[str] = ASSET_EXTENSIONS,
    statuses: Collection[int] = PAGE_STATUSES,
) -> bool:
    """Default page filter: a 200/304 response to a page-fetching method whose path is not a static asset.

    ``OPTIONS *`` and ``CONNECT host:443`` are not page views: their method fetches nothing (and ``*``
    names the server, not a page).
    """
    return (
        request.status in statuses
        and request.method not in NON_PAGE_METHODS
        and request.path != "*"
        and not is_asset(request.path, asset_extensions)
    )
