"""The analyzer's results: one record per graph node and a report with totals, JSON-ready."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from typing import Any

from cnnlab.shapes import fmt_shape

__all__ = ["CONVENTIONS", "LayerRecord", "MemoryEstimate", "Report"]

CONVENTIONS = {
    "params": "trainable and non-trainable counted separately, shared parameters once; buffers (batch-norm "
              "running statistics) are not parameters",
    "macs": "multiply-accumulates of convolutions and linear layers, bias not counted (torchvision's 'GFLOPS' "
            "and the ResNet paper's 'FLOPs'), for the whole batch; arithmetic on parameters alone (a "
            "relative-position bias) once per forward pass, as it runs",
    "flops": "2 per MAC for convolutions and linear layers (torch.utils.flop_counter), plus batch norm 2, "
             "activations 1, element-wise ops 1 per element, pooling 1 per window element per output, "
             "global/adaptive pooling and mean 1 per input element, LRN size+3 per element; shape ops 0",
    "activation_bytes": "bytes of each node's output tensor(s) for the whole batch; view operations add none",
    "receptive_field": "size r, jump j and effective padding p per spatial axis (Araujo et al., Distill 2019); "
                       "at adds and concatenations the largest field, branches whose jump or centre differ "
                       "are reported as misaligned; the spatial axes are followed through permutes, transposes "
                       "and reshapes that keep them one block (channels-last layer norm, channel shuffle) or "
                       "merge them into tokens; after attention over all positions every unit sees the whole "
                       "input; "
                       "after flatten or global pooling, and after a gate computed from a globally pooled "
                       "tensor (squeeze-and-excitation), every unit sees the whole input; normalization "
                       "statistics (batch, layer, group norm) are not a path; the network's field is that of "
                       "its last feature map, and unknown when the output's field cannot be followed",
    "inference_graph": "traced in eval mode: training-only branches (auxiliary classifiers) are not included; "
                       "totals.params is the sum of the layers shown, and the parameters of modules the graph "
                       "never runs are totals.params_outside_graph (model_params counts both)",
    "operator_level": "an operation without a rule of its own (attention, einsum, matmul, recurrent layers, "
                      "library functions) is counted from the ATen operators it runs: MACs of matrix products "
                      "and convolutions by torch.utils.flop_counter's formulas / 2 (attention: the input and "
                      "output projections and both matrix products; LSTM/GRU/RNN: every gate of every step), "
                      "FLOPs at the rates above",
    "unknown": "a total is given only when every node that feeds it has a rule; otherwise it is null and "
               "'unknown' names the nodes that stop it",
}


@dataclass
class LayerRecord:
    name: str
    op: str
    kind: str
    scope: str
    inputs: list[str]
    input_shapes: list[list[int]]
    output_shape: list[int] | None
    params: int = 0
    trainable_params: int = 0
    macs: int | None = 0  # None: unknown (see Report.unknown)
    flops: int | None = 0
    activation_bytes: int = 0
    rf_size: list[int] | None = None
    rf_stride: list[int] | None = None
    rf_padding: list[int] | None = None
    rf_covers_input: bool = False
    misaligned: str | None = None
    supported: bool = True
    weighted: bool = False  # a convolution or linear layer (counts towards depth)
    shared: bool = False  # a module already seen earlier in the graph: params shown, counted once
    explain: list[str] = field(default_factory=list)

    def to_dict(self, explain: bool = True) -> dict[str, Any]:
        d = asdict(self)
        if not explain:
            d.pop("explain")
        return d


@dataclass
class MemoryEstimate:
    """Training memory, in bytes: what a step holds at its peak, estimated from the graph."""

    parameters: int
    gradients: int
    optimizer_state: int
    activations: int
    optimizer: str
    measured_peak: int | None = None
    measured_on: str | None = None

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer_state + self.activations

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


@dataclass
class Report:
    model: str
    input_size: list[int]  # the first input's, without the batch
    inputs: list[dict[str, Any]]  # every input: name (None: by position), shape, dtype
    batch: int
    method: str
    limitation: str | None
    layers: list[LayerRecord]
    params: int
    trainable_params: int
    macs: int | None  # None: unknown, and unknown["macs"] says why
    flops: int | None
    activation_bytes: int
    weighted_depth: int | None  # None: unknown, and unknown["weighted_depth"] says why
    memory: MemoryEstimate
    unsupported: list[str]
    misaligned: list[str]
    receptive_field: dict[str, list[int]] | None
    unknown: dict[str, str] = field(default_factory=dict)  # total -> why it is unknown, naming the nodes
    has_map: bool = True  # the first input is image-like (InputSpec.image_like): a receptive field can exist
    # Parameters the traced (eval) graph never uses, e.g. auxiliary classifiers: params, trainable_params,
    # modules, note. ``params`` counts what the layers show; ``model_params`` adds these.
    params_outside_graph: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        """Every total is known."""
        return not self.unknown

    @property
    def non_trainable_params(self) -> int:
        return self.params - self.trainable_params

    @property
    def model_params(self) -> int:
        """Every parameter the model holds: the graph's and those outside it."""
        return self.params + (self.params_outside_graph or {}).get("params", 0)

    def to_dict(self, explain: bool = False) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_size": self.input_size,
            "inputs": self.inputs,
            "batch": self.batch,
            "method": self.method,
            "limitation": self.limitation,
            "complete": self.complete,
            "unknown": self.unknown,
            "unsupported": self.unsupported,
            "totals": {
                "params": self.params,
                "trainable_params": self.trainable_params,
                "non_trainable_params": self.non_trainable_params,
                "params_outside_graph": self.params_outside_graph,
                "model_params": self.model_params,
                "macs": self.macs,
                "flops": self.flops,
                "activation_bytes": self.activation_bytes,
                "weighted_depth": self.weighted_depth,
                "receptive_field": self.receptive_field,
                "training_memory": self.memory.to_dict(),
            },
            "misaligned": self.misaligned,
            "layers": [r.to_dict(explain) for r in self.layers],
            "conventions": CONVENTIONS,
        }

    def to_csv(self) -> str:
        buf = io.StringIO()
        cols = ["name", "op", "output_shape", "params", "trainable_params", "macs", "flops", "activation_bytes",
                "rf_size", "rf_stride", "rf_padding", "misaligned", "supported"]
        writer = csv.writer(buf)
        writer.writerow(cols)
        for r in self.layers:
            d = r.to_dict(explain=False)
            writer.writerow([fmt_shape(d[c]) if isinstance(d[c], list) else ("" if d[c] is None else d[c])
                             for c in cols])
        return buf.getvalue()
