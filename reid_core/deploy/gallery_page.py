"""A self-contained HTML page of search results: each query and its top matches as images.

Images are embedded as base64 JPEG thumbnails (not relative paths), so the page can be
mailed, attached to a run or opened from another folder. Borders: blue = the query,
green = same person id as the query, red = another id, grey = a name without an id, junk
(-1) or a distractor (0) (ids come from Market-1501-style names, `0001_c1s1_...`). Built with the standard
library's html.escape: one small page needs no template engine (and reid_core takes no jinja2).
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Sequence

from PIL import Image

from .model import ModelInfo
from .search import QueryResult, parse_person_id

__all__ = ["render_search_page", "write_search_page"]

_THUMB_HEIGHT = 128
_CSS = """
body { font-family: system-ui, sans-serif; margin: 16px; background: #fafafa; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } p.meta { margin: 0 0 12px; color: #555; font-size: 13px; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 8px; border: 3px solid; border-radius: 4px; }
.row { display: flex; align-items: flex-start; gap: 6px; margin: 10px 0; padding: 8px; background: #fff;
       border: 1px solid #ddd; border-radius: 6px; overflow-x: auto; }
.card { flex: 0 0 auto; text-align: center; font-size: 11px; line-height: 1.25; }
.card img { display: block; height: 128px; border: 4px solid #999; border-radius: 3px; background: #eee; }
.card.query img { border-color: #1f6feb; } .card.ok img { border-color: #1a7f37; } .card.bad img { border-color: #cf222e; }
.card .name { max-width: 92px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; color: #555; }
.sep { flex: 0 0 2px; align-self: stretch; background: #bbb; margin: 0 6px; }
.missing { display: flex; align-items: center; justify-content: center; width: 56px; height: 128px; }
"""


def _thumbnail(path: str) -> str:
    """data: URI of a JPEG thumbnail, or '' when the file cannot be read any more."""
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            width = max(1, round(img.width * _THUMB_HEIGHT / max(1, img.height)))
            img = img.resize((width, _THUMB_HEIGHT), Image.Resampling.BILINEAR)
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=88)
    except OSError:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _card(path: str, css: str, caption: str, cache: dict[str, str]) -> str:
    escape = html.escape
    if path not in cache:
        cache[path] = _thumbnail(path)
    uri = cache[path]
    img = f'<img src="{uri}" alt="{escape(Path(path).name)}">' if uri else '<div class="missing">missing</div>'
    return (
        f'<div class="card {css}" title="{escape(path)}">{img}<div>{caption}</div>'
        f'<div class="name">{escape(Path(path).name)}</div></div>'
    )


def render_search_page(
    results: Sequence[QueryResult], info: ModelInfo, gallery_size: int, title: str = "compact-reid search"
) -> str:
    escape = html.escape
    cache: dict[str, str] = {}
    rows = []
    for q in results:
        qid = parse_person_id(q.path)
        cards = [_card(q.path, "query", "query" + (f" · id {qid[0]}" if qid else ""), cache), '<div class="sep"></div>']
        for m in q.matches:
            css = {True: "ok", False: "bad", None: ""}[m.same_id]
            cards.append(_card(m.path, css, f"#{m.rank} · d={m.distance:.3f}", cache))
        rows.append(f'<div class="row">{"".join(cards)}</div>')
    top_k = max((len(q.matches) for q in results), default=0)
    meta = (
        f"{len(results)} quer{'y' if len(results) == 1 else 'ies'}, top {top_k} of {gallery_size} gallery images; "
        f"model {escape(info.fingerprint)} ({escape(info.preset or 'custom')}, {info.embedding_dim}-d, "
        f"{info.input_height}x{info.input_width}); Euclidean distance on L2-normalised embeddings"
    )
    legend = (
        '<p class="legend"><span style="border-color:#1f6feb">query</span>'
        '<span style="border-color:#1a7f37">same id</span><span style="border-color:#cf222e">other id</span>'
        '<span style="border-color:#999">no id (or junk / distractor)</span></p>'
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<style>{_CSS}</style></head><body><h1>{escape(title)}</h1><p class="meta">{meta}</p>{legend}'
        f"{''.join(rows)}</body></html>\n"
    )


def write_search_page(
    results: Sequence[QueryResult],
    info: ModelInfo,
    gallery_size: int,
    out: str | Path,
    title: str = "compact-reid search",
) -> Path:
    """Render and write atomically (temporary name, then rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(render_search_page(results, info, gallery_size, title), encoding="utf-8")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
