"""The Jinja2 environment of the offline reports and documents (what-if, oversight,
transparency, dossier, redress letters): strict and autoescaping, one per template folder.

``.html.j2`` templates would escape nothing under ``select_autoescape()`` (it looks at the last
extension only), so autoescaping is on for every template here. Web pages use Starlette's
environment (``web/render.py``); legal documents use the lifecycle's sandboxed one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

Filters = tuple[tuple[str, Callable[..., Any]], ...]


@lru_cache(maxsize=16)
def environment(directory: Path, filters: Filters = ()) -> jinja2.Environment:
    """A strict, autoescaping environment over ``directory`` with ``filters`` added
    (module-level functions, so the cache key is stable)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(dict(filters))
    return env
