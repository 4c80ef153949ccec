"""Tables of analyzer reports: for the terminal, as Markdown and as CSV."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnnlab.analysis.records import LayerRecord, Report
from cnnlab.console import fmt_count, fmt_macs
from cnnlab.limits import human_bytes
from cnnlab.shapes import fmt_shape

__all__ = ["compare_document", "compare_rows", "human_bytes", "markdown_table", "print_report", "report_rows"]


def _rf(r: LayerRecord, has_map: bool) -> str:
    if r.rf_size is None:  # '?': unknown; '-': there is no field (no map to have one on)
        return "?" if has_map and (not r.supported or r.kind not in ("input", "output")) else "-"
    text = fmt_shape(r.rf_size)
    return text + " (all)" if r.rf_covers_input else text


COLUMNS = [("name", "left"), ("op", "left"), ("output", "left"), ("params", "right"), ("MACs", "right"),
           ("FLOPs", "right"), ("act", "right"), ("RF", "right"), ("jump", "right"), ("", "left")]


def report_rows(layers: Sequence[LayerRecord], has_map: bool = True) -> list[list[str]]:
    rows = []
    for r in layers:
        if r.kind in ("input", "output"):
            continue
        flags = []
        if not r.supported:
            flags.append("no rule")
        if r.misaligned:
            flags.append("misaligned")
        if r.shared:
            flags.append("shared")
        rows.append([
            r.name, r.op, fmt_shape(r.output_shape) if r.output_shape else "-",
            f"{r.params:,}" if r.params else "", _count(r.macs), _count(r.flops),
            human_bytes(r.activation_bytes) if r.activation_bytes else "", _rf(r, has_map),
            fmt_shape(r.rf_stride) if r.rf_stride else "", ", ".join(flags),
        ])
    return rows


def _count(n: int | None) -> str:
    """A node's MACs or FLOPs: blank for none, '?' where unknown."""
    return "?" if n is None else (f"{n:,}" if n else "")


def _total(n: int | None) -> str:
    return "unknown" if n is None else f"{n:,} ({fmt_macs(n)})"


def _summary_lines(report: Report) -> list[str]:
    m = report.memory
    lines = [
        f"params: {report.params:,} ({report.trainable_params:,} trainable, {report.non_trainable_params:,} not)",
    ]
    outside = report.params_outside_graph
    if outside:
        lines.append(f"params outside the inference graph: {outside['params']:,} in {', '.join(outside['modules'])} "
                     f"(training only, not in the rows above); the model holds {report.model_params:,}")
    lines += [
        f"MACs: {_total(report.macs)}   FLOPs: {_total(report.flops)}",
        f"activations: {human_bytes(report.activation_bytes)}   weighted depth: {fmt_count(report.weighted_depth)}",
    ]
    if report.receptive_field:
        rf = report.receptive_field
        lines.append(f"receptive field: {fmt_shape(rf['size'])}, jump {fmt_shape(rf['stride'])}, "
                     f"effective padding {fmt_shape(rf['padding'])}")
    measured = human_bytes(m.measured_peak) + f" ({m.measured_on})" if m.measured_peak is not None else (
        m.measured_on or "not measured (add --measure)")
    lines.append(
        f"training memory estimate ({m.optimizer}): {human_bytes(m.total)} = weights {human_bytes(m.parameters)} + "
        f"gradients {human_bytes(m.gradients)} + optimizer {human_bytes(m.optimizer_state)} + activations "
        f"{human_bytes(m.activations)}; measured: {measured}"
    )
    for total, why in report.unknown.items():
        lines.append(f"{total.replace('_', ' ')} unknown: {why}")
    for mis in report.misaligned:
        lines.append(f"misaligned branches at {mis}")
    if report.limitation:
        lines.append(f"limited analysis: {report.limitation}")
    return lines


def print_report(report: Report, layers: Sequence[LayerRecord], explain: bool = False) -> None:
    from cnnlab.console import out, table

    title = (f"{report.model} at {report.batch}x{fmt_shape(report.input_size)} "
             f"({report.method} trace)")
    out.print(table(title, COLUMNS, report_rows(layers, report.has_map)))
    if explain:
        for r in layers:
            if r.explain and r.kind not in ("input", "output"):
                out.print(f"\n[bold]{r.name}[/bold] ({r.op})")
                for line in r.explain:
                    out.print(f"  {line}", markup=False)
    out.print()
    for line in _summary_lines(report):
        out.print(line, markup=False)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] = ()) -> str:
    """A Markdown table; columns flagged in ``right`` are right-aligned."""
    def esc(cell: Any) -> str:
        return str(cell).replace("|", "\\|")

    rules = ["---:" if i < len(right) and right[i] else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(rules) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report_markdown(report: Report, layers: Sequence[LayerRecord]) -> str:
    head = [c for c, _ in COLUMNS[:-1]] + ["flags"]
    body = markdown_table(head, report_rows(layers, report.has_map))
    return f"### {report.model} at {report.batch}x{fmt_shape(report.input_size)}\n\n{body}\n\n" + "\n".join(
        f"- {line}" for line in _summary_lines(report)) + "\n"


def compare_rows(reports: Sequence[Report]) -> list[dict[str, Any]]:
    rows = []
    for r in reports:
        rf = r.receptive_field
        rows.append({
            "model": r.model,
            "params": r.params,
            "params_outside_graph": r.params_outside_graph["params"] if r.params_outside_graph else 0,
            "macs": r.macs,
            "flops": r.flops,
            "weighted_depth": r.weighted_depth,
            "receptive_field": rf["size"] if rf else None,
            "activation_bytes": r.activation_bytes,
            "complete": r.complete,
        })
    return rows


def compare_document(reports: Sequence[Report], input_size: Sequence[int] | None, batch: int = 1) -> dict[str, Any]:
    """The comparison as one document: ``cnnlab compare --json`` and the explorer's /api/compare return it.

    ``input_size`` is None when each model was analysed at its own default input.
    """
    return {"input_size": list(input_size) if input_size else None, "batch": batch, "rows": compare_rows(reports)}
