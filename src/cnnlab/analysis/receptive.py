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

__all__ = ["FieldState", "merge_fields", "propagate", "standard_axes"]


@dataclass(frozen=True)
class FieldState:
    field: ReceptiveField | None  # None: unknown
    axes: tuple[int, ...] | None  # where the spatial axes are in the tensor, in order; None: the map collapsed
    misaligned: str | None = None  # why branches disagree, at the node that merges them
    grid: tuple[int, ...] = ()  # the map's size per spatial axis (kept while its positions are tokens)
    whole: bool = False  # every unit already sees the whole input (after attention, a global gate)

    @property
    def spatial(self) -> bool:
        return self.axes is not None


def standard_axes(rank: int, nd: int) -> tuple[int, ...]:
    """N x C x spatial...: the layout convolutions and pooling work in."""
    return tuple(range(rank - nd, rank))


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


def _collapsed(state: FieldState) -> ReceptiveField:
    """The field of a unit that sees the whole map: the first unit's field stretched over every position."""
    assert state.field is not None
    if state.whole:
        return state.field  # nothing more to see
    nd = len(state.field.size)
    sizes = state.grid if len(state.grid) == nd else (1,) * nd
    return state.field.step(sizes, (1,) * nd, (0,) * nd)


def propagate(step: RFStep, inputs: list[FieldState], in_shape: tuple[int, ...] | None,
              out_shape: tuple[int, ...] | None) -> FieldState:
    """The field after one node, from the fields of its inputs and the shapes it maps."""
    known = [s for s in inputs if s.field is not None]
    if not inputs or len(known) < len(inputs):
        return FieldState(None, None)
    if not any(s.spatial for s in known):
        # Every input has collapsed (flatten, global pooling): each of its units already sees the
        # whole input, and no operation after that can widen the field.
        return FieldState(max((s.field for s in known), key=lambda f: f.size), None, whole=True)
    if step.kind == "unknown" or out_shape is None:
        return FieldState(None, None)
    first = next(s for s in known if s.spatial)
    axes, grid, whole = first.axes, first.grid, first.whole
    assert axes is not None and first.field is not None
    rank_kept = in_shape is not None and len(out_shape) == len(in_shape)
    if step.kind == "same":
        return FieldState(first.field, axes, grid=grid, whole=whole) if rank_kept else FieldState(None, None)
    if step.kind == "lastdim":  # a linear map over the last axis, position by position
        if in_shape is None or len(in_shape) - 1 in axes or not rank_kept:
            return FieldState(None, None)
        return FieldState(first.field, axes, grid=grid, whole=whole)
    if step.kind == "attend":  # every position sees every other: each unit sees the whole map
        return FieldState(_collapsed(first), axes if rank_kept else None, grid=grid, whole=True)
    if step.kind == "move":
        moved = step.remap(axes, in_shape, out_shape, grid) if step.remap is not None and in_shape else None
        if moved == "global":
            return FieldState(_collapsed(first), None, whole=True)
        if not isinstance(moved, tuple):
            return FieldState(None, None)
        return FieldState(first.field, moved, grid=grid, whole=whole)
    if step.kind == "step":
        nd = len(first.field.size)
        if in_shape is None or len(axes) != nd or axes != standard_axes(len(in_shape), nd) or not rank_kept:
            return FieldState(None, None)  # a kernel over axes that are not the map's: no rule
        return FieldState(first.field.step(step.kernel, step.stride, step.padding), axes,
                          grid=tuple(out_shape[a] for a in axes), whole=whole)
    if step.kind == "global":
        return FieldState(_collapsed(first), None, whole=True)
    if step.kind == "merge":
        spatial = [s for s in known if s.spatial]
        collapsed = [s for s in known if not s.spatial]
        if len({s.axes for s in spatial}) > 1:
            return FieldState(None, None)  # maps in different layouts: no rule
        merged, problem = merge_fields([s.field for s in spatial]) if len(spatial) > 1 else (spatial[0].field, None)
        whole = any(s.whole for s in spatial) or bool(collapsed)
        if collapsed:
            # a gate from a globally pooled tensor scales the map: each unit now depends on every
            # input pixel, so the field is the gate's (the whole input) where it is the larger
            whole = max((s.field for s in collapsed), key=lambda f: f.size)
            if all(w >= m for w, m in zip(whole.size, merged.size, strict=True)):
                c = merged.center(0)
                pad = tuple(int((r - 1) / 2 - x) for r, x in zip(whole.size, c, strict=True))
                merged = ReceptiveField(whole.size, merged.stride, pad)
        return FieldState(merged, axes if rank_kept else None, problem, grid, whole)
    return FieldState(None, None)
