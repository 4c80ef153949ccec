"""Turn a model into a list of graph nodes with shapes, on the meta device.

The model is traced with ``torch.fx.symbolic_trace`` (functional operations such as
``F.relu``, ``torch.cat``, ``+``, ``x.mean`` and ``flatten`` become nodes of their own), then
interpreted on meta tensors: every parameter is replaced by a meta tensor of the same shape
through ``torch.func.functional_call``, so no real arithmetic is done and no activation
memory is allocated, whatever the input size. The user's model is never modified or copied.

A model that cannot be traced (data-dependent Python control flow, TorchScript) falls back to
counting every operator of one forward pass (:mod:`cnnlab.analysis.aten`), given to the leaf
module that ran it; the report says so, and which input the pass followed.
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.func import functional_call

from cnnlab.analysis.aten import AtenCount, counting
from cnnlab.analysis.inputs import (
    InputSpec,
    bind_inputs,
    example_call,
    example_tensors,
    parse_inputs,
)
from cnnlab.errors import first_line

__all__ = ["SHAPE_PRESERVING", "Node", "Trace", "trace_model"]

# Modules whose output has exactly their input's shape and dtype.
SHAPE_PRESERVING: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm,
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh,
    nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.Dropout, nn.Dropout2d, nn.Dropout3d,
    nn.AlphaDropout, nn.Identity,
)


@dataclass
class Node:
    """One operation of the traced graph."""

    name: str  # qualified name: module path for modules, fx node name for functions
    kind: str  # "module", "function", "method", "input", "output", "attribute"
    target: Any  # the module, function or method name
    inputs: list[str]  # names of the nodes whose tensors feed this one
    input_shapes: list[tuple[int, ...]]
    output_shapes: list[tuple[int, ...]]
    dtype: torch.dtype | None
    scope: str  # module path the node runs inside ("" at top level)
    args: tuple[Any, ...] = ()  # non-tensor arguments, as given (dims, sizes, flags)
    kwargs: dict[str, Any] = field(default_factory=dict)
    aten: AtenCount | None = None  # the operators it ran, where it ran them (not the shape-only fast paths)

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        return self.output_shapes[0] if self.output_shapes else None


@dataclass
class Trace:
    nodes: list[Node]
    method: str  # "fx" (the graph) or "operators" (one counted forward pass, when fx cannot trace)
    limitation: str | None = None


def _shapes(value: Any) -> list[tuple[int, ...]]:
    if isinstance(value, torch.Tensor):
        return [tuple(value.shape)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _shapes(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _shapes(v)]
    return []


def _first_dtype(value: Any) -> torch.dtype | None:
    if isinstance(value, torch.Tensor):
        return value.dtype
    if isinstance(value, (list, tuple)):
        for v in value:
            d = _first_dtype(v)
            if d is not None:
                return d
    return None


def _to_meta(t: torch.Tensor) -> torch.Tensor:
    return t if t.device.type == "meta" else torch.empty_like(t, device="meta")


_BINARY = {operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul, torch.add,
           torch.sub, torch.mul}


def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...] | None:
    """NumPy/PyTorch broadcasting of shapes (None where they do not broadcast)."""
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        sizes = {s[len(s) - rank + axis] for s in shapes if len(s) - rank + axis >= 0} - {1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _fast_shape(target: Any, args: Any, kwargs: Any) -> torch.Tensor | None:
    """The meta result of a few ubiquitous functions, computed from shapes alone.

    Running them on meta tensors goes through torch's Python reference kernels, whose first
    use imports the compiler stack (seconds); the shape rules here are the documented ones
    (broadcasting, concatenation, flatten). Anything unusual returns None and runs for real.
    """
    if kwargs:
        return None
    if target in _BINARY and len(args) == 2:
        a, b = args
        tensors = [t for t in (a, b) if isinstance(t, torch.Tensor)]
        if not tensors or any(not isinstance(t, (torch.Tensor, int, float)) for t in (a, b)):
            return None
        shape = _broadcast([tuple(t.shape) for t in tensors])
        if shape is None:
            return None
        dtype = torch.result_type(a, b) if all(isinstance(t, torch.Tensor) for t in (a, b)) else tensors[0].dtype
        return torch.empty(shape, dtype=dtype, device="meta")
    if target is torch.cat and len(args) in (1, 2) and isinstance(args[0], (list, tuple)):
        parts = args[0]
        dim = args[1] if len(args) == 2 else 0
        if not parts or not all(isinstance(t, torch.Tensor) for t in parts):
            return None
        rank = parts[0].dim()
        d = dim % rank
        if any(t.dim() != rank or t.dtype != parts[0].dtype or
               any(t.shape[i] != parts[0].shape[i] for i in range(rank) if i != d) for t in parts):
            return None
        shape = list(parts[0].shape)
        shape[d] = sum(t.shape[d] for t in parts)
        return torch.empty(shape, dtype=parts[0].dtype, device="meta")
    if target is torch.nn.functional.relu and len(args) == 1 and isinstance(args[0], torch.Tensor):
        return _empty(args[0].shape, args[0])
    if target is torch.flatten and len(args) in (1, 2, 3) and isinstance(args[0], torch.Tensor):
        x = args[0]
        start = (args[1] if len(args) > 1 else 0) % max(x.dim(), 1)
        end = (args[2] if len(args) > 2 else -1) % max(x.dim(), 1)
        shape = [*x.shape[:start], math.prod(x.shape[start:end + 1]), *x.shape[end + 1:]]
        return torch.empty(shape, dtype=x.dtype, device="meta")
    return None


def _empty(shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    return torch.empty(tuple(shape), dtype=like.dtype, device="meta")


def _module_shape(module: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """The meta output of the common layers, from :mod:`cnnlab.shapes` (which the tests check
    against torch on thousands of configurations) instead of torch's meta kernels.

    Several of those kernels are Python decompositions whose first use imports torch's compiler
    stack (over a second per process) and which are slow besides. A shape the arithmetic
    rejects raises ``CnnlabError`` (a ``ValueError``), as torch would raise its own error.
    """
    from cnnlab import shapes

    if isinstance(module, SHAPE_PRESERVING):
        return _empty(x.shape, x)
    nd = x.dim() - 2
    if isinstance(module, nn.modules.conv._ConvNd) and not isinstance(module, nn.modules.conv._ConvTransposeNd):
        if nd != len(module.kernel_size) or x.shape[1] != module.in_channels:
            return None  # unbatched input or a channel mismatch: torch's own error says it best
        padding = module.padding if isinstance(module.padding, str) else tuple(module.padding)
        r = shapes.conv(tuple(x.shape[1:]), module.out_channels, tuple(module.kernel_size), tuple(module.stride),
                        padding, tuple(module.dilation), module.groups, module.bias is not None, module.padding_mode)
        return _empty((x.shape[0], *r.output_shape), x)
    if isinstance(module, nn.Linear):
        if x.dim() < 1 or x.shape[-1] != module.in_features:
            return None
        return _empty((*x.shape[:-1], module.out_features), x)
    if isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)):
        kernel = module.kernel_size
        if nd < 1 or (isinstance(kernel, tuple) and len(kernel) != nd) or getattr(module, "return_indices", False):
            return None
        mode = "max" if isinstance(module, nn.modules.pooling._MaxPoolNd) else "avg"
        stride = module.stride if module.stride not in (None, (), []) else None
        dilation = getattr(module, "dilation", 1)
        r = shapes.pool(tuple(x.shape[1:]), kernel, stride, module.padding, dilation, bool(module.ceil_mode), mode)
        return _empty((x.shape[0], *r.output_shape), x)
    if isinstance(module, (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
        if isinstance(module, nn.modules.pooling._AdaptiveMaxPoolNd) and module.return_indices:
            return None
        size = module.output_size
        sizes = (size,) * nd if not isinstance(size, (tuple, list)) else tuple(size)
        if len(sizes) != nd:
            return None
        out = [x.shape[2 + i] if s is None else s for i, s in enumerate(sizes)]
        return _empty((*x.shape[:2], *out), x)
    if isinstance(module, nn.Flatten):
        return _fast_shape(torch.flatten, (x, module.start_dim, module.end_dim), {})
    return None


class _MetaInterpreter(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.records: list[Node] = []
        self.values: dict[str, Any] = {}
        self.unique: dict[str, str] = {}  # fx node name -> record name
        self.calls: dict[str, int] = {}  # how often a qualified name was used
        self.count: AtenCount | None = None  # the operators the current node ran (None: shape arithmetic only)

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        module = self.fetch_attr(target)
        if args and isinstance(args[0], torch.Tensor) and not kwargs and len(args) == 1:
            fast = _module_shape(module, args[0])
            if fast is not None:
                return fast
        state = {k: _to_meta(v) for k, v in module.named_parameters()}
        state.update({k: _to_meta(v) for k, v in module.named_buffers()})
        with counting() as self.count:
            return functional_call(module, state, args, kwargs, strict=False)

    def call_function(self, target: Any, args: Any, kwargs: Any) -> Any:
        fast = _fast_shape(target, args, kwargs)
        if fast is not None:
            return fast
        with counting() as self.count:
            return super().call_function(target, args, kwargs)

    def call_method(self, target: Any, args: Any, kwargs: Any) -> Any:
        with counting() as self.count:
            return super().call_method(target, args, kwargs)

    def get_attr(self, target: Any, args: Any, kwargs: Any) -> Any:
        value = super().get_attr(target, args, kwargs)
        return _to_meta(value) if isinstance(value, torch.Tensor) else value

    def _concrete(self, value: Any) -> Any:
        """An argument as the rules see it: a number the graph computed (a pad from the input's
        size, say) as that number, a tensor as its node's name."""
        if isinstance(value, torch.fx.Node):
            computed = self.values.get(value.name)
            return computed if isinstance(computed, (bool, int, float)) else value.name
        if isinstance(value, slice):
            return slice(self._concrete(value.start), self._concrete(value.stop), self._concrete(value.step))
        if isinstance(value, (list, tuple)):
            return type(value)(self._concrete(v) for v in value)
        return value

    def run_node(self, n: torch.fx.Node) -> Any:
        self.count = None
        result = super().run_node(n)
        self.values[n.name] = result
        tensor_inputs = [a for a in n.all_input_nodes if isinstance(self.values.get(a.name), torch.Tensor)
                         or _shapes(self.values.get(a.name))]
        stack = n.meta.get("nn_module_stack") or {}
        scope = list(stack.values())[-1][0] if stack else ""
        if n.op == "call_module":
            name, kind, target = str(n.target), "module", self.fetch_attr(n.target)
            scope = name
            # A module called more than once (a shared ReLU, say) gets one record per call.
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.calls[name] > 1:
                name = f"{name}:{self.calls[name]}"
        elif n.op == "call_function":
            name, kind, target = n.name, "function", n.target
        elif n.op == "call_method":
            name, kind, target = n.name, "method", n.target
        elif n.op == "placeholder":
            name, kind, target = n.name, "input", n.target
        elif n.op == "output":
            name, kind, target = n.name, "output", None
        else:
            name, kind, target = str(n.target), "attribute", n.target
        self.unique[n.name] = name
        self.records.append(Node(
            name=name,
            kind=kind,
            target=target,
            inputs=[self.unique[a.name] for a in tensor_inputs],
            input_shapes=[s for a in tensor_inputs for s in _shapes(self.values[a.name])[:1]],
            output_shapes=_shapes(result),
            dtype=_first_dtype(result),
            scope=scope,
            args=tuple(self._concrete(a) for a in n.args),
            kwargs={k: self._concrete(v) for k, v in n.kwargs.items()},
            aten=self.count,
        ))
        return result


def _fx_trace(model: nn.Module, specs: Sequence[InputSpec], batch: int) -> Trace:
    given, defaults = bind_inputs(model, specs)
    examples = dict(zip(given, example_tensors(list(given.values()), batch), strict=True))
    was_training = model.training
    model.eval()  # trace the inference graph (auxiliary heads and dropout branches are training-only)
    limitation = None
    try:
        # Arguments left at their default are traced as those constants, so `if mask is not None` follows them.
        gm = torch.fx.symbolic_trace(model, concrete_args=defaults or None)
    except torch.fx.proxy.TraceError as exc:
        if "control flow" not in str(exc):
            raise
        gm = _shape_trace(model, examples, defaults)
        limitation = ("the model's Python code tests its input's shapes (a divisibility check, say), so torch.fx "
                      "traced it with this input's shapes fixed: the graph holds for this input size")
    finally:
        model.train(was_training)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if any(n.target in examples for n in placeholders):
        values = [examples[n.target] if n.target in examples else defaults.get(n.target, n.args[0] if n.args else None)
                  for n in placeholders]
    else:  # forward(*inputs), or no names to match: in order, as given
        values = list(examples.values())
    interp = _MetaInterpreter(gm)
    with torch.no_grad():
        interp.run(*values)
    return Trace(interp.records, "fx", limitation)


def _shape_trace(model: nn.Module, examples: dict[str, torch.Tensor], defaults: dict[str, Any]) -> torch.fx.GraphModule:
    """torch.fx's trace with meta tensors carried beside the proxies (its MetaTracer), so that Python
    code that reads a shape (``if h % 32``, ``x.view(x.size(0), -1)``) sees numbers. What it
    builds holds for these shapes; values (``if x.sum() > 0``) still cannot be traced. It runs on a
    copy of the model whose weights are meta tensors, where every leaf module can run; the graph
    it returns calls ``model``'s own modules, whose parameters the report counts."""
    import warnings

    from torch.fx.experimental.meta_tracer import MetaProxy, MetaTracer

    class SizeProxy(MetaProxy):
        def size(self, dim: int | None = None) -> Any:  # MetaProxy reads size(0) as size(): the whole shape
            meta = getattr(self, "_tensor_meta", None)
            if meta is not None and dim is not None:
                return meta.size(dim)
            return super().size(dim)

    class Tracer(MetaTracer):
        def proxy(self, node: torch.fx.Node) -> MetaProxy:
            return SizeProxy(node, self)

    from cnnlab.models.inputs import meta_model as on_meta

    meta_model = on_meta(model)  # no TorchScript parts here: trace_model counts those by their operators
    tracer = Tracer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not compute metadata for ...": the trace fails where it matters
        graph = tracer.trace(meta_model, examples, concrete_args=defaults or None)
    # What the tracer had to name at the top (stateless modules, constants the code built) joins the copy.
    for node in graph.nodes:
        if node.op in ("get_attr", "call_module"):
            top = str(node.target).split(".")[0]
            if not hasattr(model, top):
                setattr(model, top, getattr(meta_model, top))
    return torch.fx.GraphModule(model, graph, type(model).__name__)


SEED = 0  # the sample a model whose control flow needs real values is run on: the same every time


def _hook_trace(model: nn.Module, specs: Sequence[InputSpec], batch: int, reason: str) -> Trace:
    """Every operator of one forward pass, counted (:mod:`cnnlab.analysis.aten`) and given to the leaf
    module that ran it; the operators run between leaf modules (functional convolutions, adds,
    matrix products) go to one record of their own, so nothing that runs goes uncounted.

    The pass runs on meta tensors when it can (any batch, no memory). A model whose Python code
    needs real values (``if x.sum() > 0``) gets one real pass on the CPU of a single N(0, 1)
    sample drawn with seed ``SEED`` (random weights where the model lives on the meta device),
    and its counts are multiplied by the batch; the report says which input it followed.
    """
    given, _defaults = bind_inputs(model, specs)
    names = list(given)

    try:
        with _left_as_it_was(model):
            records, out = _hooked_forward(model, *example_call(given, batch, "meta"), meta=True)
        how, caveat = "one forward pass on meta tensors", ""
    except (RuntimeError, NotImplementedError):
        real = model
        drawn = any(p.device.type == "meta" for p in model.parameters())
        if drawn:
            import copy

            real = copy.deepcopy(model).to_empty(device="cpu")
            with torch.no_grad():
                generator = torch.Generator().manual_seed(SEED)
                for p in real.parameters():
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
        with _left_as_it_was(real):
            records, out = _hooked_forward(real, *example_call(given, 1, "cpu", torch.Generator().manual_seed(SEED)),
                                          meta=False)
        for rec in records:  # shapes and counts of one sample, scaled to the requested batch
            rec.input_shapes = [(batch, *s[1:]) for s in rec.input_shapes]
            rec.output_shapes = [(batch, *s[1:]) for s in rec.output_shapes]
            if rec.aten is not None:
                rec.aten.scale(batch)
        how = (f"one real forward pass on the CPU, of an N(0, 1) sample drawn with seed {SEED}"
               f"{' and random weights (the model has none)' if drawn else ''}, its counts multiplied by the batch,")
        caveat = ("; Python control flow and any selection by value (thresholds, non-maximum suppression) "
                  "followed that sample: another input may take another branch")
    out_shapes = [(batch, *s[1:]) for s in _shapes(out)[:1]]
    heads = [Node(name, "input", name, [], [], [(batch, *spec.shape)], spec.dtype, "") for name, spec in given.items()]
    first = names[0] if names else "x"
    for rec in records:
        rec.inputs = [first if i == "x" else i for i in rec.inputs]
    last = records[-1].name if records else first
    tail = Node("output", "output", None, [last], out_shapes, out_shapes, _first_dtype(out), "")
    return Trace([*heads, *records, tail], "operators",
                 f"torch.fx could not trace the model ({reason}); every operator of {how} was counted, per leaf "
                 "module, with the operations between modules in one record; the graph's branches are not "
                 f"seen, so receptive fields are not analysed{caveat}")


def _hooked_forward(model: nn.Module, args: list[Any], kwargs: dict[str, Any], meta: bool) -> tuple[list[Node], Any]:
    records: list[Node] = []
    handles = []
    previous = ["x"]
    counter = counting()
    between = AtenCount()  # operators run outside every leaf module

    def pre_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        counter.mode.count = AtenCount()

    def hook(name: str):
        def fn(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            records.append(Node(
                name=name, kind="module", target=module, inputs=[previous[0]],
                input_shapes=_shapes(args)[:1], output_shapes=_shapes(output), dtype=_first_dtype(output),
                scope=name, aten=counter.mode.count,
            ))
            counter.mode.count = between
            previous[0] = name

        return fn

    scripted = isinstance(model, torch.jit.ScriptModule)
    if not scripted:
        for name, module in model.named_modules():
            # A TorchScript part takes no hooks: its operators count in the record between leaves.
            if name and not any(True for _ in module.children()) and not isinstance(module, torch.jit.ScriptModule):
                handles.append(module.register_forward_pre_hook(pre_hook))
                handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            counter.mode.count = between
            if meta:
                if scripted:
                    raise RuntimeError("a TorchScript module runs on real tensors")
                state = {k: _to_meta(v) for k, v in model.named_parameters()}
                state.update({k: _to_meta(v) for k, v in model.named_buffers()})
                out = functional_call(model, state, tuple(args), kwargs, strict=False)
            else:
                out = model(*args, **kwargs)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    if between.ops:
        records.append(Node(
            name="(between modules)" if not scripted else type(model).__name__, kind="function",
            target="operators between modules" if not scripted else "TorchScript forward",
            inputs=[records[-1].name if records else "x"], input_shapes=_shapes(args)[:1],
            output_shapes=_shapes(out)[:1], dtype=_first_dtype(out), scope="", aten=between,
        ))
    return records, out


def trace_model(model: nn.Module, inputs: Sequence[int] | Sequence[InputSpec], batch: int = 1) -> Trace:
    """Trace ``model`` on meta inputs: one C x H x W size, or several :class:`InputSpec` (batch left out)."""
    specs = parse_inputs(list(inputs))
    if isinstance(model, torch.jit.ScriptModule):
        return _hook_trace(model, specs, batch, "a TorchScript module has no Python code to trace")
    scripted = [name for name, m in model.named_modules() if isinstance(m, torch.jit.ScriptModule)]
    outer = [name for name in scripted if not any(name.startswith(f"{o}.") for o in scripted)]
    if outer:  # torch.fx cannot see inside them, and they do not run on its meta tensors
        return _hook_trace(model, specs, batch, f"TorchScript inside it ({', '.join(outer[:3])}) has no Python "
                                                "code to trace")
    try:
        with _left_as_it_was(model):
            return _fx_trace(model, specs, batch)
    except (torch.fx.proxy.TraceError, TypeError, NotImplementedError, NameError) as exc:  # NameError: a module
        # the forward calls that is no submodule of the model (built on the fly, or held in a plain list)
        reason = first_line(exc).split(". ")[0].rstrip(".")  # its first sentence: the rest is torch's advice
        return _hook_trace(model, specs, batch, reason[:160])


@contextlib.contextmanager
def _left_as_it_was(model: nn.Module) -> Iterator[None]:
    """Runs the block, then puts back every attribute of every module of ``model`` as it was.

    Tracing runs the model's own Python code on proxies and meta tensors, and that code may keep
    what it computed (torchvision's anchor generator stores its anchors on the device of the input
    it last saw): each attempt leaves the model as the caller gave it, for the next attempt and for
    the caller. What is put back is each module's attributes and its parameter, buffer and
    submodule tables, by identity (a shallow record: a few microseconds a module)."""
    tables = ("_parameters", "_buffers", "_modules")
    saved = [(m, dict(m.__dict__), [dict(getattr(m, t)) for t in tables]) for m in model.modules()
             if not isinstance(m, torch.jit.ScriptModule)]  # compiled code keeps nothing in Python attributes
    try:
        yield
    finally:
        for m, attrs, contents in saved:
            if any(m.__dict__.get(k, _GONE) is not v for k, v in attrs.items()) or len(m.__dict__) != len(attrs):
                m.__dict__.clear()
                m.__dict__.update(attrs)
            for t, content in zip(tables, contents, strict=True):
                table = getattr(m, t)
                if table.keys() != content.keys() or any(table[k] is not v for k, v in content.items()):
                    table.clear()
                    table.update(content)


_GONE = object()  # an attribute the block removed


# Operations that only re-label memory: no arithmetic, no new activation.
VIEW_OPS = {
    "view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose", "contiguous",
    "size", "dim", "type_as", "to", "float", "chunk", "split", "expand", "t",
}
