r"""Search an embedding store (from `training.embed`): the nearest pages or panels to a
page, a panel of a page, a text, an image file, or a text and an image together.

    python -m training.search --store EMB --page PAGE.json            # similar pages
    python -m training.search --store EMB --page PAGE.json --panel 2  # similar panels
    python -m training.search --store EMB --text "we're too late" --k 20
    python -m training.search --store EMB --image scan.jpg [--kind panels]
    python -m training.search --store EMB --text "boom" --image crop.png --json
    python -m training.search --store EMB --serve            # the web page, localhost:8765

What is compared (cosine): a page with the stored page embeddings (a page not in the store
is embedded by the checkpoint); a panel with the panels' states in their pages' context; a
text, through the checkpoint's text encoder, with the panels' text-encoder embeddings
(pages: the best panel of each page); an image with the pages by the sum of its look's
score against their looks (`training.look`) and its vision-encoder score (one whole crop)
against their whole-page image embeddings (`--kind panels`: the vision encoder against the
panels' crops); a text and an image: the sum of both scores. The query page itself is left
out of its results unless `--include_self`. Text and image queries need the checkpoint the
store was made with (recorded in the store; `--checkpoint` when it has moved). Stores with
more than `--exact_below` vectors of a kind are searched through a FAISS index built on
first use and saved in EMB/index/ (`--build_index` builds them ahead).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from .cli import CONTEXT, CLIError, doc_help, flag, invoke, json_text, path_type
from .search_index import DEFAULT_FACTORY, EXACT_BELOW, KINDS, Hit, VectorIndex
from .store import Store, StoreError, file_digest

QUERY_KINDS = ("pages", "panels")


@dataclass(frozen=True)
class Result:
    """One search result with what a person needs to look at it."""

    rank: int
    score: float
    row: int
    slot: int | None
    json_path: str
    image_path: str
    width: int
    height: int
    box: list[int] | None
    """The matched panel's box (x, y, w, h page pixels); None for a page result."""
    lines: str
    """The matched panel's lettered text ("" for a page result)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "kind": "page" if self.slot is None else "panel",
            "row": self.row,
            "slot": self.slot,
            "json_path": json_text(self.json_path),
            "image_path": json_text(self.image_path),
            "width": self.width,
            "height": self.height,
            "box": self.box,
            "lines": json_text(self.lines),
        }


class Searcher:
    """Queries over one store; indexes and the model are loaded on first need."""

    def __init__(
        self,
        store: str | Path,
        *,
        checkpoint: str | Path | None = None,
        image_root: str | None = None,
        device: str = "cpu",
        exact_below: int = EXACT_BELOW,
        factory: str = DEFAULT_FACTORY,
    ) -> None:
        self.store = Store(store)
        self._checkpoint = checkpoint
        fingerprint = self.store.attrs.get("fingerprint", {})
        self.image_root = image_root if image_root is not None else fingerprint.get("image_root")
        self.device = device
        self.exact_below = exact_below
        self.factory = factory
        self._indexes: dict[str, VectorIndex] = {}
        self._model: Any = None
        self._config: Any = None
        self._rows_by_path: dict[str, int] | None = None

    # ------------------------------------------------------------------ loading

    def index(self, kind: str) -> VectorIndex:
        """The index of one vector kind (`search_index.KINDS`)."""
        if kind not in self._indexes:
            self._indexes[kind] = VectorIndex.load(
                self.store, kind, exact_below=self.exact_below, factory=self.factory
            )
        return self._indexes[kind]

    def model(self) -> tuple[Any, Any]:
        """(model, config) of the checkpoint the store was made with."""
        if self._model is None:
            from .checkpoint import load_model

            path = Path(self._checkpoint or self.store.attrs.get("checkpoint") or "")
            if not path.is_file():
                raise CLIError(
                    f"the store's checkpoint {path} is not there: give --checkpoint FILE "
                    "(the checkpoint training.embed used)"
                )
            want = self.store.attrs["fingerprint"]["checkpoint_sha256"]
            if file_digest(path) != want:
                raise CLIError(
                    f"{path} is not the checkpoint {self.store.path} was made with (its "
                    "embeddings would not compare): give that one, or re-embed"
                )
            self._model, self._config, _ = load_model(path, self.device)
        return self._model, self._config

    def row_of(self, json_path: str | Path) -> int | None:
        """The store row of a page file, or None (compared as given and resolved)."""
        if self._rows_by_path is None:
            paths = self.store.array("page_json_path").tolist()
            self._rows_by_path = {p: i for i, p in enumerate(paths)}
        for key in (str(json_path), str(Path(json_path).resolve())):
            if key in self._rows_by_path:
                return self._rows_by_path[key]
        return None

    # ------------------------------------------------------------------ query vectors

    def embed_page(self, json_path: str | Path) -> dict[str, np.ndarray]:
        """`page` (d,) and `states` (P, d) of a page file, embedded by the checkpoint
        (slots in reading order)."""
        from .batches import Collate
        from .data import PageDataset, SkippedPage

        model, config = self.model()
        dataset = PageDataset(
            [str(json_path)], image_root=self.image_root, config=config, shuffle_slots=False
        )
        item = dataset[0]
        if isinstance(item, SkippedPage):
            raise CLIError(f"cannot embed the query page: {item.reason}")
        batch = Collate(config.max_panels)([item])
        out = model.embed(batch.to(self.device))
        return {
            "page": out["page"][0].float().cpu().numpy(),
            "states": out["states"][0].float().cpu().numpy(),
        }

    def text_vector(self, text: str) -> np.ndarray:
        """A text through the checkpoint's text encoder, as panels' texts were."""
        from .text import HashTokenizer

        if not text.strip():
            raise CLIError("the text query is empty")
        model, config = self.model()
        tokens = HashTokenizer(config.vocab_size, config.max_tokens)([text])
        out = model.encode_texts(torch.from_numpy(tokens).to(self.device), [text])
        return np.asarray(out[0].float().cpu().numpy())

    def image_vectors(self, image: str | Path) -> tuple[np.ndarray, np.ndarray]:
        """An image file's (vision-encoder vector, look), read as pages were: the whole
        image as one crop through the vision encoder, and `training.look.page_look`."""
        from .crops import ImageError, read_crops

        model, config = self.model()
        try:
            crops = read_crops(
                image,
                [],
                config.image_size,
                letterbox=config.crop_mode == "letterbox",
                whole_page=True,
            )
        except ImageError as exc:
            raise CLIError(str(exc)) from None
        pixels = torch.from_numpy(crops.pixels).permute(0, 3, 1, 2).contiguous()
        vision = model.encode_images(pixels.to(self.device))[0].float().cpu().numpy()
        assert crops.look is not None
        return np.asarray(vision), crops.look

    def image_vector(self, image: str | Path) -> np.ndarray:
        """An image file through the vision encoder as one whole crop (as pages were)."""
        return self.image_vectors(image)[0]

    # ------------------------------------------------------------------ queries

    def similar_pages(
        self, json_path: str | Path, k: int, include_self: bool = False
    ) -> list[Result]:
        """Pages nearest to a page file (its stored embedding, else embedded)."""
        row = self.row_of(json_path)
        if row is not None:
            vector = self.store.rows("page_embedding", row, row + 1)[0]
        else:
            vector = self.embed_page(json_path)["page"]
        hits = self.index("page").search(vector, k + 1)[0]
        if not include_self:
            hits = [h for h in hits if h.row != row]
        return self._results(hits[:k])

    def similar_panels(
        self, json_path: str | Path, position: int, k: int, include_self: bool = False
    ) -> list[Result]:
        """Panels nearest to the panel at reading `position` of a page file."""
        row = self.row_of(json_path)
        if row is not None:
            mask = self.store.rows("panel_mask", row, row + 1)[0]
            states = self.store.rows("panel_embedding", row, row + 1)[0]
        else:
            states = self.embed_page(json_path)["states"]
            mask = np.linalg.norm(states, axis=-1) > 0
        if not 0 <= position < len(mask) or not mask[position]:
            filled = int(np.asarray(mask).sum())
            raise CLIError(
                f"{json_path}: no panel at reading position {position} (the page has "
                f"{filled} embedded panel{'s' if filled != 1 else ''}: 0 to {filled - 1})"
            )
        hits = self.index("panel").search(states[position], k + 1)[0]
        if not include_self:
            hits = [h for h in hits if (h.row, h.slot) != (row, position)]
        return self._results(hits[:k])

    def by_text(self, text: str, k: int, kind: str = "panels") -> list[Result]:
        """Panels (or pages: their best panel) whose lettered text is nearest to `text`."""
        index = self.index("panel_text")
        vector = self.text_vector(text)
        if kind == "panels":
            return self._results(index.search(vector, k)[0])
        return self._results(_best_per_page(index.search(vector, max(8 * k, 64))[0], k))

    def by_image(self, image: str | Path, k: int, kind: str = "pages") -> list[Result]:
        """Pages nearest to an image: the sum of the look and the vision-encoder scores
        (`page_look`, `page_image`); panels: their crops' vision-encoder embeddings."""
        if kind != "pages":
            return self._results(self.index("panel_vision").search(self.image_vector(image), k)[0])
        return self._results(self.pages_by_image(*self.image_vectors(image), k))

    def pages_by_image(self, vision: np.ndarray, look: np.ndarray, k: int) -> list[Hit]:
        """Page hits of an image's (vision vector, look), by the sum of both scores."""
        wide = max(10 * k, 100)
        pair = ((self.index("page_look"), look), (self.index("page_image"), vision))
        return _summed(pair, wide)[:k]

    def by_text_and_image(
        self, text: str, image: str | Path, k: int, kind: str = "panels"
    ) -> list[Result]:
        """Ranked by the sum of the text and the image scores (candidates: the top of
        each, both scores then computed for every candidate)."""
        t, v = self.text_vector(text), self.image_vector(image)
        wide = max(10 * k, 100)
        text_index = self.index("panel_text")
        if kind == "panels":
            return self._results(
                _summed(((text_index, t), (self.index("panel_vision"), v)), wide)[:k]
            )
        image_index = self.index("page_image")
        best: dict[int, Hit] = {
            h.row: h for h in _best_per_page(text_index.search(t, wide)[0], wide)
        }
        for h in image_index.search(v, wide)[0]:
            best.setdefault(h.row, Hit(h.row, None, 0.0))
        rows = list(best)
        image_scores = image_index.scores(v, [(r, None) for r in rows])
        text_scores = [self._best_text(t, r) for r in rows]
        hits = [
            Hit(r, best[r].slot, float(a + b))
            for r, a, b in zip(rows, image_scores, text_scores, strict=True)
        ]
        hits.sort(key=_rank)
        return self._results(hits[:k])

    def _best_text(self, vector: np.ndarray, row: int) -> float:
        index = self.index("panel_text")
        slots = [(row, s) for s in range(self.store.max_panels)]
        scores = index.scores(vector, slots)
        return float(scores.max()) if scores.size else 0.0

    def _results(self, hits: Sequence[Hit]) -> list[Result]:
        out = []
        for rank, hit in enumerate(hits, 1):
            meta = self.store.page_meta(hit.row)
            panel = next((p for p in meta["panels"] if p["slot"] == hit.slot), None)
            out.append(
                Result(
                    rank=rank,
                    score=hit.score,
                    row=hit.row,
                    slot=hit.slot,
                    json_path=meta["json_path"],
                    image_path=meta["image_path"],
                    width=meta["width"],
                    height=meta["height"],
                    box=panel["box"] if panel else None,
                    lines=panel["lines"] if panel else "",
                )
            )
        return out


def _rank(hit: Hit) -> tuple[float, int, int]:
    """Best score first; ties by page row, then slot (a page before its panels)."""
    return (-hit.score, hit.row, -1 if hit.slot is None else hit.slot)


def _summed(pairs: Sequence[tuple[VectorIndex, np.ndarray]], wide: int) -> list[Hit]:
    """Hits ranked by the sum of each (index, query)'s cosine; candidates: the `wide` best
    of each, every score then computed for every candidate."""
    found = [h for index, query in pairs for h in index.search(query, wide)[0]]
    ids = list(dict.fromkeys((h.row, h.slot) for h in found))
    total = np.stack([index.scores(query, ids) for index, query in pairs]).sum(axis=0)
    hits = [Hit(r, s, float(x)) for (r, s), x in zip(ids, total, strict=True)]
    return sorted(hits, key=_rank)


def _best_per_page(hits: Sequence[Hit], k: int) -> list[Hit]:
    """The best hit of each page, best first, at most `k`."""
    best: dict[int, Hit] = {}
    for h in hits:
        if h.row not in best or h.score > best[h.row].score:
            best[h.row] = h
    return sorted(best.values(), key=lambda h: (-h.score, h.row))[:k]


# --------------------------------------------------------------------------- command


store_checkpoint = flag(
    "checkpoint",
    type=path_type(),
    default=None,
    metavar="FILE",
    help="The checkpoint the store was made with, when it is not where the store says.",
)
"""The `--checkpoint` option of commands that read a store."""


@click.command(name="training.search", help=doc_help(__doc__), context_settings=CONTEXT)
@flag(
    "store",
    type=path_type(),
    required=True,
    metavar="EMB",
    help="The output folder of training.embed (or its embeddings.zarr).",
)
@flag("page", type=path_type(), default=None, metavar="PAGE.json", help="Query by a page file.")
@flag(
    "panel",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="With --page: query by the panel at reading position N of that page.",
)
@flag("text", default=None, metavar="TEXT", help="Query by a text (lettered text of panels).")
@flag("image", type=path_type(), default=None, metavar="FILE", help="Query by an image file.")
@flag(
    "kind",
    type=click.Choice(QUERY_KINDS),
    default=None,
    help="Return pages or panels (default: panels for --panel and --text, else pages).",
)
@flag("k", type=click.IntRange(min=1), default=10, help="How many results.")
@flag("json", is_flag=True, dest="as_json", help="Print the results as JSON.")
@flag("include_self", is_flag=True, help="Keep the query page (or panel) in its results.")
@store_checkpoint
@flag(
    "image_root",
    default=None,
    metavar="DIR",
    help="Image root(s) for embedding a query page not in the store (default: the store's).",
)
@flag("device", default="cpu", help="Where the model runs for text, image and new-page queries.")
@flag(
    "exact_below",
    type=click.IntRange(min=0),
    default=EXACT_BELOW,
    help="Search a kind exactly when it has at most this many vectors, else via FAISS.",
)
@flag("index_factory", default=DEFAULT_FACTORY, help="FAISS index factory for large kinds.")
@flag(
    "build_index", is_flag=True, help="Build (or check) the FAISS index of every kind, then exit."
)
@flag("serve", is_flag=True, help="Serve the search web page instead of answering one query.")
@flag("host", default="127.0.0.1", help="With --serve: the address to listen on.")
@flag("port", type=click.IntRange(min=0, max=65535), default=8765, help="With --serve: the port.")
def command(**params: Any) -> int:
    return search(**params)  # fmt: skip


def search(**params: Any) -> int:
    """Answer one query (or serve); the exit status."""
    p = params
    queries = [q for q in ("page", "text", "image") if p[q] is not None]
    if not (p["serve"] or p["build_index"]) and not queries:
        raise click.UsageError("give a query: --page, --page with --panel, --text or --image")
    if p["panel"] is not None and p["page"] is None:
        raise click.UsageError("--panel N needs --page PAGE.json (the page the panel is on)")
    if p["page"] is not None and (p["text"] is not None or p["image"] is not None):
        raise click.UsageError("--page is not allowed with --text or --image: one query at a time")
    try:
        searcher = Searcher(
            p["store"],
            checkpoint=p["checkpoint"],
            image_root=p["image_root"],
            device=p["device"],
            exact_below=p["exact_below"],
            factory=p["index_factory"],
        )
        if p["build_index"]:
            for kind in KINDS:
                index = searcher.index(kind)
                how = "exact" if index.exact else p["index_factory"]
                print(f"{kind}: {len(index)} vectors, {how}")
            if not queries and not p["serve"]:
                return 0
        if p["serve"]:
            from .search_web import serve

            return serve(searcher, p["host"], p["port"])
        results = run_query(searcher, p)
    except (StoreError, CLIError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if p["as_json"]:
        print(json.dumps([r.to_dict() for r in results], ensure_ascii=False, indent=1))
    else:
        for r in results:
            where = "page" if r.slot is None else f"panel {r.slot} {r.box}"
            lines = f"  {r.lines[:70]!r}" if r.lines else ""
            print(f"{r.rank:3d}  {r.score:.4f}  {r.json_path}  {where}{lines}")
    return 0


def run_query(searcher: Searcher, p: dict[str, Any]) -> list[Result]:
    """The results of the query the flags describe."""
    k, kind = p["k"], p["kind"]
    if p["page"] is not None:
        if p["panel"] is not None:
            if kind == "pages":
                raise CLIError("--panel finds panels; drop --kind pages")
            return searcher.similar_panels(p["page"], p["panel"], k, p["include_self"])
        if kind == "panels":
            raise CLIError("--page alone finds pages; add --panel N to find panels")
        return searcher.similar_pages(p["page"], k, p["include_self"])
    if p["text"] is not None and p["image"] is not None:
        return searcher.by_text_and_image(p["text"], p["image"], k, kind or "panels")
    if p["text"] is not None:
        return searcher.by_text(p["text"], k, kind or "panels")
    return searcher.by_image(p["image"], k, kind or "pages")


def main(argv: list[str] | None = None) -> int:
    """Run `python -m training.search` with `argv`; returns the exit status."""
    return invoke(command, argv, "python -m training.search")


if __name__ == "__main__":
    raise SystemExit(main())
