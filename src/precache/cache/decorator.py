"""``@cached(cache, ttl=...)``: memoize an async function through a :class:`PredictiveCache`.

The default key is ``module.qualname:`` + the JSON of the arguments, so it is stable across processes
(no ``hash()``, no pickle). Arguments that are not JSON-able need an explicit ``key=`` function; that
is refused with a clear error instead of producing a surprising key.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import orjson

T = TypeVar("T")


class LoadingCache(Protocol):
    """What the decorator needs of a cache (:class:`~precache.cache.layered.PredictiveCache` has it): the
    protocol keeps this module below the cache class, which offers ``cache.cached`` through it."""

    async def get(self, key: str, *, loader: Callable[[], Awaitable[Any]], ttl: float | None = ...,
                  tags: Sequence[str] = ...) -> Any: ...


def default_key(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    try:
        body = orjson.dumps([list(args), kwargs], option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise TypeError(
            f"@cached cannot build a key for {fn.__qualname__}: arguments are not JSON-able ({exc}); "
            "pass key=lambda *args, **kwargs: ... to @cached"
        ) from None
    return f"{fn.__module__}.{fn.__qualname__}:{body.decode()}"


def cached(
    cache: LoadingCache,
    ttl: float | None = None,
    key: Callable[..., str] | None = None,
    tags: Sequence[str] = (),
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Decorate an ``async def``; calls go through ``cache.get(key, loader=...)`` (single-flight,
    SWR and early refresh included)."""

    def decorate(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@cached decorates async functions; {fn.__qualname__} is not one")

        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> T:
            k = key(*args, **kwargs) if key is not None else default_key(fn, args, kwargs)
            result: T = await cache.get(k, loader=lambda: fn(*args, **kwargs), ttl=ttl, tags=tags)
            return result

        return wrapper

    return decorate
