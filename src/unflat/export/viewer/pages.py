"""HTML pages of the viewer: a folder index (plots, sampler, meshes, images, videos) and a 3D page.

Every file name that reaches HTML goes through ``html.escape`` (text and attributes) and every
URL through ``urllib.parse.quote``, so a file called ``<script>.png`` is shown, never run.
Pages carry no inline scripts: behaviour lives in the package's ``static/*.js`` (CSP-friendly).
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from unflat.export.viewer.plots import metrics_figures

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
VIDEO_SUFFIXES = (".mp4", ".webm")
VIEWABLE_MESH_SUFFIXES = (".glb", ".gltf")
OTHER_MESH_SUFFIXES = (".obj", ".ply", ".stl")
MAX_FILES_PER_KIND = 400
SKIPPED_FOLDERS = {"checkpoints", "__pycache__"}
STATIC_URL = "/_unflat/static"
MESH_PAGE_URL = "/_unflat/mesh"


@dataclass
class FolderListing:
    """Files under a folder, relative to the served root (POSIX paths), grouped by kind."""

    images: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    meshes: list[str] = field(default_factory=list)
    other_meshes: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    truncated: bool = False


def scan_folder(root: Path, folder: Path) -> FolderListing:
    """Walk ``folder`` (inside ``root``) without following symlinked folders; hidden entries and
    checkpoint folders are skipped; at most MAX_FILES_PER_KIND files of each kind are listed."""
    listing = FolderListing()
    for current, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_FOLDERS)
        for name in sorted(files):
            if name.startswith("."):
                continue
            rel = (Path(current) / name).relative_to(root).as_posix()
            suffix = Path(name).suffix.lower()
            bucket = (
                listing.images if suffix in IMAGE_SUFFIXES
                else listing.videos if suffix in VIDEO_SUFFIXES
                else listing.meshes if suffix in VIEWABLE_MESH_SUFFIXES
                else listing.other_meshes if suffix in OTHER_MESH_SUFFIXES
                else listing.metrics if name == "metrics.jsonl"
                else None
            )
            if bucket is None or not os.path.isfile(os.path.join(current, name)):  # a FIFO is not served: not listed
                continue
            if len(bucket) >= MAX_FILES_PER_KIND:
                listing.truncated = True
                continue
            bucket.append(rel)
    return listing


SAMPLE_GRID = re.compile(r"(^|/)samples/step-(\d+)\.png$")
MESHES_SHOWN = 24  # viewable meshes listed open; the rest folded
NUMBERED = re.compile(r"[_-]?\d+(\.\w+)$")  # render_0003.png -> render (one series per folder and stem)
NUMBERED_SHOWN = 4  # a series of more numbered images than this is folded


def index_page(root: Path, folder: Path, with_sampler: bool) -> str:
    """The index of ``folder``, results first: images (the run's results, then the training sample grids,
    newest first), meshes, the sampler (when a backend is attached), videos, then labelled metric curves
    (timings and counters folded away) and, folded, mesh files the browser cannot show (e.g. ground truth)."""
    listing = scan_folder(root, folder)
    rel_folder = folder.relative_to(root).as_posix()
    title = root.name if rel_folder == "." else f"{root.name}/{rel_folder}"
    sections = []
    grids = sorted((rel for rel in listing.images if SAMPLE_GRID.search(rel)),
                   key=lambda rel: int(SAMPLE_GRID.search(rel).group(2)), reverse=True)
    results = sorted((rel for rel in listing.images if not SAMPLE_GRID.search(rel)),
                     key=lambda rel: (rel.count("/"), rel))
    if results:
        # per-sample files (render_0000.png ... next to their grid): folded, so the grids come first
        series: dict[str, list[str]] = {}
        for rel in results:
            series.setdefault(NUMBERED.sub("", rel), []).append(rel)
        many = {rel for members in series.values() if len(members) > NUMBERED_SHOWN for rel in members}
        body = f'<div class="gallery">{"".join(_figure(rel) for rel in results if rel not in many)}</div>'
        if many:
            body += _folded(f"{len(many)} per-sample images", f'<div class="gallery">{"".join(_figure(rel) for rel in results if rel in many)}</div>')
        sections.append(_section("Images", body))
    if grids:
        figures = "".join(_figure(rel, f"step {int(SAMPLE_GRID.search(rel).group(2))} ({rel})") for rel in grids)
        sections.append(_section("Samples during training (newest first)", f'<div class="gallery">{figures}</div>'))
    if listing.meshes:
        items = [
            f'<li><a href="{_attr(MESH_PAGE_URL + "?file=" + quote(rel))}">{_text(rel)}</a> '
            f'(<a href="{_attr(file_url(rel))}" download>download</a>)</li>'
            for rel in listing.meshes
        ]
        body = f'<ul class="meshes">{"".join(items[:MESHES_SHOWN])}</ul>'
        if len(items) > MESHES_SHOWN:
            body += _folded(f"{len(items) - MESHES_SHOWN} more", f'<ul class="meshes">{"".join(items[MESHES_SHOWN:])}</ul>')
        sections.append(_section("Meshes", body))
    if with_sampler:
        sections.append(_section("Sample", _sampler_form()))
    if listing.videos:
        videos = "".join(
            f'<figure><video src="{_attr(file_url(rel))}" controls loop muted></video>'
            f"<figcaption>{_text(rel)}</figcaption></figure>"
            for rel in listing.videos
        )
        sections.append(_section("Videos", f'<div class="gallery">{videos}</div>'))
    for metrics in listing.metrics:
        main, details = metrics_figures(root / metrics)
        body = f'<div class="plots">{"".join(main)}</div>' if main else "<p>No scalar values yet.</p>"
        if details:
            body += _folded(f"timings and counters ({len(details)} curves)", f'<div class="plots">{"".join(details)}</div>')
        sections.append(_section(f"Training curves: {metrics}", body))
    if listing.other_meshes:
        items = "".join(f'<li>{_text(rel)} (<a href="{_attr(file_url(rel))}" download>download</a>)</li>'
                        for rel in listing.other_meshes)
        sections.append(_section("Other mesh files", _folded(f"{len(listing.other_meshes)} OBJ/PLY/STL files "
                                                             "(download only)", f'<ul class="meshes">{items}</ul>')))
    if listing.truncated:
        sections.append(f"<p>Only the first {MAX_FILES_PER_KIND} files of each kind are listed.</p>")
    if not sections:
        sections.append("<p>Nothing to show yet: no images, meshes, videos or metrics.jsonl here.</p>")
    scripts = [f"{STATIC_URL}/sampler.js"] if with_sampler else []
    return _page(f"unflat: {title}", "".join(sections), scripts)


def _figure(rel: str, caption: str | None = None) -> str:
    return (f'<figure><a href="{_attr(file_url(rel))}"><img src="{_attr(file_url(rel))}" loading="lazy" '
            f'alt="{_attr(rel)}"></a><figcaption>{_text(caption or rel)}</figcaption></figure>')


def _folded(summary: str, body: str) -> str:
    return f"<details><summary>{_text(summary)}</summary>{body}</details>"


def mesh_page(rel: str, siblings: list[str]) -> str:
    """A full-window orbit viewer (drag to rotate, wheel to zoom, right-drag to pan) for one GLB."""
    others = "".join(
        f'<li><a href="{_attr(MESH_PAGE_URL + "?file=" + quote(other))}">{_text(other)}</a></li>'
        for other in siblings
    )
    body = (
        f'<p><a href="/">index</a> / {_text(rel)} '
        f'<label><input type="checkbox" id="autorotate" checked> auto-rotate</label></p>'
        f'<div id="viewport" data-mesh="{_attr(file_url(rel))}"></div>'
        f'<p id="status">loading...</p>'
        f'<ul class="meshes">{others}</ul>'
    )
    return _page(f"unflat: {rel}", body, [f"{STATIC_URL}/mesh-viewer.js"])


def error_page(code: int, message: str) -> str:
    return _page(f"{code}", f"<h1>{code}</h1><p>{_text(message)}</p>", [])


def file_url(rel: str) -> str:
    """URL of a file under the served root."""
    return "/" + quote(rel)


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_text(title)}</h2>{body}</section>"


def _sampler_form() -> str:
    return (
        '<form id="sampler"><label>seed <input type="number" name="seed" value="0" min="0"></label> '
        '<label>class <input type="number" name="class" placeholder="any" min="0"></label> '
        '<button type="submit">render</button> <button type="button" id="random-seed">random</button></form>'
        '<p id="sample-status"></p><img id="sample" alt="sample">'
    )


def _page(title: str, body: str, scripts: list[str]) -> str:
    tags = "".join(f'<script type="module" src="{_attr(src)}"></script>' for src in scripts)
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_text(title)}</title>"
        f'<link rel="stylesheet" href="{STATIC_URL}/style.css">{tags}</head>'
        f"<body><header><h1>{_text(title)}</h1></header><main>{body}</main></body></html>"
    )


def _text(value: str) -> str:
    return html.escape(value, quote=True)


def _attr(value: str) -> str:
    return html.escape(value, quote=True)
