"""The canonical DataSpec v0.3 models: one page of comic training data.

These models are the strict contract. Loose input from the wild never reaches them
directly: the normalizers in `dataspec.normalize` turn it into this shape first.
Rules JSON Schema cannot express (cross-field checks) are enforced by `Page` itself
and listed in `CROSS_FIELD_RULES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

__all__ = [
    "CROSS_FIELD_RULES",
    "READING_ORDER_SOURCES",
    "TEXT_KINDS",
    "Box",
    "Character",
    "Face",
    "Page",
    "PageSize",
    "Panel",
    "PanelText",
    "Source",
    "TextItem",
    "UnpairedText",
    "unknown_keys",
]


def _integral(value: Any) -> Any:
    """Accept 3.0 for 3, as JSON Schema's `integer` does; leave anything else to the check."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def _integral_items(value: Any) -> Any:
    """`_integral` over a JSON array (one call per box, not per number: the hot path)."""
    if type(value) is list and float in map(type, value):
        return [_integral(v) for v in value]
    return value


_IntList = BeforeValidator(_integral_items)

Coord = Annotated[int, Strict(), Field(ge=0)]
"""A pixel coordinate: integer, >= 0."""

Extent = Annotated[int, Strict(), Field(ge=1)]
"""A pixel extent (width or height): integer, >= 1."""

Box = Annotated[tuple[Coord, Coord, Extent, Extent], _IntList]
"""A box `[x, y, w, h]` in integer pixels of the page image (3.0 is read as 3)."""

_NOT_SPACE = r"[^\s\x1c-\x1f]"
TextLine = Annotated[
    str,
    Strict(),
    StringConstraints(min_length=1, pattern=rf"^{_NOT_SPACE}(?:[\s\S]*{_NOT_SPACE})?$"),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": r"^\S(?:[\s\S]*\S)?(?![\s\S])"}),
]
r"""One lettered line: non-empty, no leading or trailing whitespace (as `str.strip` sees it).

Validated with the Rust regex engine (fast; `$` is the true end, `\s` is Unicode White_Space,
so the separators U+001C–U+001F that Python also strips are named). The published schema
says the same for Python's `re` (which the `jsonschema` package uses): it ends in
`(?![\s\S])` because there `$` also matches before a final newline.
"""

Score = Annotated[float, Strict(), Field(ge=0.0, le=1.0)]


def _optional(**kwargs: Any) -> Any:
    """An optional field: None by default, and left out of written files when None."""
    return Field(default=None, exclude_if=_is_none, **kwargs)


def _is_none(value: Any) -> bool:
    return value is None


_CONFIG = ConfigDict(extra="allow", allow_inf_nan=False)


class PanelText(BaseModel):
    """Lettered text of one panel, by kind (spec: "text")."""

    model_config = _CONFIG

    dialogue: list[TextLine] = Field(default_factory=list, description="Speech and thought.")
    narration: list[TextLine] = Field(default_factory=list, description="Caption boxes.")
    sfx: list[TextLine] = Field(default_factory=list, description="Sound effects.")

    def lines(self) -> list[str]:
        """All lines, dialogue then narration then sfx."""
        return [*self.dialogue, *self.narration, *self.sfx]

    def is_empty(self) -> bool:
        """True when the panel has no lettered text."""
        return not (self.dialogue or self.narration or self.sfx)


TEXT_KINDS = ("dialogue", "narration", "sfx")
"""The three text buckets, in the order `PanelText.lines` gives them."""

TextKind = Literal["dialogue", "narration", "sfx"]
Name = Annotated[str, Strict(), StringConstraints(min_length=1)]


class TextItem(BaseModel):
    """One lettered line with what the source said about it (spec: "panels[].text_items[]").

    Optional detail beside the buckets: a reader that knows only `text` loses nothing it
    knew how to use. `kind` is the bucket the line is in; `label` the source's own word.
    """

    model_config = _CONFIG

    text: TextLine
    kind: TextKind
    label: Name | None = _optional(description="The source's label (thought, caption, shout…).")
    speaker: Name | None = _optional(description="Who says it, as the source names them.")
    box: Box | None = _optional(description="Where the line is lettered, [x, y, w, h] pixels.")


class Character(BaseModel):
    """A named character seen in a panel (spec: "panels[].characters[]")."""

    model_config = _CONFIG

    name: Name | None = _optional()
    box: Box | None = _optional(description="[x, y, w, h] pixels.")


class Face(BaseModel):
    """A face seen in a panel, and whose it is (spec: "panels[].faces[]")."""

    model_config = _CONFIG

    character: Name | None = _optional()
    box: Box | None = _optional(description="[x, y, w, h] pixels.")


class Panel(BaseModel):
    """One panel (spec: "panels[]"): its box, its lettered text, optional extras."""

    model_config = _CONFIG

    panel_coords: Box = Field(description="[x, y, w, h] in integer pixels of the page image.")
    text: PanelText = Field(default_factory=PanelText)
    score: Score | None = _optional(description="Detector confidence in [0, 1].")
    character_coords: list[Box] | None = _optional(
        description="Character boxes inside this panel, [x, y, w, h] pixels."
    )
    description: Annotated[str, Strict()] | None = _optional(
        description="A VLM's description of the picture; not lettered text."
    )
    text_items: list[TextItem] | None = _optional(
        description="Each lettered line with its kind, label, speaker and box; when present, "
        "text.<kind> is exactly the texts of the items of that kind, in order."
    )
    characters: list[Character] | None = _optional(
        description="Named characters in this panel, with boxes when known."
    )
    faces: list[Face] | None = _optional(description="Faces in this panel, with whose they are.")
    text_known: Annotated[bool, Strict()] | None = _optional(
        description="False: this panel's lettered text is not known (no source panel could be "
        "paired with it), so its empty `text` says nothing; absent or true: `text` is the "
        "panel's text (empty = no lettered text)."
    )
    inferred: Annotated[bool, Strict()] | None = _optional(
        description="True: no detection; the panel is one a source described whose lettering "
        "was detected outside every detected panel, and `panel_coords` is the empty region "
        "around that lettering."
    )

    def knows_text(self) -> bool:
        """False when the panel's text is unknown (`text_known: false`), else True."""
        return self.text_known is not False

    def box_outside(self, width: int, height: int) -> tuple[str, Box] | None:
        """(JSON path below the panel, box) of the first box besides `panel_coords` that
        reaches past a `width` x `height` page, else None."""
        for i, (x, y, w, h) in enumerate(self.character_coords or ()):
            if x + w > width or y + h > height:
                return f"character_coords[{i}]", (x, y, w, h)
        groups: tuple[tuple[str, Sequence[TextItem | Character | Face] | None], ...] = (
            ("text_items", self.text_items),
            ("characters", self.characters),
            ("faces", self.faces),
        )
        for name, items in groups:
            for i, item in enumerate(items or ()):
                box = item.box
                if box is not None and (box[0] + box[2] > width or box[1] + box[3] > height):
                    return f"{name}[{i}].box", box
        return None


class UnpairedText(BaseModel):
    """The text of a source panel no page panel could be paired with (spec: "unpaired_text[]").

    Kept on the page, outside the panels, so nothing the source said is lost.
    """

    model_config = _CONFIG

    vlm_panel: Annotated[int, Strict(), Field(ge=0)] = Field(
        description="The source panel's position in the source's panel order (0-based)."
    )
    text: PanelText = Field(default_factory=PanelText)
    description: Annotated[str, Strict()] | None = _optional()
    text_items: list[TextItem] | None = _optional(
        description="As `panels[].text_items`: when present, `text` is exactly their texts."
    )


READING_ORDER_SOURCES = ("vlm", "layout", "model", "truth")
"""Where a page's `reading_order` came from: the VLM's panel order, the layout heuristic,
a trained model, or human truth."""


class PageSize(BaseModel):
    """Pixel size of the page image."""

    model_config = _CONFIG

    width: Annotated[Extent, BeforeValidator(_integral)]
    height: Annotated[Extent, BeforeValidator(_integral)]


class Source(BaseModel):
    """Provenance: where the page came from. Free-form beyond these keys."""

    model_config = _CONFIG

    coco_image_id: Annotated[int, Strict()] | Annotated[str, Strict()] | None = _optional()
    vlm_json_path: Annotated[str, Strict()] | None = _optional()
    original_path: Annotated[str, Strict()] | None = _optional(
        description="The file this page was normalized from."
    )

    def to_dict(self) -> dict[str, Any]:
        """The provenance as written: set fields and free-form keys."""
        return self.model_dump(mode="json")


CROSS_FIELD_RULES = (
    "reading_order is a permutation of range(len(panels))",
    "with page_size, every box (panel, character, text item, face) lies inside the page",
    "with text_items, each text bucket is exactly the texts of the items of its kind, in order",
    "a panel with text_known false has no text and no text_items",
    "reading_order_source only with reading_order",
)
"""Rules the strict loader enforces that JSON Schema cannot express."""


class Page(BaseModel):
    """One comic page (DataSpec v0.3, "Per file (one page)")."""

    model_config = _CONFIG

    schema_version: Literal["0.3"] = Field(
        default="0.3", description="Absent on input means 0.3; always written."
    )
    page_image_path: Annotated[str, Strict(), StringConstraints(min_length=1)] = Field(
        description="Absolute path preferred; a relative path is relative to an image root."
    )
    panels: list[Panel] = Field(default_factory=list)
    reading_order: Annotated[list[Coord], _IntList] | None = _optional(
        description="Panel indices in reading order (a permutation)."
    )
    reading_order_source: Literal["vlm", "layout", "model", "truth"] | None = _optional(
        description="Where reading_order came from: the VLM's panel order, the layout "
        "heuristic, a trained model, or human truth."
    )
    page_size: PageSize | None = _optional()
    source: Source | None = _optional()
    unpaired_text: list[UnpairedText] | None = _optional(
        description="Text of source (VLM) panels that no panel could be paired with."
    )

    @model_validator(mode="after")
    def _cross_field(self) -> Page:
        n = len(self.panels)
        if self.reading_order is not None and sorted(self.reading_order) != list(range(n)):
            raise ValueError(
                f"reading_order {self.reading_order} is not a permutation of 0..{n - 1}"
            )
        size = self.page_size
        if self.reading_order_source is not None and self.reading_order is None:
            raise ValueError("reading_order_source is set but there is no reading_order")
        for k, item in enumerate(self.unpaired_text or ()):
            if item.text_items is not None:
                _check_items(item.text, item.text_items, "unpaired_text", k)
                if size is not None:
                    for j, t in enumerate(item.text_items):
                        if t.box is not None and not _fits(t.box, size):
                            raise ValueError(
                                f"unpaired_text[{k}].text_items[{j}].box: box {list(t.box)} "
                                f"lies outside the page {size.width}x{size.height}"
                            )
        size = self.page_size
        width, height = (size.width, size.height) if size is not None else (0, 0)
        for i, panel in enumerate(self.panels):  # one pass: this is the strict loader's hot path
            if size is not None:
                x, y, w, h = panel.panel_coords
                if x + w > width or y + h > height:
                    raise ValueError(
                        f"panels[{i}]: box {[x, y, w, h]} lies outside the page {width}x{height}"
                    )
            if (
                panel.character_coords is None
                and panel.text_items is None
                and panel.characters is None
                and panel.faces is None
                and panel.text_known is None
            ):
                continue
            if panel.text_known is False and (
                not panel.text.is_empty() or panel.text_items is not None
            ):
                raise ValueError(f"panels[{i}]: text_known is false but the panel has text")
            if panel.text_items is not None:
                _check_items(panel.text, panel.text_items, "panels", i)
            if size is not None and (outside := panel.box_outside(width, height)) is not None:
                where, box = outside
                raise ValueError(
                    f"panels[{i}].{where}: box {list(box)} lies outside the page {width}x{height}"
                )
        return self

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """Panel boxes `[x, y, w, h]`, in list order."""
        return [p.panel_coords for p in self.panels]

    def order(self, *, rtl: bool = False) -> list[int]:
        """The page's `reading_order`, or the layout heuristic's when absent."""
        if self.reading_order is not None:
            return list(self.reading_order)
        from .order import reading_order

        return reading_order(self.boxes(), rtl=rtl)

    def to_json_dict(self) -> dict[str, Any]:
        """The page as written to disk: JSON types, unset optional fields left out."""
        return self.model_dump(mode="json")


def _fits(box: tuple[int, int, int, int], size: PageSize) -> bool:
    return box[0] + box[2] <= size.width and box[1] + box[3] <= size.height


def _check_items(text: PanelText, items: Sequence[TextItem], where: str, at: int) -> None:
    """Raise unless `text` is exactly the texts of `items` by kind (`where[at]` names it)."""
    by_kind: dict[str, list[str]] = {kind: [] for kind in TEXT_KINDS}
    for t in items:  # one pass (the strict loader's hot path)
        by_kind[t.kind].append(t.text)
    for kind in TEXT_KINDS:
        if by_kind[kind] != getattr(text, kind):
            raise ValueError(f"{where}[{at}]: text.{kind} is not the text_items of kind {kind!r}")


def extra_holders(page: Page) -> list[tuple[str, BaseModel]]:
    """(JSON path, model) for every part of a page that carries unknown keys, in document
    order (the paths are formatted for those only: the strict loader asks every page)."""
    parts: list[tuple[str, BaseModel]] = [("$", page)] if page.__pydantic_extra__ else []
    if page.page_size is not None and page.page_size.__pydantic_extra__:
        parts.append(("$.page_size", page.page_size))
    if page.source is not None and page.source.__pydantic_extra__:
        parts.append(("$.source", page.source))
    for i, panel in enumerate(page.panels):
        if panel.__pydantic_extra__:
            parts.append((f"$.panels[{i}]", panel))
        if panel.text.__pydantic_extra__:
            parts.append((f"$.panels[{i}].text", panel.text))
        if not (panel.text_items or panel.characters or panel.faces):
            continue  # most panels of most files: nothing more to look at
        groups: tuple[tuple[str, Sequence[BaseModel] | None], ...] = (
            ("text_items", panel.text_items),
            ("characters", panel.characters),
            ("faces", panel.faces),
        )
        for name, items in groups:
            for j, item in enumerate(items or ()):
                if item.__pydantic_extra__:
                    parts.append((f"$.panels[{i}].{name}[{j}]", item))
    for k, unpaired in enumerate(page.unpaired_text or ()):
        if unpaired.__pydantic_extra__:
            parts.append((f"$.unpaired_text[{k}]", unpaired))
        if unpaired.text.__pydantic_extra__:
            parts.append((f"$.unpaired_text[{k}].text", unpaired.text))
        for j, item in enumerate(unpaired.text_items or ()):
            if item.__pydantic_extra__:
                parts.append((f"$.unpaired_text[{k}].text_items[{j}]", item))
    return parts


def unknown_keys(page: Page) -> list[str]:
    """JSON paths of every key the contract does not define (kept, but flaggable)."""
    return [
        f"{where}.{key}"
        for where, model in extra_holders(page)
        if not isinstance(model, Source)
        for key in model.__pydantic_extra__ or ()
    ]
