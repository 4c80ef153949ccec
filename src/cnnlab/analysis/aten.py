"""Counting at the operator level: what one node (or a whole forward pass) really runs, op by op.

Every ATen operator a node dispatches is seen by a ``TorchDispatchMode``, on meta tensors as
well as real ones. MACs come from torch's own FLOP formulas (``torch.utils.flop_counter``: the
matrix products and convolutions, ``mm``, ``bmm``, ``addmm``, ``baddbmm``, convolution,
scaled dot-product attention), halved. FLOPs follow the analyzer's rates: 2 per MAC, 1 per
output element of a pointwise operator, 1 per input element of a reduction, 1 per window
element per output of a pooling window, softmax 1 and layer/batch/group norm 2 per element; memory operators (views, copies, concatenation,
padding, indexing, creation) cost 0. An operator outside these classes leaves the node's FLOPs
unknown and is named; its MACs stay exact, since every operator that multiplies and
accumulates is in torch's table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

__all__ = ["AtenCount", "counting"]

_aten = torch.ops.aten

# Operators that move or create memory, or only look at shapes: no arithmetic.
_FREE = {
    _aten.cat, _aten.stack, _aten.clone, _aten.copy_, _aten._to_copy, _aten.copy, _aten.empty, _aten.empty_like,
    _aten.empty_strided, _aten.zeros, _aten.zeros_like, _aten.ones, _aten.ones_like, _aten.full, _aten.full_like,
    _aten.fill_, _aten.zero_, _aten.constant_pad_nd, _aten.reflection_pad1d, _aten.reflection_pad2d,
    _aten.reflection_pad3d, _aten.replication_pad1d, _aten.replication_pad2d, _aten.replication_pad3d,
    _aten.index, _aten.index_select, _aten.index_copy, _aten.index_copy_, _aten.gather, _aten.roll, _aten.flip,
    _aten.repeat, _aten.arange,
    _aten.lift_fresh, _aten.detach, _aten.contiguous, _aten.scalar_tensor, _aten.new_empty, _aten.new_zeros,
    _aten.new_ones, _aten.new_full, _aten.masked_fill, _aten.masked_fill_, _aten.bernoulli_, _aten.bernoulli,
    _aten.sym_size, _aten.sym_numel, _aten.sym_stride, _aten.is_nonzero, _aten._local_scalar_dense,
    _aten.split_with_sizes_copy, _aten.unbind, _aten.unsafe_split, _aten.unsafe_chunk, _aten.split,
    _aten.split_with_sizes, _aten.chunk, _aten.one_hot, _aten.tril, _aten.triu, _aten.pixel_shuffle,
    _aten.channel_shuffle, _aten.native_channel_shuffle, _aten.max_unpool2d, _aten.max_unpool3d,
    _aten.embedding, _aten._unsafe_view, _aten.alias, _aten.rand, _aten.randn, _aten.rand_like, _aten.randn_like,
    # torch.profiler.record_function's markers (DataParallel's forward sets one): no arithmetic
    torch.ops.profiler._record_function_enter_new, torch.ops.profiler._record_function_exit,
}
# Operators at a stated rate per output element (softmax) or per element (norms: scale and shift).
_PER_ELEMENT = {_aten._softmax: 1, _aten._log_softmax: 1, _aten.softmax: 1, _aten.log_softmax: 1,
                _aten._safe_softmax: 1,
                _aten.native_layer_norm: 2, _aten.layer_norm: 2, _aten.native_batch_norm: 2,
                _aten._native_batch_norm_legit_no_training: 2, _aten._native_batch_norm_legit: 2,
                _aten.native_group_norm: 2, _aten.upsample_nearest2d: 1, _aten.upsample_bilinear2d: 1,
                _aten._upsample_bilinear2d_aa: 1, _aten.upsample_nearest1d: 1, _aten.upsample_nearest3d: 1}
_MEMORY_POINTWISE = {_aten.clone, _aten.copy_, _aten._to_copy, _aten.where, _aten.masked_fill}
# Windowed pooling, by the number of spatial axes: 1 FLOP per window element per output, as the
# pooling modules' own rule counts.
_POOLS = {_aten.max_pool1d: 1, _aten.max_pool1d_with_indices: 1, _aten.avg_pool1d: 1, _aten.max_pool2d: 2,
          _aten.max_pool2d_with_indices: 2, _aten.avg_pool2d: 2, _aten.max_pool3d: 3,
          _aten.max_pool3d_with_indices: 3, _aten.avg_pool3d: 3}


@dataclass
class AtenCount:
    """What a node ran: MACs (exact), FLOPs (None when an operator has no rate), the operators by name."""

    macs: int = 0
    flops: int | None = 0
    ops: dict[str, int] = field(default_factory=dict)  # operator -> calls
    unrated: list[str] = field(default_factory=list)  # operators that leave the FLOPs unknown

    def add(self, other: AtenCount) -> None:
        self.macs += other.macs
        self.flops = None if self.flops is None or other.flops is None else self.flops + other.flops
        for name, n in other.ops.items():
            self.ops[name] = self.ops.get(name, 0) + n
        self.unrated += [u for u in other.unrated if u not in self.unrated]

    def scale(self, factor: int) -> None:
        """Counts of one sample, made those of ``factor`` samples."""
        self.macs *= factor
        if self.flops is not None:
            self.flops *= factor

    def lines(self) -> tuple[str, ...]:
        calls = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in sorted(self.ops.items()))
        out = [f"counted at the operator level: {calls or 'no operators'}",
               f"MACs = {self.macs:,} (matrix products and convolutions, torch.utils.flop_counter's formulas / 2)"]
        if self.unrated:
            out.append(f"FLOPs unknown: no rate for {', '.join(self.unrated)}")
        return tuple(out)


def _numel(value: Any) -> int:
    return sum(t.numel() for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor))


def _first_numel(args: Any) -> int:
    for t in tree_flatten(args)[0]:
        if isinstance(t, torch.Tensor):
            return t.numel()
    return 0


class _Counter(TorchDispatchMode):
    """Counts every operator into ``self.count``, which its user may swap to attribute the counts."""

    def __init__(self) -> None:
        super().__init__()
        self.count = AtenCount()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        name = str(packet).removeprefix("aten.")
        c = self.count
        c.ops[name] = c.ops.get(name, 0) + 1
        if packet in flop_registry:
            flops = int(flop_registry[packet](*args, **kwargs, out_val=out))
            c.macs += flops // 2
            if c.flops is not None:
                c.flops += flops
            return out
        if packet in _FREE or func.is_view or torch.Tag.view_copy in func.tags or packet in _MEMORY_POINTWISE:
            return out
        if packet in _PER_ELEMENT:
            cost = _PER_ELEMENT[packet] * _first_numel(out)
        elif packet in _POOLS:
            nd, kernel = _POOLS[packet], list(args[1])
            window = math.prod(kernel) if len(kernel) == nd else kernel[0] ** nd  # [k] means k on every axis
            cost = window * _first_numel(out)
        elif torch.Tag.pointwise in func.tags:
            cost = _first_numel(out)
        elif torch.Tag.reduction in func.tags:
            cost = _first_numel(args)
        else:
            if name not in c.unrated:
                c.unrated.append(name)
            c.flops = None
            return out
        if c.flops is not None:
            c.flops += cost
        return out


class counting:  # a context manager, named like the function it reads as
    """``with counting() as count:`` runs the block under the operator counter; ``count`` is its AtenCount."""

    def __enter__(self) -> AtenCount:
        self.mode = _Counter()
        self.mode.__enter__()
        return self.mode.count

    def __exit__(self, *exc: Any) -> None:
        self.mode.__exit__(*exc)
