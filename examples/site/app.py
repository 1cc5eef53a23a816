"""The example site as a Starlette app, and ``build_site`` putting precache's middleware in front of it.

Pages (each waits ``delay`` seconds, a simulated slow query, then reads SQLite): ``/`` (front page),
``/section/{name}`` (listing), ``/article/{slug}`` (detail), ``/search?q=`` (search), ``/stats``
(statistics), ``/account`` (personal: ``Cache-Control: private, no-store``). Public pages say
``Cache-Control: max-age=300`` (search and statistics less), which is what lets a shared cache keep them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from examples.site.data import ARTICLES_PER_SECTION, Store
from examples.site.trace import section_page

Mode = Literal["none", "cache", "warm", "prefetch"]
"""``none``: the bare app; ``cache``: the middleware caching responses, no predictor; ``warm``: plus the
predictor warming the server cache; ``prefetch``: plus browser prefetch hints (Speculation Rules)."""

TEMPLATES = Path(__file__).with_name("templates")


def create_app(db_path: Path, delay: float = 0.12) -> Starlette:
    """The bare site (no precache)."""
    store = Store(db_path)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.globals["section_url"] = section_page
    sections = store.sections()

    async def render(request: Request, template: str, max_age: int | None, **context: Any) -> Response:
        await asyncio.sleep(delay)  # the slow query this site stands for
        response = templates.TemplateResponse(request, template, {
            "sections": sections, "delay": delay, "current": None, "query": None, **context})
        response.headers["cache-control"] = f"max-age={max_age}" if max_age else "private, no-store"
        return response

    async def front(request: Request) -> Response:
        articles = await asyncio.to_thread(store.articles, "frontpage")
        return await render(request, "section.html", 300, title="Front page", articles=articles,
                            current="frontpage")

    async def section(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in sections:
            return HTMLResponse("<h1>No such section</h1>", status_code=404)
        articles = await asyncio.to_thread(store.articles, name)
        return await render(request, "section.html", 300, title=name.title(), articles=articles, current=name)

    async def article(request: Request) -> Response:
        row = await asyncio.to_thread(store.article, request.path_params["slug"])
        if row is None:
            return HTMLResponse("<h1>No such story</h1>", status_code=404)
        next_slug = f"{row['section']}-{row['rank'] % ARTICLES_PER_SECTION + 1}"
        return await render(request, "article.html", 300, title=row["title"], article=row,
                            paragraphs=row["body"].split("\n\n"), next_slug=next_slug, current=row["section"])

    async def search(request: Request) -> Response:
        query = request.query_params.get("q", "").strip()[:100]
        results = await asyncio.to_thread(store.search, query) if query else []
        return await render(request, "search.html", 60, title="Search", results=results, query=query)

    async def stats(request: Request) -> Response:
        rows = await asyncio.to_thread(store.stats)
        return await render(request, "stats.html", 30, title="Statistics", rows=rows)

    async def account(request: Request) -> Response:
        return await render(request, "account.html", None, title="Account", user=request.cookies.get("site_user"))

    return Starlette(routes=[
        Route("/", front), Route("/section/{name}", section), Route("/article/{slug}", article),
        Route("/search", search), Route("/stats", stats), Route("/account", account),
    ])


def build_site(db_path: Path, mode: Mode = "prefetch", *, delay: float = 0.12, predictor: Any = None,
               cache: Any = None, threshold: float = 0.25, max_per_page: int = 3) -> Any:
    """The site in one of the four modes (see :data:`Mode`); ``predictor`` is needed for warm/prefetch.
    ``threshold`` applies to both warming and hints (the default 0.7 of precache is for costly origins;
    this site's predicted pages are cheap to prefetch)."""
    app = create_app(db_path, delay)
    if mode == "none":
        return app
    from precache.warming import WarmerConfig
    from precache.web import HintConfig, PrecacheMiddleware, WebConfig

    hints = HintConfig(mode="rules" if mode == "prefetch" else "none", threshold=threshold,
                       max_per_page=max_per_page)
    return PrecacheMiddleware(app, cache, predictor=predictor if mode in ("warm", "prefetch") else None,
                              config=WebConfig(hints=hints),
                              warmer_config=WarmerConfig(threshold=threshold, top_k=max(max_per_page, 3)))
