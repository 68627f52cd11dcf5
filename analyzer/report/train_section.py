"""The "Training and evaluation" section: a run's curves per epoch, an evaluation's metrics.

The run is the folder `python -m training --output_dir` wrote: its `metrics.jsonl` holds
one JSON object per epoch (`epoch`, `train` losses per term, `val` losses and metrics).
The evaluation is the `--report` JSON of `python -m training.evaluate`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from .pages import path_html
from .svg import Series, line_chart

__all__ = ["Evaluation", "Run", "read_eval", "read_run", "section"]

METRICS = {
    "next_panel_acc": "share of panels whose predicted successor is the true one",
    "order_exact": "share of pages whose decoded reading order is exactly right",
    "kendall_tau": "mean Kendall tau between decoded and true order",
    "page_order_acc": "accuracy on page pairs (forward / swapped / other book)",
}
"""Known metrics (`training.evaluate`); others found in the files are shown too."""
LOSS_TERMS = ("total", "next", "mpm", "order")
COUNTS = ("pages", "pages_scored", "panels_scored", "pairs", "pages_skipped")
"""Count fields of a validation record or an evaluation report (not metrics)."""

TRAIN, VAL, CHANCE, HEURISTIC = "#3b6ea8", "#d9822b", "#8a8f98", "#3f9e55"


def _num(value: object) -> float | None:
    """A finite float, or None (missing, null, NaN, not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class Run:
    """A training run's per-epoch records (and the lines that could not be read), and
    the `args` of its `config.json` (empty without one)."""

    folder: str
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str | None:
        """The page list or folder the run trained on, as its config names it."""
        value = self.args.get("json_list_file") or self.args.get("json_dir")
        return value if isinstance(value, str) else None


@dataclass
class Evaluation:
    """An evaluation report: its metrics and, if it could not be read, why."""

    path: str
    data: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None

    @property
    def metrics(self) -> dict[str, Any]:
        """The metric fields (top level, or under "model" where a report nests them)."""
        nested = self.data.get("model")
        return {**self.data, **nested} if isinstance(nested, dict) else self.data


def read_run(folder: str | Path) -> Run:
    """`folder/metrics.jsonl`: records with an integer `epoch`; other lines are problems.
    `folder/config.json`, when readable, gives the run's `args`."""
    run = Run(str(folder))
    try:
        config = json.loads((Path(folder) / "config.json").read_text("utf-8"))
        if isinstance(config, dict) and isinstance(config.get("args"), dict):
            run.args = config["args"]
    except (OSError, ValueError):
        pass
    path = Path(folder) / "metrics.jsonl"
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        run.problems.append(f"{path}: cannot read ({exc.strerror or exc})")
        return run
    except UnicodeDecodeError:
        run.problems.append(f"{path}: not UTF-8 text")
        return run
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            run.problems.append(f"line {n}: not JSON")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            run.problems.append(f"line {n}: no integer epoch")
            continue
        run.records.append(record)
    return run


def read_eval(path: str | Path) -> Evaluation:
    """An evaluation report; a file that is not a JSON object gets a `problem`."""
    out = Evaluation(str(path))
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        out.problem = f"cannot read ({exc.strerror or exc})"
        return out
    except ValueError:
        out.problem = "not a JSON file"
        return out
    if not isinstance(data, dict):
        out.problem = "not a JSON object"
    else:
        out.data = data
    return out


def _part(record: dict[str, Any], part: str) -> dict[str, Any]:
    value = record.get(part)
    return value if isinstance(value, dict) else {}


def _metric_names(blocks: Sequence[dict[str, Any]]) -> list[str]:
    """Metric keys of validation / evaluation blocks: known ones first, then the rest."""
    found: list[str] = []
    for block in blocks:
        for key, value in block.items():
            if key not in METRICS and (
                key in COUNTS
                or key.startswith(("loss_", "chance_", "heuristic_"))
                or not isinstance(value, float)
            ):
                continue
            if key not in found:
                found.append(key)
    return [m for m in METRICS if m in found] + sorted(m for m in found if m not in METRICS)


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str, *, text: Sequence[int] = ()
) -> str:
    """A table whose cells are HTML already; columns in `text` are aligned left."""
    head = "".join(
        f"<th class='text'>{escape(h)}</th>" if i in text else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='text'>{c}</td>" if i in text else f"<td>{c}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object, digits: int = 4) -> str:
    number = _num(value)
    return "–" if number is None else f"{number:.{digits}f}"


def _run_part(run: Run) -> list[str]:
    """Curves (losses, validation metrics) and a table per epoch."""
    out = [f"<h3>Training run <small>{path_html(os.path.abspath(run.folder))}</small></h3>"]
    if run.problems:
        listed = "; ".join(run.problems[:5]) + (" …" if len(run.problems) > 5 else "")
        out.append(
            f"<p class='note'>metrics.jsonl: {len(run.problems)} line(s) left out: "
            f"{escape(listed)}</p>"
        )
    if not run.records:
        out.append(
            "<p class='note'>No epoch recorded yet: metrics.jsonl gets a line when an "
            "epoch ends.</p>"
        )
        return out
    records = sorted(run.records, key=lambda r: int(r["epoch"]))
    epochs = [int(r["epoch"]) for r in records]
    planned = run.args.get("epochs")
    facts = [
        f"epochs recorded <b>{len(epochs)}</b>"
        + (f" of {planned} planned" if isinstance(planned, int) else "")
    ]
    for key in ("batch_size", "lr", "val_fraction"):
        if _num(run.args.get(key)) is not None:
            facts.append(f"{key.replace('_', ' ')} <b>{run.args[key]:g}</b>")
    if run.source is not None:
        facts.append(f"pages from {path_html(run.source)}")
    out.append(f"<p class='totals'>{' · '.join(facts)}</p>")
    vals = [_part(r, "val") for r in records]
    trains = [_part(r, "train") for r in records]
    charts = []
    for term in LOSS_TERMS:
        train = [(e, _num(t.get(term))) for e, t in zip(epochs, trains, strict=True)]
        val = [(e, _num(v.get(f"loss_{term}"))) for e, v in zip(epochs, vals, strict=True)]
        series = [
            Series("train", train, TRAIN),
            *([Series("validation", val, VAL)] if any(y is not None for _, y in val) else []),
        ]
        if any(y is not None for s in series for _, y in s.points):
            title = "loss (total)" if term == "total" else f"loss: {term}"
            charts.append(line_chart(title, series, y_label="loss"))
    for name in _metric_names(vals):
        series = [
            Series(
                "model", [(e, _num(v.get(name))) for e, v in zip(epochs, vals, strict=True)], VAL
            )
        ]
        for prefix, colour, label in (
            ("chance_", CHANCE, "chance"),
            ("heuristic_", HEURISTIC, "layout heuristic"),
        ):
            base = [(e, _num(v.get(prefix + name))) for e, v in zip(epochs, vals, strict=True)]
            if any(y is not None for _, y in base):
                series.append(Series(label, base, colour, dashed=True))
        charts.append(line_chart(f"validation {name}", series, y_label=name, y_range=(0.0, 1.0)))
    out.append(f"<div class='charts' id='training-curves'>{''.join(charts)}</div>")
    names = _metric_names(vals)
    best = min(
        ((_num(v.get("loss_total")), e) for e, v in zip(epochs, vals, strict=True)),
        key=lambda item: (item[0] is None, item[0] or 0.0, item[1]),
    )
    rows = [
        [
            str(e) + (" ★" if best[0] is not None and e == best[1] else ""),
            _cell(t.get("total")),
            _cell(v.get("loss_total")),
            *(_cell(v.get(n), 3) for n in names),
            _cell(r.get("pages_per_s"), 1),
            str(
                int(_num(r.get("pages_skipped")) or 0) + int(_num(r.get("val_pages_skipped")) or 0)
            ),
        ]
        for e, t, v, r in zip(epochs, trains, vals, records, strict=True)
    ]
    out.append(
        _table(
            ["epoch", "train loss", "validation loss", *names, "pages/s", "pages skipped"],
            rows,
            "epochs",
        )
    )
    if best[0] is not None:
        out.append(
            f"<p class='note'>★ lowest validation loss (epoch {best[1]}): what best.pt holds.</p>"
        )
    return out


def _same(a: str, b: str) -> bool:
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _eval_part(evaluation: Evaluation, run: Run | None) -> list[str]:
    """The evaluation's metrics against chance and the layout heuristic, losses, counts;
    a warning when it scored the pages the run trained on."""
    where = path_html(os.path.abspath(evaluation.path))
    out = [f"<h3>Evaluation <small>{where}</small></h3>"]
    if evaluation.problem is not None:
        out.append(f"<p class='note'>Cannot use this report: {escape(evaluation.problem)}.</p>")
        return out
    m = evaluation.metrics
    source = m.get("source")
    if run is not None and run.source is not None and isinstance(source, str):
        if _same(source, run.source):
            out.append(
                "<p class='warn'>Evaluated on the pages the run trained on (its validation "
                "split included): not held-out numbers. Evaluate on another corpus for "
                "those.</p>"
            )
        else:
            out.append("<p class='note'>Held out: pages other than the run's training list.</p>")
    names = _metric_names([m])
    if not names:
        out.append("<p class='note'>This report holds no metrics.</p>")
        return out
    rows = [
        [
            f"<code>{escape(n)}</code>",
            _cell(m.get(n)),
            _cell(m.get(f"chance_{n}")),
            _cell(m.get(f"heuristic_{n}")),
            escape(METRICS.get(n, "")),
        ]
        for n in names
    ]
    out.append(
        _table(
            ["metric", "model", "chance", "layout heuristic", "meaning"],
            rows,
            "evaluation",
            text=(4,),
        )
    )
    losses = [(t, m.get(f"loss_{t}")) for t in LOSS_TERMS if _num(m.get(f"loss_{t}")) is not None]
    facts = [f"{k.replace('_', ' ')} <b>{int(_num(m.get(k)) or 0)}</b>" for k in COUNTS if k in m]
    facts += [f"loss {t} <b>{_cell(v)}</b>" for t, v in losses]
    epoch = f" (epoch <b>{int(m['epoch'])}</b>)" if _num(m.get("epoch")) is not None else ""
    if isinstance(m.get("checkpoint"), str):
        facts.append(f"checkpoint {path_html(m['checkpoint'])}{epoch}")
    if isinstance(m.get("source"), str):
        facts.append(f"pages from {path_html(m['source'])}")
    if facts:
        out.append(f"<p class='totals'>{' · '.join(facts)}</p>")
    return out


def section(run: Run | None, evaluation: Evaluation | None) -> list[str]:
    """The section's HTML; a note on how to add what was not given."""
    out = ["<h2 id='training'>Training and evaluation</h2>"]
    if run is None:
        out.append(
            "<p class='note'>No training run given: add <code>--run RUN_DIR</code> (the "
            "<code>--output_dir</code> of <code>python -m training</code>; its "
            "<code>metrics.jsonl</code> is read) to draw the loss and validation curves.</p>"
        )
    else:
        out += _run_part(run)
    if evaluation is None:
        out.append(
            "<p class='note'>No evaluation given: add <code>--eval EVAL.json</code> (the "
            "<code>--report</code> of <code>python -m training.evaluate</code>, best on "
            "held-out pages) for its metrics.</p>"
        )
    else:
        out += _eval_part(evaluation, run)
    return out
