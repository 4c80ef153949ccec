"""Receptive fields propagated over the graph, branches included.

Every edge carries the field (size r, jump j, effective padding p per spatial axis) of the
tensor on it (Araujo, Norris & Sim, Distill 2019). A convolution or pooling node steps it;
a pointwise node passes it on; an add or a channel concatenation takes the largest field of
its inputs and reports the branches as misaligned when their jumps or the centres of their
first units disagree; flatten and global pooling collapse the map, after which every unit
sees the whole input. A gate computed from a collapsed map (squeeze-and-excitation: global
pooling, 1x1 convolutions, a sigmoid, then a product with the map) makes every unit after it
see the whole input too. A node without a receptive-field rule makes the field unknown from
there on, and the report says where.
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnlab.analysis.rules import RFStep
from cnnlab.shapes import ReceptiveField, fmt_shape

__all__ = ["FieldState", "merge_fields", "propagate"]


@dataclass(frozen=True)
class FieldState:
    field: ReceptiveField | None  # None: unknown
    spatial: bool  # the tensor still has spatial axes
    misaligned: str | None = None  # why branches disagree, at the node that merges them


def merge_fields(fields: list[ReceptiveField]) -> tuple[ReceptiveField, str | None]:
    """The largest field of several branches, and what disagrees between them (if anything)."""
    ndim = len(fields[0].size)
    size = tuple(max(f.size[a] for f in fields) for a in range(ndim))
    widest = max(fields, key=lambda f: f.size)
    problems = []
    jumps = {f.stride for f in fields}
    if len(jumps) > 1:
        problems.append("jumps " + " vs ".join(fmt_shape(j) for j in sorted(jumps)))
    centres = {f.center(0) for f in fields}
    if len(centres) > 1:
        problems.append("centres " + " vs ".join(
            "(" + ", ".join(f"{c:g}" for c in centre) + ")" for centre in sorted(centres)))
    merged = ReceptiveField(size, widest.stride, widest.padding)
    if merged.size != widest.size:
        # Keep the centre of the widest branch: p = (r - 1)/2 - centre.
        centre = widest.center(0)
        merged = ReceptiveField(size, widest.stride, tuple(int((r - 1) / 2 - c) for r, c in zip(size, centre,
                                                                                                 strict=True)))
    return merged, ("; ".join(problems) or None)


def propagate(step: RFStep, inputs: list[FieldState], spatial_in: tuple[int, ...] | None,
              out_is_spatial: bool) -> FieldState:
    """The field after one node, from the fields of its inputs."""
    known = [s for s in inputs if s.field is not None]
    if not inputs or len(known) < len(inputs):
        return FieldState(None, out_is_spatial)
    if len(known) == len(inputs) and not any(s.spatial for s in known):
        # Every input has collapsed (flatten, global pooling): each of its units already sees the
        # whole input, and no operation after that can widen the field.
        return FieldState(max((s.field for s in known), key=lambda f: f.size), False)
    if step.kind == "unknown":
        return FieldState(None, out_is_spatial)
    first = known[0]
    if step.kind == "same":
        return FieldState(first.field, first.spatial and out_is_spatial)
    if step.kind == "step":
        if not first.spatial:
            return FieldState(None, out_is_spatial)
        return FieldState(first.field.step(step.kernel, step.stride, step.padding), True)
    if step.kind == "global":
        if not first.spatial or spatial_in is None:
            return FieldState(first.field, False)
        nd = len(first.field.size)
        return FieldState(first.field.step(spatial_in, (1,) * nd, (0,) * nd), False)
    if step.kind == "merge":
        spatial = [s for s in known if s.spatial]
        collapsed = [s for s in known if not s.spatial]
        if spatial and collapsed and out_is_spatial:
            # a gate from a globally pooled tensor scales the map: each unit now depends on every
            # input pixel, so the field is the gate's (the whole input) where it is the larger
            merged, problem = merge_fields([s.field for s in spatial])
            whole = max((s.field for s in collapsed), key=lambda f: f.size)
            if all(w >= m for w, m in zip(whole.size, merged.size, strict=True)):
                c = merged.center(0)
                pad = tuple(int((r - 1) / 2 - x) for r, x in zip(whole.size, c, strict=True))
                merged = ReceptiveField(whole.size, merged.stride, pad)
            return FieldState(merged, True, problem)
        if len(spatial) <= 1:
            return FieldState((spatial or known)[0].field, bool(spatial) and out_is_spatial)
        merged, problem = merge_fields([s.field for s in spatial])
        return FieldState(merged, out_is_spatial, problem)
    return FieldState(None, out_is_spatial)
