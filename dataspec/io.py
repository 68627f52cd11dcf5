"""Reading and writing page files: strict load, lenient load, atomic deterministic dump."""

from __future__ import annotations

import contextlib
import math
import os
import random
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from .errors import DataSpecError, Note
from .models import Page, extra_holders
from .paths import ImageResolver

PathLike = str | os.PathLike[str]


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
"""Non-blocking: opening a FIFO returns at once, and `fstat` then refuses it."""


def read_bytes(path: PathLike) -> bytes:
    """A file's bytes, or `DataSpecError` naming the file (open, fstat, and usually one
    read: the hot path of every loader)."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        raise DataSpecError(f"cannot read: {exc.strerror or exc}", file=path) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
            raise DataSpecError("not a regular file", file=path)
        size = info.st_size
        data = os.read(fd, size + 1)
        if len(data) == size:  # fewer bytes than asked: the end of the file
            return data
        parts = [data]
        while data:  # the file grew or shrank while being read, or a read was capped
            data = os.read(fd, max(size, 1 << 20))
            parts.append(data)
        return b"".join(parts)
    except OSError as exc:
        raise DataSpecError(f"cannot read: {exc.strerror or exc}", file=path) from exc
    finally:
        os.close(fd)


def json_path(loc: Sequence[int | str]) -> str:
    """`("panels", 0, "panel_coords")` → `$.panels[0].panel_coords`."""
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _contract_error(exc: ValidationError, file: PathLike | None) -> DataSpecError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    msg = str(first["msg"]).removeprefix("Value error, ")
    return DataSpecError(msg + more, file=file, where=json_path(first["loc"]))


_INT64 = 2**63


def loads(data: bytes | str, *, file: PathLike | None = None) -> Page:
    """Strictly validate one canonical page from JSON bytes; `DataSpecError` on any violation."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        page = Page.model_validate_json(data)
    except ValidationError as exc:
        raise _contract_error(exc, file) from None
    _check_json_safe(page, file)
    return page


def _check_json_safe(page: Page, file: PathLike | None) -> None:
    """Reject unknown keys holding NaN/Infinity or integers beyond 64 bits (not portable JSON).

    The known fields are checked by the models; only unknown keys need this walk
    (`extra_holders`, which lists only the parts that hold some).
    """
    for where, model in extra_holders(page):
        found = _unsafe_value(model.__pydantic_extra__, where)
        if found is not None:
            raise DataSpecError(
                "NaN, Infinity or an integer beyond 64 bits is not portable JSON",
                file=file,
                where=found,
            )


def _unsafe_value(value: Any, where: str) -> str | None:
    """The JSON path (below `where`) of the first NaN, Infinity or integer beyond 64 bits in
    `value`, else None; a path is formatted only for a container or the value found."""
    if _unsafe_number(value):
        return where
    if isinstance(value, dict):
        pairs: Any = value.items()
        pattern = "{}.{}"
    elif isinstance(value, list):
        pairs, pattern = enumerate(value), "{}[{}]"
    else:
        return None
    for key, item in pairs:
        if isinstance(item, dict | list) or _unsafe_number(item):
            found = _unsafe_value(item, pattern.format(where, key))
            if found is not None:
                return found
    return None


def _unsafe_number(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64


def load(
    path: PathLike,
    *,
    lenient: bool = False,
    page_size: tuple[int, int] | None = None,
    image_root: PathLike | Sequence[PathLike] | None = None,
    resolver: ImageResolver | None = None,
    **options: Any,
) -> Page:
    """Load one page file.

    Strict (default): the file must be a canonical v0.3 page. Lenient: any variant the
    normalizers know (see `load_with_notes` for the notes). With `image_root` (or a
    `resolver`) the image path is resolved to an existing absolute path. With
    `page_size`, a strict page without one is checked against it.
    """
    if lenient:
        return load_with_notes(
            path, page_size=page_size, image_root=image_root, resolver=resolver, **options
        )[0]
    if options:
        raise TypeError(f"options {sorted(options)} apply to lenient loading only")
    page = loads(read_bytes(path), file=path)
    if page_size is not None and page.page_size is None:
        data = page.to_json_dict()
        data["page_size"] = {"width": page_size[0], "height": page_size[1]}
        try:
            page = Page.model_validate(data)
        except ValidationError as exc:
            raise _contract_error(exc, path) from None
    if resolver is None and image_root is not None:
        resolver = ImageResolver(image_root)
    if resolver is not None:
        found = resolver.resolve(page.page_image_path, path)
        page = page.model_copy(update={"page_image_path": str(found)})
    return page


def load_with_notes(
    path: PathLike,
    *,
    page_size: tuple[int, int] | None = None,
    image_root: PathLike | Sequence[PathLike] | None = None,
    resolver: ImageResolver | None = None,
    **options: Any,
) -> tuple[Page, list[Note]]:
    """Leniently load one page file: (page, notes). Options go to `normalize`."""
    from .normalize import normalize
    from .normalize.decode import decode_bytes
    from .normalize.pages import mark_truncated

    notes: list[Note] = []
    try:
        obj = decode_bytes(read_bytes(path), notes)
    except DataSpecError as exc:
        if exc.file is None:
            raise exc.renamed(path) from None
        raise
    page, more = normalize(
        obj,
        page_size=page_size,
        json_path=path,
        image_root=image_root,
        resolver=resolver,
        **options,
    )
    notes += more
    return mark_truncated(page, notes), notes


def dumps(page: Page) -> bytes:
    """The page's canonical file bytes: compact UTF-8 JSON on one line, field order fixed
    (`to_json_dict` written straight to JSON by pydantic's serializer, without the dict)."""
    try:
        return page.__pydantic_serializer__.to_json(page) + b"\n"
    except PydanticSerializationError as exc:
        raise DataSpecError(f"page cannot be written as JSON: {exc}") from exc


def dump(page: Page, path: PathLike) -> Path:
    """Write the page atomically (temp file + rename); returns the path."""
    return atomic_write_bytes(path, dumps(page))


def output_path(root: PathLike, relative: PathLike) -> Path:
    """`root / relative`, refused (`DataSpecError`) unless it stays inside `root`.

    Refuses absolute and drive paths, `..` parts, and folders (symlinks followed) that
    lead out of `root`. A symlink at the file itself is safe: `os.replace` replaces the
    link, not its target.
    """
    rel = os.fspath(relative)
    parts = rel.replace("\\", "/").split("/")
    if os.path.isabs(rel) or (len(rel) > 1 and rel[1] == ":") or ".." in parts:
        raise DataSpecError(f"output path {rel!r} would leave the output folder", file=root)
    target = Path(root) / rel
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(target.parent)
    if real_parent != real_root and not real_parent.startswith(real_root.rstrip(os.sep) + os.sep):
        raise DataSpecError(
            f"output path {rel!r} leads out of the output folder (to {real_parent})", file=root
        )
    return target


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write `data` to `path` via a temp file in the same folder and `os.replace`."""
    write_atomic(os.fspath(path), data)
    return Path(path)


def write_atomic(path: str, data: bytes) -> None:
    """`atomic_write_bytes` without making a `Path`: create the temp file, write, close,
    rename (four system calls; the folder is made only when missing). No fsync: a crash
    of the machine may lose the file, never leave half of it."""
    fd, tmp, path = _create_temp(path)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
"""The characters of a temp file's random part (those of `tempfile.mkstemp`)."""
_TEMP_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOINHERIT", 0)
    | getattr(os, "O_BINARY", 0)
)
_TEMP_NAMES = random.Random()
if hasattr(os, "register_at_fork"):  # a forked child must not draw its parent's names
    os.register_at_fork(after_in_child=_TEMP_NAMES.seed)


def _create_temp(path: str) -> tuple[int, str, str]:
    """A new, empty temp file `.<name>.<8 random characters>.tmp` beside `path`, open for
    writing, with the mode a new file gets (0o666 less the umask): (fd, its path, the
    path it is to replace).

    Created exclusively (never an existing file or a symlink); the folder and its parents
    are made when missing.
    """
    folder, name = os.path.split(path)
    if not name:  # a path ending in a separator: `Path`'s reading of it
        target = Path(path)
        folder, name, path = str(target.parent), target.name, str(target)
    made = False
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{''.join(_TEMP_NAMES.choices(_TEMP_CHARS, k=8))}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp, path
        except FileExistsError:
            continue
        except (FileNotFoundError, NotADirectoryError):
            if made:
                raise
            Path(folder).mkdir(parents=True, exist_ok=True)
            made = True
    raise FileExistsError(f"no free temp file name beside {path}")


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on success it replaces `path`, on error it is removed."""
    target = os.fspath(path)
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    fd, tmp, target = _create_temp(target)
    try:
        try:
            fh = os.fdopen(fd, mode, **kwargs)
        except BaseException:
            os.close(fd)
            raise
        with fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
