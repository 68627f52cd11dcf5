"""Shared command-line pieces (click): flags spelled with underscores (as in the runbook)
and accepted with hyphens too, every one with a help line and its default shown; the page
source options; page discovery via `dataspec`; checkpoint opening; capped skip messages."""

from __future__ import annotations

import codecs
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click

import dataspec
from dataspec.paths import is_windows_path, split_roots, windows_to_local

F = Callable[..., Any]

Args = SimpleNamespace
"""A command's parsed flags, one attribute per option (`vars(args)` is the dict)."""

CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
"""Context settings of every training command: `-h` works as well as `--help`."""


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


# --------------------------------------------------------------------------- options


def flag(name: str, *, help: str, dest: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """`click.option` declared as `--name` and `--name-with-hyphens`, default shown."""
    decls = [f"--{name}"]
    if "_" in name:
        decls.append(f"--{name.replace('_', '-')}")
    kwargs.setdefault("show_default", True)
    return click.option(*decls, dest or name, help=help, **kwargs)


def path_type(**kwargs: Any) -> click.Path:
    """A `click.Path` giving a `Path` (existence is checked by the commands, by name)."""
    return click.Path(path_type=Path, **kwargs)


def progress_option(f: F) -> F:
    """`--progress/--no_progress` (and `--no-progress`), as the analyzer spells it."""
    return click.option(
        "--progress/--no_progress",
        " /--no-progress",
        "progress",
        default=True,
        show_default=True,
        help="Progress bars on stderr.",
    )(f)


def checkpoint_option(f: F) -> F:
    """--checkpoint FILE (required), for the commands that run a trained model."""
    return flag(
        "checkpoint",
        type=path_type(),
        required=True,
        metavar="FILE",
        help="A latest.pt or best.pt of a training run.",
    )(f)


def loader_options(f: F) -> F:
    """--batch_size, --num_workers, --device: what `inference_loader` and
    `open_checkpoint` read."""
    options = [
        flag("batch_size", type=click.IntRange(min=1), default=8, help="Pages per batch."),
        flag(
            "num_workers",
            type=click.IntRange(min=0),
            default=0,
            help="Loader processes (0: load in-process).",
        ),
        flag("device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def source_options(f: F) -> F:
    """--json_list_file | --json_dir, --image_root, --strict_paths, --max_samples."""
    options = [
        flag(
            "json_list_file",
            type=path_type(),
            metavar="LIST.txt",
            help="A text file with one page JSON path per line (e.g. --dataspec_list_out). "
            "Give this or --json_dir.",
        ),
        flag(
            "json_dir",
            type=path_type(),
            metavar="DIR",
            help="A folder searched recursively for page JSONs (a .txt list also works).",
        ),
        flag(
            "image_root",
            default=None,
            metavar="DIR",
            help="Folder(s) that relative, Windows or missing image paths are resolved "
            "under (several: comma or semicolon separated); each must exist.",
        ),
        flag(
            "strict_paths",
            is_flag=True,
            help="Refuse (skip) pages whose image resolves outside --image_root (absolute "
            "paths elsewhere, '..', symlinks leading out); needs --image_root.",
        ),
        flag(
            "max_samples",
            type=click.IntRange(min=1),
            default=None,
            metavar="N",
            help="Use only the first N pages found.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def doc_help(doc: str | None) -> str:
    """A module docstring as a command's help text, its line breaks kept (click's `\\b`)."""
    paragraphs = (doc or "").strip().split("\n\n")
    return "\n\n".join(f"\b\n{p}" for p in paragraphs)


def args_of(params: dict[str, Any]) -> Args:
    """The parsed flags as attributes; the page source checked (one of the two)."""
    args = Args(**params)
    if "json_dir" in params:
        if args.json_list_file is None and args.json_dir is None:
            raise click.UsageError(
                "one of the arguments --json_list_file (a list of page JSONs) or --json_dir "
                "(a folder of them) is required"
            )
        if args.json_list_file is not None and args.json_dir is not None:
            raise click.UsageError(
                "--json_list_file is not allowed with --json_dir: give one of them"
            )
    return args


def invoke(command: click.Command, argv: Sequence[str] | None, prog_name: str) -> int:
    """Run a click command as a function: errors shown as click shows them (usage errors
    exit 2), the status the command returns (an int) returned."""
    try:
        status = command.main(
            args=list(argv) if argv is not None else None,
            prog_name=prog_name,
            standalone_mode=False,
        )
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return status if isinstance(status, int) else 0


# --------------------------------------------------------------------------- inputs


def check_image_roots(image_root: str | None) -> None:
    """`CLIError` naming the first `--image_root` folder that does not exist."""
    for root in split_roots(image_root):
        if os.path.isdir(root):
            continue
        what = "is not a folder" if os.path.exists(root) else "does not exist"
        hint = ""
        if is_windows_path(root):
            local = windows_to_local(root, "/mnt/")
            if os.path.isdir(local):
                hint = f" (on WSL: --image_root {local})"
        raise CLIError(f"--image_root {root} {what}{hint}")


def discover_pages(args: Args) -> list[Path]:
    """The page JSONs named by the source flags (dataspec discovery), first N if asked;
    the image roots are checked first."""
    source = args.json_list_file if args.json_list_file is not None else args.json_dir
    check_image_roots(args.image_root)
    if getattr(args, "strict_paths", False) and not dataspec.ImageResolver(args.image_root).roots:
        raise CLIError("--strict_paths needs --image_root (the folders images must lie in)")
    try:
        paths = dataspec.discover(source, image_root=args.image_root)
    except dataspec.DataSpecError as exc:
        raise CLIError(str(exc)) from None
    if args.max_samples is not None:
        paths = paths[: args.max_samples]
    if not paths:
        raise CLIError(f"{source}: no page JSON files found")
    return paths


def source_of(args: Args) -> Path:
    """The page source given (--json_list_file or --json_dir)."""
    return Path(args.json_list_file if args.json_list_file is not None else args.json_dir)


def setup_logging(main_process: bool = True) -> None:
    """INFO on the main process, warnings only elsewhere; messages on stderr."""
    logging.basicConfig(
        level=logging.INFO if main_process else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )


def open_checkpoint(args: Args) -> tuple[Any, Any, dict[str, Any], list[Path], Any] | None:
    """(model, config, checkpoint, pages, device) for `--checkpoint`, `--device` and the
    page source flags; None after printing the error (the command then exits 1)."""
    setup_logging()
    from .checkpoint import load_model
    from .distributed import resolve_device

    try:
        check_image_roots(args.image_root)
        device = resolve_device(args.device)
        model, config, state = load_model(args.checkpoint, device)
        paths = discover_pages(args)
    except (CLIError, ValueError, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    return model, config, state, paths, device


def inference_loader(
    args: Args, config: Any, paths: Sequence[Path], *, shuffle_slots: bool = True
) -> tuple[Any, Any, Any]:
    """(config with `--rtl/--ltr` applied, dataset, loader) over `paths` for evaluate,
    predict and embed: pages in book order, batches of `--batch_size`, no shuffling of
    pages (slots shuffled by `--seed` unless `shuffle_slots` is False)."""
    import torch

    from .batches import Collate, PagePairBatchSampler
    from .data import PageDataset

    rtl = getattr(args, "rtl", None)
    if rtl is not None and rtl != config.rtl:
        config = type(config)(**{**config.to_dict(), "rtl": rtl})
    seed = getattr(args, "seed", 0)
    dataset = PageDataset(
        list(paths),
        image_root=args.image_root,
        config=config,
        seed=seed,
        shuffle_slots=shuffle_slots,
        strict_paths=args.strict_paths,
    )
    sampler = PagePairBatchSampler(dataset.keys, args.batch_size, shuffle=False, seed=seed)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=args.num_workers,
        collate_fn=Collate(config.max_panels),
    )
    return config, dataset, loader


# --------------------------------------------------------------------------- messages


def first_reasons(reasons: Sequence[str], n: int = 3, width: int = 300) -> str:
    """The first `n` reasons, each cut to `width` characters, joined by "; "."""
    return "; ".join(r if len(r) <= width else r[: width - 1] + "…" for r in reasons[:n])


class SkipLog:
    """Skipped pages as they come: the first `limit` of each kind logged, the rest only
    counted; `summary` then says "... and N more like this" per kind. A page skipped
    again (the next epoch) is neither logged nor counted twice."""

    def __init__(self, logger: logging.Logger, *, limit: int = 5, enabled: bool = True) -> None:
        self.log, self.limit, self.enabled = logger, limit, enabled
        self.seen: set[str] = set()
        self.shown: Counter[str] = Counter()
        self.more: Counter[str] = Counter()

    def add(self, path: str, reason: str, kind: str) -> None:
        """One skipped page (its reason names the file)."""
        if path in self.seen:
            return
        self.seen.add(path)
        if self.shown[kind] < self.limit:
            self.shown[kind] += 1
            if self.enabled:
                self.log.warning("skipped page (%s): %s", kind, reason)
        else:
            self.more[kind] += 1

    def summary(self, where: str, kinds: Sequence[str] | None = None) -> None:
        """Log how many skips of each kind were not shown, and `where` they are listed;
        `kinds` (one per skipped page, every rank's) replaces this process's counts."""
        if not self.enabled:
            return
        more = self.more if kinds is None else Counter(kinds) - self.shown
        for kind, n in sorted(more.items()):
            self.log.warning(
                "... and %d more %s skip%s like this (%s)",
                n,
                kind,
                "" if n == 1 else "s",
                where,
            )
