"""`dataspec` command line: schema, validate, normalize. Thin commands over the library."""

from __future__ import annotations

import csv
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from .errors import DataSpecError, Note
from .imagesize import image_size
from .io import atomic_open, dump, load, load_with_notes, output_path
from .models import Page, unknown_keys
from .normalize.decode import decode_bytes
from .paths import ImageResolver, discover
from .schema import schema_bytes, write_schema

T = TypeVar("T")

PROGRESS_MIN = 200
"""Show a progress bar (on stderr) from this many files on."""

CONTEXT: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "show_default": True,
    "max_content_width": 100,
}
"""Click settings of the group and every command: `-h`, defaults shown in `--help`."""


def progress(items: Sequence[T], label: str) -> Iterator[T]:
    """Iterate with a progress bar on stderr when there are many items."""
    if len(items) < PROGRESS_MIN:
        yield from items
        return
    with click.progressbar(items, label=label, file=sys.stderr) as bar:
        yield from bar


def _expand(paths: Sequence[str], image_root: str | None) -> list[Path]:
    try:
        files = discover(paths, image_root=image_root)
    except DataSpecError as exc:
        raise click.BadParameter(str(exc), param_hint="PATH") from exc
    if not files:
        raise click.UsageError(f"no JSON files found under {', '.join(paths)}")
    return files


@click.group(name="dataspec", context_settings=CONTEXT)
@click.version_option(package_name="dataspec")
def main() -> None:
    """DataSpec v0.3: the contract for comic-page training data."""


@main.command(context_settings=CONTEXT)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
def schema(out: str | None) -> None:
    """Print the JSON Schema of a DataSpec v0.3 page."""
    if out:
        write_schema(out)
        click.echo(f"wrote {out}", err=True)
    else:
        click.echo(schema_bytes().decode(), nl=False)


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True)
@click.option("--lenient", is_flag=True, help="Accept every variant the normalizers know.")
@click.option("--image-root", help="Resolve page images under this root (comma/semicolon list).")
@click.option(
    "--check-images",
    is_flag=True,
    help="Fail pages whose image is missing, not an image, or not page_size (header only).",
)
@click.option("--forbid-unknown", is_flag=True, help="Fail pages carrying keys the spec lacks.")
@click.option(
    "--report", type=click.Path(dir_okay=False), help="Per-file results as .csv or .jsonl."
)
@click.option("--notes", "show_notes", is_flag=True, help="Print each lenient coercion.")
def validate(
    paths: tuple[str, ...],
    lenient: bool,
    image_root: str | None,
    check_images: bool,
    forbid_unknown: bool,
    report: str | None,
    show_notes: bool,
) -> None:
    """Check page files. Exit 1 if any is invalid.

    PATHS: page files, folders (searched recursively) or .txt lists of JSON paths.
    """
    if check_images and not image_root:
        raise click.UsageError("--check-images needs --image-root")
    if report and not report.lower().endswith((".csv", ".jsonl")):
        raise click.UsageError("--report must end in .csv or .jsonl")
    files = _expand(paths, image_root)
    resolver = ImageResolver(image_root) if image_root else None
    rows: list[dict[str, Any]] = []
    codes: Counter[str] = Counter()
    emptied = 0
    for path in progress(files, "validating"):
        row: dict[str, Any] = {"path": str(path), "valid": True, "error": "", "notes": ""}
        try:
            notes: list[Note] = []
            if lenient:
                page, notes = load_with_notes(path, resolver=resolver if check_images else None)
            else:
                page = load(path, resolver=resolver if check_images else None)
            if forbid_unknown and (extra := unknown_keys(page)):
                raise DataSpecError(f"unknown keys: {', '.join(extra[:5])}", file=path)
            if check_images:
                _check_image(page, path)
            codes.update(n.code for n in notes)
            row["notes"] = ";".join(sorted({n.code for n in notes}))
            if show_notes:
                for note in notes:
                    click.echo(f"{path}: {note}", err=True)
            dropped = next((n for n in notes if n.code == ALL_PANELS_DROPPED), None)
            if dropped is not None:
                emptied += 1
                row.update(valid=False, error=f"{path}: {dropped.message}")
                click.echo(f"EMPTY {row['error']}", err=True)
        except DataSpecError as exc:
            error = str(exc) if lenient else str(exc) + _lenient_hint(path)
            row.update(valid=False, error=error)
            click.echo(f"INVALID {error}", err=True)
        rows.append(row)
    if report:
        _write_report(report, rows)
    invalid = sum(not r["valid"] for r in rows) - emptied
    counts = f"{len(rows) - invalid - emptied} valid, {invalid} invalid"
    if emptied:
        counts += f", {emptied} with every panel dropped (exit 1)"
    click.echo(f"{len(rows)} files: {counts}")
    if codes:
        click.echo("notes: " + ", ".join(f"{c}={n}" for c, n in sorted(codes.items())))
    if invalid or emptied:
        sys.exit(1)


def _lenient_hint(path: Path) -> str:
    """A hint for a file strict loading refused: ' (… --lenient …)' when the file is a reply
    wrapped in a markdown code fence (```json … ```), which `--lenient` reads; else ''."""
    try:
        raw = path.read_bytes()
    except OSError:
        return ""
    notes: list[Note] = []
    try:
        decode_bytes(raw, notes)
    except DataSpecError:
        return ""
    if any(n.code == "markdown_fence" for n in notes):
        return " (the file is a reply wrapped in a ```json code fence: --lenient reads it)"
    return ""


def _check_image(page: Page, path: Path) -> None:
    """The resolved image has a readable header, and its size is the page's `page_size`."""
    size = image_size(page.page_image_path)
    if size is None:
        raise DataSpecError(f"{page.page_image_path}: not a readable image", file=path)
    if page.page_size is not None and size != (page.page_size.width, page.page_size.height):
        raise DataSpecError(
            f"{page.page_image_path} is {size[0]}x{size[1]}, page_size says "
            f"{page.page_size.width}x{page.page_size.height}",
            file=path,
        )


def _write_report(path: str, rows: Iterable[dict[str, Any]]) -> None:
    with atomic_open(path, "w", newline="") as fh:
        if path.lower().endswith(".jsonl"):
            for row in rows:
                fh.write(orjson.dumps(row).decode() + "\n")
        else:
            writer = csv.DictWriter(fh, fieldnames=["path", "valid", "error", "notes"])
            writer.writeheader()
            writer.writerows(rows)


def _mirror(files: Sequence[Path], inputs: Sequence[str]) -> list[Path]:
    """Output paths keeping the input tree, relative to the common root of all inputs.

    One input folder maps to the output root itself; several inputs keep their own
    folder names below their common root, so two inputs never write the same file.
    """
    bases = [Path(p).resolve() for p in inputs if Path(p).is_dir()]
    dirs = {p.resolve() for p in bases}
    bases.extend(
        f.resolve().parent for f in files if not any(f.resolve().is_relative_to(d) for d in dirs)
    )
    common = Path(os.path.commonpath([str(b) for b in bases]))
    return [f.resolve().relative_to(common) for f in files]


def _page_size_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[int, int] | None:
    if value is None:
        return None
    parts = value.lower().replace(",", "x").split("x")
    if len(parts) == 2 and all(p.strip().isdigit() and int(p) > 0 for p in parts):
        return int(parts[0]), int(parts[1])
    raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT (e.g. 1988x3057)")


ALL_PANELS_DROPPED = "all_panels_dropped"


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True)
@click.option("--out-dir", required=True, type=click.Path(file_okay=False), help="Output root.")
@click.option("--image-root", help="Resolve images (absolute paths are written); comma list ok.")
@click.option(
    "--caption-as-narration", is_flag=True, help="Seed behaviour: VLM caption → narration."
)
@click.option("--box-format", help="Force the layout of 4-number boxes (xywh, xyxy, cxcywh, …).")
@click.option(
    "--page-size",
    callback=_page_size_option,
    help="WIDTHxHEIGHT for files that give no size (box_2d and 0–1 boxes need one) and "
    "whose image is not found.",
)
@click.option(
    "--skip-log",
    type=click.Path(dir_okay=False),
    help="CSV of skipped files.",
    show_default="OUT_DIR/normalize_skips.csv",
)
@click.option("--notes", "show_notes", is_flag=True, help="Print each coercion.")
def normalize(
    paths: tuple[str, ...],
    out_dir: str,
    image_root: str | None,
    caption_as_narration: bool,
    box_format: str | None,
    page_size: tuple[int, int] | None,
    skip_log: str | None,
    show_notes: bool,
) -> None:
    """Write canonical v0.3 files for any page variants, mirroring the input tree.

    PATHS: page files, folders (searched recursively) or .txt lists of JSON paths. Exit 1
    when every file is skipped (each is in the skip log).

    Files whose every panel had to be dropped (e.g. `box_2d` with no page size) are
    written with no panels and counted in the summary; `validate --lenient` fails them.
    """
    files = _expand(paths, image_root)
    rels = _mirror(files, paths)
    resolver = ImageResolver(image_root) if image_root else None
    out_root = Path(out_dir)
    skips: list[dict[str, str]] = []
    codes: Counter[str] = Counter()
    written = 0
    for path, rel in progress(list(zip(files, rels, strict=True)), "normalizing"):
        try:
            page, notes = load_with_notes(
                path,
                resolver=resolver,
                caption_as_narration=caption_as_narration,
                box_format=box_format,
                page_size=page_size,
            )
            dump(page, output_path(out_root, rel))
            written += 1
            codes.update(n.code for n in notes)
            if show_notes:
                for note in notes:
                    click.echo(f"{path}: {note}", err=True)
        except DataSpecError as exc:
            skips.append({"path": str(path), "reason": exc.reason, "error": str(exc)})
            click.echo(f"SKIPPED {exc}", err=True)
    log = Path(skip_log) if skip_log else out_root / "normalize_skips.csv"
    with atomic_open(log, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "reason", "error"])
        writer.writeheader()
        writer.writerows(skips)
    click.echo(f"{len(files)} files: {written} written to {out_root}, {len(skips)} skipped ({log})")
    if codes:
        click.echo("notes: " + ", ".join(f"{c}={n}" for c, n in sorted(codes.items())))
    if codes[ALL_PANELS_DROPPED]:
        click.echo(
            f"{codes[ALL_PANELS_DROPPED]} files had every panel dropped (written with none; "
            "--notes says why: box_2d and 0-1 boxes need --page-size or --image-root)",
            err=True,
        )
    if files and not written:  # nothing useful came out: every file is in the skip log
        raise click.ClickException(
            f"nothing written: all {len(files)} files under {', '.join(paths)} were skipped "
            f"(reasons in {log})"
        )


@main.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, required=True)
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False), help="PNG to write.")
@click.option("--image-root", help="Find page images under this root (comma/semicolon list).")
@click.option("--contact-sheet", is_flag=True, help="Many pages as thumbnails in one PNG.")
@click.option("--cols", default=4, type=click.IntRange(min=1), help="Contact-sheet columns.")
@click.option("--limit", default=48, type=click.IntRange(min=1), help="At most this many pages.")
@click.option("--lenient", is_flag=True, help="Accept every variant the normalizers know.")
@click.option("--rtl", is_flag=True, help="Right-to-left reading order (manga).")
def render(
    paths: tuple[str, ...],
    out: str,
    image_root: str | None,
    contact_sheet: bool,
    cols: int,
    limit: int,
    lenient: bool,
    rtl: bool,
) -> None:
    """Draw pages: panel boxes, reading-order numbers and the start of each panel's text.

    PATHS: page files, folders (searched recursively) or .txt lists of JSON paths.
    """
    try:
        from . import render as drawing
    except ImportError as exc:
        raise click.ClickException(f"rendering needs Pillow ({exc}): pip install pillow") from exc
    files = _expand(paths, image_root)
    if len(files) > 1 and not contact_sheet:
        raise click.UsageError("several pages need --contact-sheet")
    resolver = ImageResolver(image_root) if image_root else None
    images, labels = [], []
    shown = files[:limit]
    for path in shown:
        try:
            page = load(path, lenient=lenient)
        except DataSpecError as exc:
            click.echo(f"SKIPPED {exc}", err=True)
            continue
        images.append(drawing.render_page(page, resolver=resolver, json_path=path, rtl=rtl))
        labels.append(str(path))
    if not images:
        raise click.ClickException("no page could be loaded")
    count = _count_pages(len(images), len(files), len(shown) - len(images), limit)
    if contact_sheet:
        title = count if len(images) < len(files) else None
        image = drawing.contact_sheet(images, labels=labels, cols=cols, title=title)
    else:
        image = images[0]
    with atomic_open(out, "wb") as fh:
        image.save(fh, format="PNG")
    click.echo(f"wrote {out} ({count})")


def _count_pages(drawn: int, found: int, skipped: int, limit: int) -> str:
    """'2 pages', or '48 of 241 pages; --limit 48' when only part of them is drawn."""
    noun = "page" if found == 1 else "pages"
    if drawn == found:
        return f"{drawn} {noun}"
    why = [f"--limit {limit}"] if found > limit else []
    if skipped:
        why.append(f"{skipped} skipped")
    return f"{drawn} of {found} {noun}; {', '.join(why)}"
