"""The graph analyzer: shapes, parameters, MACs/FLOPs, memory and receptive fields for any model.

    report = cnnlab.analyze("resnet50", input_size=(3, 224, 224))
    report.macs, report.params, report.receptive_field

The model is traced with torch.fx and run on meta tensors, so analysing any input size costs no
real compute and no activation memory (see :mod:`cnnlab.analysis.trace`).
"""

from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from cnnlab.analysis.aten import AtenCount
from cnnlab.analysis.inputs import InputSpec, bind_inputs, example_call, parse_inputs
from cnnlab.analysis.receptive import FieldState, propagate, standard_axes
from cnnlab.analysis.records import CONVENTIONS, LayerRecord, MemoryEstimate, Report
from cnnlab.analysis.rules import SAME, OpInfo, rule_for
from cnnlab.analysis.trace import VIEW_OPS, Node, trace_model
from cnnlab.errors import CnnlabError, first_line
from cnnlab.models.inputs import first_forward, lazy_error, lazy_tensors
from cnnlab.shapes import ReceptiveField, fmt_shape

__all__ = ["CONVENTIONS", "LayerRecord", "Report", "analyze", "fold", "require_memory"]

_OPTIMIZER_STATES = {"sgd": 1, "sgd-nomomentum": 0, "adam": 2, "adamw": 2, "none": 0}


def _is_view(node: Node, op: str) -> bool:
    if node.kind in ("input", "output", "attribute"):
        return True
    if node.kind == "method" and str(node.target) in VIEW_OPS:
        return True
    # Concatenation and padding are not views: they write a new tensor and count.
    return op in ("flatten", "Flatten", "getitem", "getattr", "reshape", "squeeze", "unsqueeze", "Identity")


def _op_label(node: Node) -> str:
    if node.kind == "method":
        return str(node.target)
    return getattr(node.target, "__name__", str(node.target))


def _module_params(module: nn.Module) -> tuple[int, int]:
    total = trainable = 0
    for p in module.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable


def _resolve(model_or_name: nn.Module | str, model_kwargs: dict[str, Any]) -> tuple[nn.Module, str]:
    from cnnlab.models.source import build_on_meta, unwrap

    if isinstance(model_or_name, nn.Module):
        if model_kwargs:
            raise CnnlabError("model options apply to a model name, not to a model object")
        model = unwrap(model_or_name)  # the network a DataParallel or torch.compile wrapper runs
        return model, type(model).__name__

    return unwrap(build_on_meta(model_or_name, model_kwargs)), model_or_name


def analyze(
    model_or_name: nn.Module | str,
    input_size: Sequence[int] | Sequence[InputSpec] | str | None = None,
    batch: int = 1,
    optimizer: str = "sgd",
    measure: bool = False,
    **model_kwargs: Any,
) -> Report:
    """Analyse a model (an ``nn.Module``, a registry name, or ``file.py:name``) at one input size.

    ``input_size`` is (C, H, W); it defaults to a registered model's own default input (3x32x32
    for the CIFAR networks), else 3x224x224. A model that takes something else, or several
    inputs, gets them as :class:`~cnnlab.analysis.inputs.InputSpec` or in their grammar
    (``"128:int64"``, ``"3x224x224,mask=224x224:bool"``; see :mod:`cnnlab.analysis.inputs`);
    receptive fields are measured on the first input when it is image-like.

    ``optimizer`` sets the optimizer state in the training-memory estimate (``sgd`` with
    momentum: one buffer per parameter; ``adam``/``adamw``: two). ``measure`` also runs one real
    training step and records its peak memory (CUDA: the allocator's peak; CPU: the profiler's).
    """
    if batch < 1:
        raise CnnlabError(f"batch must be at least 1, got {batch}")
    if optimizer not in _OPTIMIZER_STATES:
        raise CnnlabError(f"optimizer must be one of {', '.join(_OPTIMIZER_STATES)}, got {optimizer!r}")
    if input_size is None:
        from cnnlab.models.registry import default_input

        input_size = default_input(model_or_name, model_kwargs.get("in_channels"))
    specs = parse_inputs(input_size)
    size = specs[0].shape
    if min(size) < 1:
        raise CnnlabError(f"input must be CxHxW with positive sizes, e.g. 3x224x224, got {size}")
    single_image = len(specs) == 1 and specs[0].image_like and specs[0].name is None
    if measure and not single_image:
        raise CnnlabError("--measure runs a training step on one image-like input; drop it for this model")
    model, label = _resolve(model_or_name, model_kwargs)
    bind_inputs(model, specs)  # an input forward does not take is one line before anything runs
    lazy = lazy_tensors(model)
    if lazy and not isinstance(model_or_name, str):  # the caller's own model: theirs to size
        example = ", ".join(f"torch.zeros(1, {', '.join(map(str, s.shape))})" for s in specs)
        raise lazy_error(label, lazy, f"run it once on an input, e.g. model({example}), then analyse it")
    with _collector_paused():
        return _analyze(model, model_or_name, label, specs, size, single_image, batch, optimizer, measure, bool(lazy))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the graph is built: a full collection over torch's
    many objects, set off by the analysis's own small ones, costs more than the analysis (0.18 s of
    0.37 s for ResNet-152 in a fresh process). What the analysis leaves is collected afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _analyze(model: nn.Module, model_or_name: nn.Module | str, label: str, specs: list[InputSpec],
             size: tuple[int, ...], single_image: bool, batch: int, optimizer: str, measure: bool,
             lazy: bool) -> Report:
    try:
        if lazy:  # cnnlab built it on the meta device: its first forward sizes it there, for free
            args, kwargs = example_call(bind_inputs(model, specs)[0], 1)
            first_forward(model, *args, **kwargs)
        trace = trace_model(model, specs, batch)
    except (RuntimeError, ValueError, IndexError, AssertionError) as exc:  # the model's own checks assert too
        from cnnlab.models.inputs import check_input

        if single_image and len(size) == 3 and not lazy_tensors(model):  # an unsized lazy layer cannot be probed
            known = None
            if isinstance(model_or_name, str):
                from cnnlab.models.registry import list_models, model_info

                if model_or_name in list_models():
                    known = model_info(model_or_name).default_input[-1]
            check_input(model, size, label, known_side=known)
        first = first_line(exc)
        given = ", ".join(s.text for s in specs)
        raise CnnlabError(f"{label} cannot run on input {given}: {first}") from None
    return _build_report(model, label, specs, batch, trace, optimizer, measure)


def _build_report(model: nn.Module, label: str, specs: list[InputSpec], batch: int, trace: Any, optimizer: str,
                  measure: bool) -> Report:
    size = specs[0].shape
    spatial = specs[0].image_like  # a receptive field is measured on the first input, if it has a map
    first_input = next((n.name for n in trace.nodes if n.kind == "input"), None)
    nd = len(size) - 1
    spatial_rank = 2 + nd
    fields: dict[str, FieldState] = {}
    depth: dict[str, int | None] = {}  # weighted layers on the longest path; None: unknown
    seen_modules: set[int] = set()
    records: list[LayerRecord] = []
    unsupported: list[str] = []
    misaligned: list[str] = []
    depends: dict[str, bool] = {}  # does the node's value depend on the model's input?
    drawn: set[int] = set()  # the parameters shown on some record
    attribute_params: dict[str, nn.Parameter] = {}  # get_attr nodes' parameters, until a record uses them
    for node in trace.nodes:
        depends[node.name] = node.kind == "input" or any(depends.get(i, False) for i in node.inputs)
        if depends[node.name] or node.kind in ("module", "output"):
            info = rule_for(node)
        else:
            # Arithmetic on parameters alone (building a masked kernel, a relative-position bias) sees
            # no pixels, and runs once per forward pass whatever the batch: counted once, as it ran.
            ran = node.aten or AtenCount()  # None: shape arithmetic only, no operator ran
            info = OpInfo(_op_label(node), ran.macs, ran.flops, SAME, True,
                          ("works on parameters only, independent of the input: runs once per forward pass "
                           "whatever the batch",))
        out_shape = node.output_shape
        if node.kind == "input":
            state = (FieldState(ReceptiveField.of_input(nd), standard_axes(spatial_rank, nd), grid=tuple(size[1:]))
                     if spatial and node.name == first_input else FieldState(None, None))
        else:
            ins = [fields[i] for i in node.inputs if i in fields and depends.get(i, False)]
            first_in = _first_map_input(node, fields, depends)
            state = propagate(info.rf, ins, first_in, tuple(out_shape) if out_shape else None)
        fields[node.name] = state
        params = trainable = 0
        shared = False
        if node.kind == "module":
            if id(node.target) in seen_modules:
                shared = True
            seen_modules.add(id(node.target))
            params, trainable = _module_params(node.target)
            drawn.update(id(p) for p in node.target.parameters())
        elif node.kind != "attribute":
            # A parameter the forward uses directly (a get_attr node: LeNet-5's trainable pooling
            # coefficients, say) is shown on the first node that uses it.
            for used in [i for i in node.inputs if i in attribute_params]:
                p = attribute_params.pop(used)
                if id(p) not in drawn:
                    drawn.add(id(p))
                    params += p.numel()
                    trainable += p.numel() if p.requires_grad else 0
        weighted = (info.macs or 0) > 0
        before = [depth.get(i, 0) for i in node.inputs]
        # A node without a counting rule may be a weighted layer: the depth through it is unknown.
        depth[node.name] = (None if info.macs is None or None in before
                            else max(before, default=0) + (1 if weighted else 0))
        if not info.supported:
            unsupported.append(f"{node.name} ({info.op})")
        if state.misaligned:
            misaligned.append(f"{node.name}: {state.misaligned}")
        act = 0
        if depends[node.name] and not _is_view(node, info.op) and node.dtype is not None:
            act = sum(math.prod(s) for s in node.output_shapes) * torch.empty((), dtype=node.dtype).element_size()
        f = state.field
        covers = f is not None and all(r >= n for r, n in zip(f.size, size[1:], strict=True))
        if node.kind in ("attribute",):
            found = _parameter(model, node.target)
            if found is not None:
                attribute_params[node.name] = found
            continue
        records.append(LayerRecord(
            name=node.name, op=info.op, kind=node.kind, scope=node.scope, inputs=list(node.inputs),
            input_shapes=[list(s) for s in node.input_shapes], output_shape=list(out_shape) if out_shape else None,
            params=params, trainable_params=trainable, macs=info.macs, flops=info.flops, activation_bytes=act,
            rf_size=list(f.size) if f else None, rf_stride=list(f.stride) if f else None,
            rf_padding=list(f.padding) if f else None, rf_covers_input=covers, misaligned=state.misaligned,
            supported=info.supported, weighted=weighted, shared=shared, explain=list(info.lines),
        ))
    total_params = trainable_params = param_bytes = trainable_bytes = 0
    for p in model.parameters():
        param_bytes += p.numel() * p.element_size()
        if p.requires_grad:
            trainable_bytes += p.numel() * p.element_size()
        if id(p) in drawn or trace.method != "fx":  # an operator-level count has no graph to place them on
            total_params += p.numel()
            trainable_params += p.numel() if p.requires_grad else 0
    outside = _outside_graph(model, drawn) if trace.method == "fx" else None
    activation_bytes = sum(r.activation_bytes for r in records)
    memory = MemoryEstimate(
        parameters=param_bytes, gradients=trainable_bytes,
        optimizer_state=_OPTIMIZER_STATES[optimizer] * trainable_bytes,
        activations=activation_bytes, optimizer=optimizer,
    )
    if measure:
        from cnnlab.analysis.memory import measure_training_peak
        from cnnlab.limits import check_memory

        check_memory(memory.total, f"a training step of {label} at batch {batch} of {fmt_shape(size)}",
                     "drop --measure (the estimate needs no memory), or use a smaller --input or --batch")
        memory.measured_peak, memory.measured_on = measure_training_peak(model, size, batch, optimizer)
    out = records[-1] if records else None
    unknown = _unknown_totals(records, trace, fields, depends, spatial, depth)
    rf = None
    if "receptive_field" not in unknown:
        # The network's receptive field is that of its last feature map (the units the classifier
        # pools or flattens); after global pooling every unit trivially sees the whole input.
        final = next((r for r in reversed(records) if r.rf_size is not None and fields[r.name].spatial), None)
        if final is not None:
            rf = {"size": final.rf_size, "stride": final.rf_stride, "padding": final.rf_padding}
    return Report(
        model=label, input_size=list(size), inputs=[s.to_dict() for s in specs], batch=batch, method=trace.method,
        limitation=trace.limitation,
        layers=records, params=total_params, trainable_params=trainable_params,
        macs=None if "macs" in unknown else sum(r.macs or 0 for r in records),
        flops=None if "flops" in unknown else sum(r.flops or 0 for r in records), activation_bytes=activation_bytes,
        weighted_depth=None if "weighted_depth" in unknown else depth.get(out.name, 0) if out else 0, memory=memory, unsupported=unsupported,
        misaligned=misaligned, receptive_field=rf, unknown=unknown, has_map=spatial, params_outside_graph=outside,
    )


def _parameter(model: nn.Module, target: Any) -> nn.Parameter | None:
    """The parameter a get_attr node fetches (None for a buffer or a constant)."""
    try:
        return model.get_parameter(str(target))
    except AttributeError:
        return None


def _outside_graph(model: nn.Module, drawn: set[int]) -> dict[str, Any] | None:
    """The parameters no node of the traced (eval) graph uses, by the outermost modules that hold only
    those: GoogLeNet's auxiliary classifiers, which run in training only. None when there are none."""
    outside = {id(p) for p in model.parameters()} - drawn
    if not outside:
        return None
    params = trainable = 0
    for p in model.parameters():
        if id(p) in outside:
            params += p.numel()
            trainable += p.numel() if p.requires_grad else 0
    modules: list[str] = []
    for name, module in model.named_modules():
        own = list(module.parameters())
        if not name or not own or any(name.startswith(m + ".") for m in modules):
            continue
        if all(id(p) in outside for p in own):
            modules.append(name)
    loose = [n for n, p in model.named_parameters() if id(p) in outside
             and not any(n.startswith(m + ".") for m in modules)]
    return {"params": params, "trainable_params": trainable, "modules": modules + loose,
            "note": "not used by the inference (eval-mode) graph, so not in the layers or in the totals; the "
                    "model holds them (they train, and take memory): model_params counts them"}


def _first_map_input(node: Node, fields: dict[str, FieldState], depends: dict[str, bool]) -> tuple[int, ...] | None:
    """The shape of the node's first input that carries a spatial map (else of its first input)."""
    shapes = dict(zip(node.inputs, node.input_shapes, strict=False))
    for name in node.inputs:
        state = fields.get(name)
        if depends.get(name, False) and state is not None and state.spatial and name in shapes:
            return tuple(shapes[name])
    return tuple(node.input_shapes[0]) if node.input_shapes else None


def _names(records: Sequence[LayerRecord], limit: int = 6) -> str:
    shown = ", ".join(f"{r.name} ({r.op})" for r in records[:limit])
    return shown + (f" and {len(records) - limit} more" if len(records) > limit else "")


def _unknown_totals(records: list[LayerRecord], trace: Any, fields: dict[str, FieldState],
                    depends: dict[str, bool], spatial: bool, depth: dict[str, int | None]) -> dict[str, str]:
    """Which totals cannot be given, and why: the honesty rule, in one place."""
    unknown = {}
    no_macs = [r for r in records if r.macs is None]
    if no_macs:
        unknown["macs"] = f"no counting rule for {_names(no_macs)}"
    no_flops = [r for r in records if r.flops is None]
    if no_flops:
        # A node counted operator by operator names the operators that have no rate (sorting, NMS)
        # where they are not the record's own.
        ops = {r.name: r.op for r in no_flops}
        unrated = list(dict.fromkeys(op for n in trace.nodes if n.name in ops and n.aten is not None
                                     for op in n.aten.unrated if op not in (n.name, ops[n.name])))
        unknown["flops"] = f"no FLOP rate for {_names(no_flops)}" + (f": {', '.join(unrated)}" if unrated else "")
    output = records[-1] if records else None
    if trace.method != "fx":
        unknown["weighted_depth"] = ("the graph was not traced: operators between modules are counted together, "
                                     "which hides how many weighted layers a path holds")
    elif output is not None and depth.get(output.name, 0) is None:
        unknown["weighted_depth"] = (f"no counting rule for {_names(no_macs)}, which may hold weighted layers "
                                     "on the way to the output")
    if not spatial:
        pass  # no map to have a field on (token ids, feature vectors): nothing is unknown, there is none
    elif trace.method != "fx":
        unknown["receptive_field"] = ("the graph was not traced: the forward pass was counted operator by "
                                      "operator, which does not show the branches a field follows")
    elif output is not None and fields[output.name].field is None:
        # the first nodes where the field was lost (their inputs' fields were known)
        lost = [r for r in records if r.kind not in ("input", "output") and r.rf_size is None
                and r.output_shape is not None and depends.get(r.name, False)
                and all(fields[i].field is not None for i in r.inputs if depends.get(i, False))]
        others = [r.name for r in records if r.kind == "input"][1:]
        if lost:
            unknown["receptive_field"] = f"no receptive-field rule for {_names(lost)}"
        elif others:
            unknown["receptive_field"] = (f"a field is followed from the first input only, and the output also "
                                          f"depends on {', '.join(others)}")
        else:
            unknown["receptive_field"] = "the output's receptive field could not be followed through the graph"
    return unknown


def fold(report: Report, depth: int) -> list[LayerRecord]:
    """Fold nodes into their parent modules ``depth`` levels deep, summing costs.

    A group keeps the output shape and receptive field of its last node; a shared module's
    parameters count in the group of its first use only, so the groups' parameters add up to the
    report's.
    """
    if depth < 1:
        raise CnnlabError(f"depth must be 1 or more, got {depth}")
    groups: dict[str, list[LayerRecord]] = {}
    order: list[str] = []
    for r in report.layers:
        if r.kind in ("input", "output") or not r.scope:
            key = r.name
        else:
            key = ".".join(r.scope.split(".")[:depth])
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(r)
    folded = []
    for key in order:
        members = groups[key]
        if len(members) == 1:
            folded.append(members[0])
            continue
        last = members[-1]
        # Each parameter sits on one record: a module's on its first call (later calls are marked
        # shared), one the forward fetches itself on the first node that uses it.
        held = [m for m in members if not m.shared]
        params, trainable = sum(m.params for m in held), sum(m.trainable_params for m in held)
        folded.append(LayerRecord(
            name=key, op=f"{len(members)} ops", kind="group", scope=key, inputs=members[0].inputs,
            input_shapes=members[0].input_shapes, output_shape=last.output_shape, params=params,
            trainable_params=trainable, macs=_sum(m.macs for m in members), flops=_sum(m.flops for m in members),
            activation_bytes=sum(m.activation_bytes for m in members), rf_size=last.rf_size,
            rf_stride=last.rf_stride, rf_padding=last.rf_padding, rf_covers_input=last.rf_covers_input,
            misaligned="; ".join(m.misaligned for m in members if m.misaligned) or None,
            supported=all(m.supported for m in members), weighted=any(m.weighted for m in members),
        ))
    return folded


def _sum(values: Any) -> int | None:
    """A sum that is unknown when one of its terms is."""
    total = 0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def require_memory(model: nn.Module | str, size: Sequence[int], what: str, fix: str, batch: int = 1,
                   backward: bool = False) -> None:
    """One line, before anything is allocated, when running ``model`` on ``size`` cannot fit in memory."""
    from cnnlab.analysis.memory import peak_bytes
    from cnnlab.limits import check_memory

    check_memory(peak_bytes(analyze(model, size, batch=batch), backward), what, fix)
