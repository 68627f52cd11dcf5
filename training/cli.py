"""Shared command-line pieces: flags spelled with underscores (as in the runbook) and
accepted with hyphens too; the page source options; page discovery via `dataspec`."""

from __future__ import annotations

import argparse
import codecs
import logging
import sys
from pathlib import Path
from typing import Any

import dataspec


class CLIError(Exception):
    """A problem with the user's input (exit status 1, message on stderr)."""


def _output_errors(exc: UnicodeError) -> tuple[str | bytes, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = bytearray()
    for char in exc.object[exc.start : exc.end]:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
            out.append(code - 0xDC00)
        else:
            out += f"\\u{code:04x}".encode()
    return bytes(out), exc.end


codecs.register_error("training-output", _output_errors)


def output_bytes(text: str) -> bytes:
    """`text` as UTF-8 for a CSV output, never raising: the undecodable bytes of a file
    name (Python's surrogate escapes) are written back as those bytes, so a listed path is
    the path on disk (read it with `errors="surrogateescape"`); other lone surrogates
    (from a leniently parsed JSON string) as `\\uXXXX`."""
    return text.encode("utf-8", "training-output")


def json_text(text: str) -> str:
    """`text` as valid Unicode for a JSON output (undecodable bytes and lone surrogates
    as backslash escapes: orjson refuses surrogates)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def flag(parser: argparse.ArgumentParser | Any, name: str, **kwargs: Any) -> None:
    """`--name` (underscores) plus its hyphen spelling, stored as `name` unless `dest`."""
    spellings = [f"--{name}"]
    if "_" in name:
        spellings.append(f"--{name.replace('_', '-')}")
    kwargs.setdefault("dest", name)
    parser.add_argument(*spellings, **kwargs)


def add_source_args(parser: argparse.ArgumentParser) -> None:
    """--json_list_file | --json_dir, --image_root, --strict_paths, --max_samples."""
    source = parser.add_mutually_exclusive_group(required=True)
    flag(
        source,
        "json_list_file",
        type=Path,
        metavar="LIST.txt",
        help="a text file with one page JSON path per line (e.g. --dataspec_list_out)",
    )
    flag(
        source,
        "json_dir",
        type=Path,
        metavar="DIR",
        help="a folder searched recursively for page JSONs (a .txt list also works)",
    )
    flag(
        parser,
        "image_root",
        default=None,
        metavar="DIR",
        help="folder(s) that relative, Windows or missing image paths are resolved under "
        "(several: comma or semicolon separated)",
    )
    flag(
        parser,
        "strict_paths",
        action="store_true",
        help="refuse (skip) pages whose image resolves outside --image_root (absolute paths "
        "elsewhere, '..', symlinks leading out); needs --image_root",
    )
    flag(
        parser,
        "max_samples",
        type=int,
        default=None,
        metavar="N",
        help="use only the first N pages found",
    )


def discover_pages(args: argparse.Namespace) -> list[Path]:
    """The page JSONs named by the source flags (dataspec discovery), first N if asked."""
    source = args.json_list_file if args.json_list_file is not None else args.json_dir
    if getattr(args, "strict_paths", False) and not dataspec.ImageResolver(args.image_root).roots:
        raise CLIError("--strict_paths needs --image_root (the folders images must lie in)")
    try:
        paths = dataspec.discover(source, image_root=args.image_root)
    except dataspec.DataSpecError as exc:
        raise CLIError(str(exc)) from None
    if args.max_samples is not None:
        if args.max_samples < 1:
            raise CLIError("--max_samples must be >= 1")
        paths = paths[: args.max_samples]
    if not paths:
        raise CLIError(f"{source}: no page JSON files found")
    return paths


def setup_logging(main_process: bool = True) -> None:
    """INFO on the main process, warnings only elsewhere; messages on stderr."""
    logging.basicConfig(
        level=logging.INFO if main_process else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


def open_checkpoint(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[Any, Any, dict[str, Any], list[Path], Any] | None:
    """(model, config, checkpoint, pages, device) for `--checkpoint`, `--device` and the
    page source flags; None after printing the error (the command then exits 1).

    Bad `--batch_size` / `--num_workers` are usage errors (exit 2) via `parser`.
    """
    if args.batch_size < 1 or args.num_workers < 0:
        parser.error("--batch_size must be >= 1 and --num_workers >= 0")
    setup_logging()
    from .checkpoint import load_model
    from .distributed import resolve_device

    try:
        device = resolve_device(args.device)
        model, config, state = load_model(args.checkpoint, device)
        paths = discover_pages(args)
    except (CLIError, ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    return model, config, state, paths, device
