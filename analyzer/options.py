"""An analyzer run's options (the command line's flags, parsed: `Options`, `EmitOptions`)
and what it found and wrote (`Summary`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .emit import MIN_CONFIDENCE
from .score import SUBSETS

__all__ = ["EmitOptions", "Options", "Summary"]


@dataclass(frozen=True)
class EmitOptions:
    """What DataSpec emission writes and which pages it skips."""

    out_dir: str
    subsets: frozenset[str] | None = None
    """Subsets whose pages are written; None: every matched page."""
    min_det_score: float = 0.5
    min_pair_confidence: float = MIN_CONFIDENCE
    """Least confidence of a placement for its VLM text to be written on the panel."""
    require_equal_counts: bool = False
    require_image: bool = False
    keep_unpaired: bool = False
    naming: str = "preserve_tree"
    limit: int | None = None
    list_out: str | None = None
    skips_out: str | None = None


@dataclass(frozen=True)
class Options:
    """One analyzer run (the command line's flags, parsed)."""

    coco: str
    output_csv: str
    vlm_dir: str | None = None
    vlm_map: str | None = None
    manifest: str | None = None
    """CSV `canonical_id,absolute_image_path` (see `analyzer.manifest`)."""
    image_roots: tuple[str, ...] = ()
    num_workers: int = 1
    fuzzy: bool = False
    panel_category_ids: tuple[int, ...] = ()
    panel_category_names: tuple[str, ...] = ()
    text_category_ids: tuple[int, ...] = ()
    text_category_names: tuple[str, ...] = ()
    min_det_score: float = 0.0
    min_text_coverage: float = 0.5
    caption_as_narration: bool = False
    json_lists: tuple[str, ...] = ()
    json_list_out: str | None = None
    json_require_exists: bool = False
    emit: EmitOptions | None = None
    emit_vlm_map: str | None = None
    limit: int | None = None
    shard: tuple[int, int] | None = None
    ambiguities_out: str | None = None
    errors_out: str | None = None
    progress: bool = True


@dataclass
class Summary:
    """What a run found and wrote (printed at the end)."""

    pages: int = 0
    matched: int = 0
    images_found: int = 0
    tiers: Counter[str] = field(default_factory=Counter)
    subsets: Counter[str] = field(default_factory=Counter)
    coverage_sum: float = 0.0
    with_text: int = 0
    emit: bool = False
    outcomes: Counter[str] = field(default_factory=Counter)
    problems: int = 0
    ambiguities: int = 0
    written: list[str] = field(default_factory=list)
    repairs: Counter[str] = field(default_factory=Counter)
    """Matched pages by repair code of their VLM reply."""
    repaired: int = 0
    """Matched pages whose VLM reply needed any repair."""
    truncated: int = 0
    empty: int = 0
    """Pages whose VLM JSON is an empty reply (unreadable)."""

    @property
    def emitted(self) -> int:
        """DataSpec files written."""
        return self.outcomes.get("emitted", 0)

    @property
    def skipped(self) -> int:
        """Matched pages not written, each with a reason."""
        return sum(v for k, v in self.outcomes.items() if k != "emitted")

    def lines(self) -> list[str]:
        """The printed summary."""

        def pct(n: int, d: int) -> str:
            return f"{100.0 * n / d:.1f}%" if d else "0.0%"

        out = [
            f"pages: {self.pages}; matched: {self.matched} ({pct(self.matched, self.pages)}); "
            f"images found: {self.images_found} ({pct(self.images_found, self.pages)})",
            "match tiers: " + ", ".join(f"{k} {v}" for k, v in sorted(self.tiers.items())),
            "subsets (share of matched pages):",
        ]
        for name in SUBSETS:
            n = self.subsets[name]
            out.append(f"  {name:<18} {n:>9}  {pct(n, self.matched):>6}")
        mean = self.coverage_sum / self.matched if self.matched else 0.0
        out.append(
            f"text coverage: mean {mean:.3f}; matched pages with any text {self.with_text} "
            f"({pct(self.with_text, self.matched)})"
        )
        codes = ", ".join(f"{k} {v}" for k, v in sorted(self.repairs.items()))
        out.append(
            f"vlm replies: repaired {self.repaired}"
            + (f" ({codes})" if codes else "")
            + f"; truncated {self.truncated}; empty replies {self.empty}"
        )
        if self.emit:
            reasons = ", ".join(
                f"{k} {v}" for k, v in sorted(self.outcomes.items()) if k != "emitted"
            )
            out.append(
                f"dataspec: matched {self.matched} = emitted {self.emitted} + skipped "
                f"{self.skipped}" + (f" ({reasons})" if reasons else "")
            )
        if self.ambiguities:
            out.append(f"ambiguities: {self.ambiguities} (see the ambiguities CSV)")
        if self.problems:
            out.append(f"bad input (run went on): {self.problems} (see the errors CSV)")
        return out
