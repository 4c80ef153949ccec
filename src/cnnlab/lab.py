"""The questions cnnlab answers: one function each, plain arguments in, one JSON-ready document out.

The commands and the explorer are two adapters over these functions: ``cnnlab inspect --json``
and ``GET /api/analyze`` print the document of :meth:`Lab.analyze`, and so on down
:data:`QUERIES`, which also is the explorer's endpoint table. Arguments arrive parsed from the
command line or as strings from the browser; every query reads both.

A :class:`Lab` answers under one of two scopes:

- ``local`` (the commands): a network is any form :func:`cnnlab.sources.resolve` accepts
  (zoo name, ``file.py:Name``, checkpoint file, run folder); sizes are whatever memory allows;
- ``explorer`` (``cnnlab serve``): a network is a zoo name or the name of a run folder directly
  inside the runs folder (a ``file.py:Name`` would run code, and no other path is ever opened);
  input sizes, uploads and the number of compared models are bounded by :data:`LIMITS`; model
  work runs under one lock so that concurrent requests never interleave inside torch's global
  state. Work with real tensors (the effective field, inside a network) is costed before it
  runs, from the analyzer's own numbers (MACs, activation bytes, samples) and this machine's
  measured speed: what cannot fit the memory budget, or would run past the deadline, is
  refused with :class:`TooCostly` naming the largest input or sample count that fits; samples
  run in chunks that fit; work that still runs past its deadline stops with :class:`TimedOut`.

Finished analyses are cached under the network's identity (a checkpoint's by its modification
time), and the explorer's finished answers under their question, in caches bounded in bytes, so
repeating a question costs nothing. Bad input raises :class:`~cnnlab.errors.CnnlabError` with
one line that names the cause and the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.console import json_text
from cnnlab.errors import CnnlabError
from cnnlab.limits import human_bytes
from cnnlab.shapes import fmt_shape, parse_shape

if TYPE_CHECKING:
    from cnnlab.analysis.records import Report
    from cnnlab.shapes import LayerResult
    from cnnlab.sources import Source

__all__ = ["DEFAULT_DEADLINE_S", "HEAVY", "LIMITS", "QUERIES", "Busy", "Lab", "Param", "Query", "TimedOut",
           "TooCostly", "decode_image", "default_memory_budget", "layer_document"]

LIMITS = {
    "analysis_side": 1024,  # largest H or W the architecture view analyses
    "analysis_channels": 64,
    "model_side": 256,  # largest H or W for real forward/backward passes (receptive field, inside)
    "filters_side": 64,  # largest H or W of the input in the filters view (every value is sent)
    "upload_bytes": 5 * 1024 * 1024,
    "upload_pixels": 40_000_000,
    "compare_models": 12,
    "erf_samples": 32,
    "top_k": 20,
    "feature_maps": 8,  # channels shown per layer
    "stack_layers": 64,  # layers in one calculator stack
    "stack_side": 1_000_000,  # the calculator is pure arithmetic: any realistic size
}
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
OPTIMIZERS = ("sgd", "sgd-nomomentum", "adam", "adamw", "none")

HEAVY = ("analyze", "compare", "rf", "inside")  # queries that trace or run a network: costed, queued, cached
DEFAULT_DEADLINE_S = 30.0
# Forward-pass equivalents of each kind of work, for the time estimate: the effective field runs a
# forward and a backward pass to the input; inside runs one pass to find the convolutions that run,
# one for the feature maps, one for the prediction, and Grad-CAM's forward (with its layer search)
# and backward.
_PASSES = {"rf": 3.0, "inside": 7.0}
_DECODE_BYTES_PER_PIXEL = 16  # an upload as RGB bytes, as floats, and resized (inside)


class TooCostly(CnnlabError):
    """A request the memory budget or the deadline cannot hold; the message says what fits (HTTP 413)."""

    status = 413


class TimedOut(CnnlabError):
    """Work that ran past its deadline and was stopped (HTTP 504)."""

    status = 504


class Busy(CnnlabError):
    """Too much work waits already (HTTP 503): ask again after ``retry_after`` seconds."""

    status = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def default_memory_budget() -> int:
    """The explorer's default memory budget: half the memory this machine has available now (at
    least 512 MiB)."""
    from cnnlab.limits import available_memory_bytes

    return max(512 * 2**20, available_memory_bytes() // 2)


@dataclass(frozen=True)
class Param:
    name: str
    help: str


@dataclass(frozen=True)
class Query:
    """One question: the method of the same name on :class:`Lab` answers it.

    ``method`` says how the explorer takes the arguments: GET in the query string, POST as a
    JSON object, FORM as multipart form fields with an optional ``image`` file. ``path`` is the
    explorer's address (``/api/NAME`` unless said); a ``<param>`` in it is taken from the path.
    ``command`` is the command whose ``--json`` prints the same document, if one does.
    """

    name: str
    method: str
    summary: str
    params: tuple[Param, ...]
    command: str | None = None
    path: str | None = None
    formats: tuple[str, ...] = ()  # other renderings offered as a download: format=csv|md
    example: str = ""  # a body the explorer's error messages show (POST)

    @property
    def route(self) -> str:
        return self.path or f"/api/{self.name}"

    @property
    def usage(self) -> str:
        """``GET /api/analyze?model=&run=&...`` as the endpoint list shows it."""
        names = [p.name for p in self.params if f"<{p.name}>" not in self.route]
        if self.formats:
            names.append("format")
        if self.method == "GET" and names:
            return f"GET {self.route}?" + "&".join(f"{n}=" for n in names)
        return f"{'GET' if self.method == 'GET' else 'POST'} {self.route}"


_MODEL = Param("model", "a zoo model's name (see models)")
_RUN = Param("run", "a run's name: its trained checkpoint (see runs)")
_INPUT = Param("input", "input size CxHxW, e.g. 3x224x224 (default: the network's own)")

QUERIES: tuple[Query, ...] = (
    Query("models", "GET", "the model zoo: name, family, paper, default and smallest input", ()),
    Query("analyze", "GET", "the analyzer's report: every node's shape, parameters, MACs, FLOPs, memory, receptive "
          "field and formulas", (_MODEL, _RUN, _INPUT, Param("batch", "batch size (default 1)"),
                                 Param("optimizer", f"optimizer state in the memory estimate: {', '.join(OPTIMIZERS)}"),
                                 Param("depth", "fold nodes into modules this many levels deep")),
          command="cnnlab inspect --json", formats=("csv", "md")),
    Query("compare", "GET", "several networks side by side: parameters, MACs, depth, receptive field, memory",
          (Param("models", "names separated by commas"), Param("input", "one input CxHxW for all (default: each "
                                                                           "network's own)"),
           Param("batch", "batch size (default 1)")), command="cnnlab compare --json"),
    Query("layer", "GET", "one layer of the calculator: output size, parameters, MACs and receptive field step, "
          "every formula with its numbers", (Param("input", "input shape CxHxW"),
                                             Param("layer", "one layer in the stack grammar, e.g. 'conv 96 k11 s4'")),
          command="cnnlab calc conv|pool --json"),
    Query("stack", "POST", "the layer calculator: a chain of layers, every output shape, parameter count, MACs "
          "and receptive field with its formulas", (Param("input", "input shape CxHxW"),
                                                    Param("layers", "layers in the stack grammar, a list")),
          command="cnnlab calc stack --json", example='{"input": "3x32x32", "layers": ["conv 64 k3 p1"]}'),
    Query("conv", "POST", "a convolution step by step: every kernel placement as an inner product",
          (Param("input", "rows like '1,2;3,4'"), Param("kernel", "rows like '1,0;0,1'"), Param("stride", "1 or rows,cols"),
           Param("padding", "0 or rows,cols"), Param("dilation", "1 or rows,cols"), Param("bias", "a number")),
          command="cnnlab scratch explain --json", example='{"input": "1,2;3,4", "kernel": "1,0;0,1"}'),
    Query("pool", "POST", "pooling of a small grid window by window: max, average or min (or all three), PyTorch's "
          "rules", (Param("values", "rows like '1,3;5,6'"), Param("kernel", "window size: one number or rows,cols"),
                    Param("stride", "default: the kernel"), Param("padding", "0 or rows,cols"),
                    Param("dilation", "1 or rows,cols (max and min)"), Param("mode", "max, avg, min or all"),
                    Param("input", "optional shape 1xHxW; it must be the grid's")),
          command="cnnlab calc pool --values --json", example='{"values": "1,3;5,6", "kernel": 2, "mode": "all"}'),
    Query("rf", "GET", "a layer's theoretical receptive field and its measured effective field",
          (_MODEL, _RUN, _INPUT, Param("layer", "a convolution or pooling node (default: the deepest that fits)"),
           Param("samples", f"random inputs averaged (1 to {LIMITS['erf_samples']}, default 8)"))),
    Query("inside", "FORM", "top-k prediction, feature maps and Grad-CAM of one image (the file field image, "
          "optional: a bundled test image for MNIST-like runs, else a sample photo)", (_MODEL, _RUN, Param("top", f"classes shown (1 to {LIMITS['top_k']})"),
                                        Param("layers", "feature-map layers separated by commas"))),
    Query("filters", "GET", "one convolution of a network on one image: the input channels, a filter's weights and "
          "bias, its output as a sum over channels, and the normalisation, activation and pooling after it",
          (_MODEL, _RUN, Param("layer", "a convolution (default: the first that reads more than one channel)"),
           Param("filter", "the filter shown in detail (default 0)"),
           Param("image", "a bundled test image for a run on MNIST-like data, e.g. mnist-3 (default: its first; "
                          "anything else sees the sample photo)"))),
    Query("runs", "GET", "the runs folder: one summary per run, newest first", (), command="cnnlab runs --json"),
    Query("run", "GET", "one run: config, epoch metrics (read live while it trains) and result",
          (Param("name", "the run's folder name"),), command="cnnlab runs NAME --json", path="/api/runs/<name>"),
)


class _Lru:
    """A small thread-safe least-recently-used cache, bounded in entries and (given sizes) in bytes."""

    def __init__(self, size: int, max_bytes: int | None = None) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._data: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key][0]
        return None

    def put(self, key: Any, value: Any, nbytes: int = 0) -> Any:
        """Keep ``value`` (of about ``nbytes``); one larger than the whole cache is returned, not kept."""
        with self._lock:
            if key in self._data:
                self.nbytes -= self._data.pop(key)[1]
            if self.max_bytes is None or nbytes <= self.max_bytes:
                self._data[key] = (value, nbytes)
                self.nbytes += nbytes
            self._trim(self.max_bytes)
        return value

    def trim(self, max_bytes: int) -> None:
        """Drop the least recently used entries until the rest take at most ``max_bytes``."""
        with self._lock:
            self._trim(max_bytes)

    def _trim(self, max_bytes: int | None) -> None:
        while self._data and (len(self._data) > self.size or (max_bytes is not None and self.nbytes > max_bytes)):
            self.nbytes -= self._data.popitem(last=False)[1][1]


class _Speed:
    """Multiply-accumulates a second of this machine's forward passes: measured once on a convolution,
    then followed from the work the explorer runs, so the time estimates track the machine."""

    def __init__(self) -> None:
        self._rate: float | None = None
        self._lock = threading.Lock()

    def rate(self) -> float:
        with self._lock:
            if self._rate is None:
                self._rate = _measure_rate()
            return self._rate

    def observe(self, macs: float, seconds: float) -> None:
        if macs < 5e8 or seconds < 0.05:  # small work measures the overhead, not the speed
            return
        with self._lock:
            seen = macs / seconds
            self._rate = seen if self._rate is None else 0.5 * self._rate + 0.5 * seen


def _measure_rate() -> float:
    """MACs a second of a 3x3 convolution of 64 channels on 56x56 maps (batch 2): 0.23 G per pass."""
    import torch

    with torch.random.fork_rng():  # the global generator is left as it was
        conv = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False)
        x = torch.randn(2, 64, 56, 56)
    macs = 2 * 64 * 56 * 56 * 64 * 9
    best = math.inf
    with torch.no_grad():
        conv(x)  # the first call pays for the kernel choice
        for _ in range(3):
            start = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - start)
    return macs / max(best, 1e-6)


def _int(value: Any, name: str, low: int, high: int, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise CnnlabError(f"{name} is missing: give a whole number from {low} to {high:,}")
        return default
    if isinstance(value, bool):
        raise CnnlabError(f"{name} must be a whole number from {low} to {high:,}, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise CnnlabError(f"{name} must be a whole number from {low} to {high:,}, got {value!r}") from None
    if not low <= number <= high:
        raise CnnlabError(f"{name} must be from {low} to {high:,}, got {number}")
    return number


def _pair(value: Any, name: str, low: int, high: int) -> tuple[int, int]:
    """One number or two (rows, columns): 1, "1", [1, 2], (1, 2) or "1,2"."""
    if isinstance(value, str) and "," in value:
        value = [v for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise CnnlabError(f"{name} must be one whole number or two (rows, columns), got {value!r}")
        return _int(value[0], name, low, high), _int(value[1], name, low, high)
    number = _int(value, name, low, high)
    return number, number


def _shape(value: Any, what: str = "input") -> tuple[int, ...] | None:
    """'3x64x64' or (3, 64, 64) -> (3, 64, 64); None when not given."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return parse_shape(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise CnnlabError(f"{what} must be a shape like 3x224x224, got {value!r}")


def _names(value: Any, what: str, example: str) -> list[str]:
    """'a,b' or ['a', 'b'] -> ['a', 'b']; empty items dropped."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(x, str) for x in items):
        raise CnnlabError(f"{what} must be names separated by commas, e.g. {example}")
    return [x.strip() for x in items if x.strip()]


class Lab:
    """The queries of :data:`QUERIES`, answered in one scope (``local`` or ``explorer``) over one runs folder.

    In the explorer scope ``memory_budget`` (bytes; default :func:`default_memory_budget`) bounds
    what the work holds at once: an eighth for finished answers, an eighth for analyses, the rest
    for the models kept and the one computation running. ``deadline_s`` (default
    :data:`DEFAULT_DEADLINE_S`) is how long one request's work may take.
    """

    def __init__(self, runs_dir: str | Path = "runs", scope: str = "local", memory_budget: int | None = None,
                 deadline_s: float | None = None) -> None:
        if scope not in ("local", "explorer"):
            raise ValueError(f"scope must be local or explorer, got {scope!r}")
        self.scope = scope
        self.runs_dir = Path(runs_dir).resolve()
        self.lock = threading.RLock()  # model work: one request at a time inside torch
        bounded = scope == "explorer"
        self.memory_budget = (memory_budget or default_memory_budget()) if bounded else None
        self.deadline_s = (deadline_s or DEFAULT_DEADLINE_S) if bounded else None
        share = self.memory_budget // 8 if self.memory_budget else None
        self._reports = _Lru(48, share)
        self._documents = _Lru(256, share)  # the explorer's finished answers, encoded
        self._models = _Lru(4, self.work_budget)  # sources and models with weights, trimmed to make room for work
        self._speed = _Speed()
        self._local = threading.local()  # the deadline of the work running on this thread

    @property
    def bounded(self) -> bool:
        return self.scope == "explorer"

    @property
    def work_budget(self) -> int | None:
        """Bytes for the models kept and the computation running (the budget less the caches' shares)."""
        return None if self.memory_budget is None else self.memory_budget - 2 * (self.memory_budget // 8)

    def shown(self, text: str) -> str:
        """``text`` with the runs folder's absolute path cut to its name (the explorer shows no absolute path)."""
        if not self.bounded:
            return text
        root = str(self.runs_dir)
        return text.replace(root + "/", "").replace(root, self.runs_dir.name)

    # -- deadlines ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def deadline(self, at: float | None) -> Iterator[None]:
        """Work on this thread inside the block stops with :class:`TimedOut` once ``time.monotonic()``
        passes ``at`` (checked between its steps)."""
        before = getattr(self._local, "at", None)
        self._local.at = at
        try:
            yield
        finally:
            self._local.at = before

    def in_time(self, what: str) -> None:
        """Raise :class:`TimedOut` if the work on this thread has run past its deadline."""
        at = getattr(self._local, "at", None)
        if at is not None and time.monotonic() > at:
            raise TimedOut(f"{what} ran past the {self.deadline_s or 0:g} s deadline and was stopped: ask for "
                           "less (a smaller input, fewer samples), or start cnnlab serve with a longer --deadline")

    # -- costs ----------------------------------------------------------------------------------------

    def _fit(self, what: str, report: Report, source: Source, size: tuple[int, ...], samples: int, kind: str,
             extra: int = 0) -> tuple[int, int]:
        """(how many samples of ``kind`` work (rf, inside) to run at once at ``size``, the bytes that holds),
        from its analysis ``report``; :class:`TooCostly` when one sample cannot fit the memory budget, or
        all of them would run past the deadline, naming what fits both. ``extra``: bytes held besides the
        pass (a decoded upload)."""
        from cnnlab.analysis.memory import pass_bytes

        if self.work_budget is None:
            return samples, 0
        fixed, per = pass_bytes(report, backward=True)
        fixed += extra + (source.checkpoint.stat().st_size if source.checkpoint is not None else 0)
        room = self.work_budget
        seconds = _PASSES[kind] * self._macs(report) * samples / self._speed.rate()
        deadline = self.deadline_s or math.inf
        # Both costs grow with the pixels: the share of them that fits, for one sample's memory and all
        # samples' time.
        memory_share = (room - fixed) / per if per else math.inf
        time_share = deadline / seconds if seconds else math.inf
        resizable = kind == "rf"
        fits = self._largest_input(source, size, min(memory_share, time_share)) if resizable else None
        instead = (f"the largest input that fits is about {fits}" + (f" with {samples} samples" if samples > 1 else "")
                   if fits else "it does not fit even at the smallest input" if resizable
                   else "choose a smaller network")
        if memory_share < 1:
            raise TooCostly(
                f"{what} needs about {human_bytes(fixed + per)} of memory{' for one sample' if samples > 1 else ''}, "
                f"more than the {human_bytes(room)} the server's memory budget leaves for work: {instead} "
                "(cnnlab serve --memory-budget sets the budget)")
        if time_share < 1:
            n = int(samples * time_share)
            if n >= 1:
                instead = (f"at most {n} sample{'s fit' if n > 1 else ' fits'} at {fmt_shape(size)}"
                           + (f", or {instead.removeprefix('the largest input that fits is ')}" if fits else ""))
            raise TooCostly(f"{what} would take about {seconds:.0f} s here, more than the {deadline:g} s "
                            f"deadline: {instead} (cnnlab serve --deadline sets the deadline)")
        chunk = max(1, min(samples, int((room - fixed) // per) if per else samples))
        return chunk, fixed + chunk * per

    @staticmethod
    def _macs(report: Report) -> int:
        return report.macs if report.macs is not None else sum(r.macs or 0 for r in report.layers)

    def _largest_input(self, source: Source, size: tuple[int, ...], ratio: float) -> str | None:
        """About the largest input like ``size`` whose cost is ``ratio`` times its cost (costs grow with the
        pixels), in steps of 8 pixels; None below the network's smallest input."""
        from cnnlab.models.registry import list_models, model_info

        c, h, w = size
        scale = math.sqrt(max(ratio, 0.0))
        nh, nw = int(h * scale), int(w * scale)
        nh, nw = (nh // 8 * 8 or nh), (nw // 8 * 8 or nw)
        smallest = model_info(source.name).min_input if source.name in list_models() else 1
        if min(nh, nw) < max(smallest, 1):
            return None
        return f"{c}x{nh}x{nw}"

    def _make_room(self, nbytes: int) -> None:
        """Let go of kept models until the work about to run (``nbytes``) fits beside the rest."""
        if self.work_budget is not None:
            self._models.trim(max(self.work_budget - nbytes, 0))

    # -- which network ----------------------------------------------------------------------------

    def run_dir(self, name: str) -> Path:
        """The run folder ``name``: a folder inside the runs folder, or ``EXPERIMENT/RUN`` inside an experiment's
        folder there (locally, also any folder path)."""
        from cnnlab.experiments import EXPERIMENT_FILE
        from cnnlab.runs import RUN_NAME

        text = str(name)
        parts = text.split("/")
        grouped = len(parts) == 2 and all(RUN_NAME.match(p) for p in parts) \
            and (self.runs_dir / parts[0] / EXPERIMENT_FILE).is_file()
        if not grouped and not self.bounded and ("/" in text or text in (".", "..")) and Path(text).is_dir():
            return Path(text)
        if not grouped and not RUN_NAME.match(text):
            raise CnnlabError(f"run {text!r} is not a run name: give the name of a folder inside the runs folder "
                              "(letters, digits, '.', '_', '-'), or EXPERIMENT/RUN for an experiment's run; no other "
                              "paths")
        path = (self.runs_dir / text).resolve()
        home = self.runs_dir / parts[0] if grouped else self.runs_dir
        if path.parent != home or (grouped and home.resolve() != home):
            raise CnnlabError(f"run {text!r} points outside the runs folder {self.runs_dir}: only runs inside it "
                              "can be opened")
        if not path.is_dir():
            raise CnnlabError(f"no run {text!r} in {self.runs_dir}: pick one from the runs list")
        return path

    def source(self, model: str | None = None, run: str | None = None, *, command: str = "this query",
               accept: tuple[str, ...] | None = None, **options: Any) -> Source:
        """The network ``model`` (a zoo name; locally any form) or ``run`` (a run's checkpoint) names.

        ``options`` are :func:`cnnlab.sources.resolve`'s architecture options (``num_classes``,
        ``in_channels``, ``weights``, ``options``). A run's source is kept while its checkpoint
        file is unchanged, so a run that is still training shows its newest weights.
        """
        from cnnlab.runs import RunDir
        from cnnlab.sources import KINDS, resolve

        if model and run:
            raise CnnlabError("give either model=NAME (a zoo model) or run=NAME (a run's checkpoint), not both")
        if not model and not run:
            raise CnnlabError("no model: give model=NAME (a zoo model, see /api/models) or run=NAME (a run's "
                              "checkpoint, see /api/runs)" if self.bounded else
                              "no model: give a zoo name, path/to/file.py:Name, a checkpoint or a run folder")
        if run:
            folder = RunDir(self.run_dir(run))
            path = folder.checkpoint()
            if path is None:
                if any((folder.path / name).is_symlink() for name in ("best.pt", "last.pt", "previous.pt")):
                    folder.weights()  # one line naming the link that leads out of the run
                raise CnnlabError(f"run {run!r} has no checkpoint yet (best.pt or last.pt): wait for its first "
                                  "epoch")
            stat = path.stat()
            key = ("source", str(path), stat.st_mtime_ns)
            cached = self._models.get(key)
            if cached is not None:
                return cached
            if self.work_budget is not None and stat.st_size > self.work_budget:
                raise TooCostly(f"run {run!r}'s checkpoint is {human_bytes(stat.st_size)}, more than the "
                                f"{human_bytes(self.work_budget)} the server's memory budget leaves for work: start "
                                "cnnlab serve with a larger --memory-budget")
            self._make_room(stat.st_size)
            return self._models.put(key, resolve(str(folder.path), ("run",)), stat.st_size)
        if self.bounded:
            from cnnlab.models.registry import list_models, unknown_model

            if model not in list_models():
                raise unknown_model(str(model))
            return resolve(str(model), ("zoo",))
        return resolve(str(model), accept or KINDS, command=command, **options)

    @staticmethod
    def _identity(source: Source) -> tuple[Any, ...]:
        """What makes two sources the same network for the caches."""
        stamp = source.checkpoint.stat().st_mtime_ns if source.checkpoint is not None else None
        return (source.kind, source.name, json.dumps(source.kwargs, sort_keys=True, default=str),
                str(source.checkpoint), stamp, str(source.weights))

    def _inputs(self, given: Any, source: Source) -> tuple[Any, ...] | None:
        """What the network is fed: a size, or inputs in the grammar of :mod:`cnnlab.analysis.inputs`
        (several, by name, of any dtype) where the scope is local; the explorer analyses one image."""
        from cnnlab.analysis.inputs import parse_inputs

        if self.bounded or given is None or (isinstance(given, str) and not given.strip()):
            return self._size(given, source, LIMITS["analysis_side"])
        if isinstance(given, (list, tuple)) and all(isinstance(v, int) for v in given):
            return tuple(given)
        return tuple(parse_inputs(given))

    def _size(self, given: Any, source: Source, side: int) -> tuple[int, ...] | None:
        """The input size asked for, else the source's own; bounded in the explorer."""
        size = _shape(given) or source.default_input
        if size is None or not self.bounded:
            return size
        if len(size) != 3:
            raise CnnlabError(f"input must be CxHxW, e.g. 3x224x224, got {fmt_shape(size)}")
        c, h, w = size
        if c > LIMITS["analysis_channels"] or max(h, w) > side:
            raise CnnlabError(
                f"input {c}x{h}x{w} is too large for the explorer: at most {LIMITS['analysis_channels']} channels "
                f"and {side} pixels a side (`cnnlab inspect` takes any size)")
        return size

    # -- architecture ------------------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        from cnnlab.models.registry import list_models, model_info

        keep = ("name", "family", "paper", "default_input", "min_input", "description", "torchvision")
        return {"models": [{k: v for k, v in model_info(n).to_dict().items() if k in keep} for n in list_models()]}

    def _entry(self, source: Source, input: Any, batch: Any, optimizer: Any, measure: bool) -> dict[str, Any]:
        """The cache entry of one analysis: the report, and its JSON once it has been encoded."""
        from cnnlab.analysis import analyze

        size = self._inputs(input, source)
        n = _int(batch, "batch", 1, 2**20, default=1)
        opt = optimizer or "sgd"
        if opt not in OPTIMIZERS:
            raise CnnlabError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {opt!r}")
        if measure and self.bounded:
            raise CnnlabError("the explorer does not run training steps: use `cnnlab inspect --measure`")
        key = (self._identity(source), size, n, opt)
        cached = None if measure or source.kind == "code" else self._reports.get(key)
        if cached is not None:
            return cached
        self.in_time(f"the analysis of {source.label}")
        with self.lock:
            report = analyze(source.name, size, batch=n, optimizer=opt, measure=measure, **source.kwargs)
        report.model = source.label
        entry = {"report": report}
        # About 2 KB a node (records, shapes, formulas): ResNet-1202's 4,212 nodes take 6.8 MB.
        return entry if measure else self._reports.put(key, entry, 2048 * len(report.layers))

    def report(self, model: str | None = None, run: str | None = None, input: Any = None, batch: Any = None,
               optimizer: str | None = None, measure: bool = False, **options: Any) -> Report:
        """The analyzer's :class:`~cnnlab.analysis.records.Report` (cached per network, size, batch and optimizer)."""
        source = self.source(model, run, command="cnnlab inspect", **options)
        return self._entry(source, input, batch, optimizer, measure)["report"]

    def analyze(self, model: str | None = None, run: str | None = None, input: Any = None, batch: Any = None,
                optimizer: str | None = None, depth: Any = None, measure: bool = False,
                **options: Any) -> dict[str, Any]:
        """Every node's shape, parameters, MACs, FLOPs, memory and receptive field, with formulas.

        ``depth`` folds the nodes into their modules that many levels deep.
        """
        from cnnlab.analysis import fold

        depth = None if depth in (None, "") else _int(depth, "depth", 1, 64)  # checked before the work
        report = self.report(model, run, input, batch, optimizer, measure, **options)
        doc = report.to_dict(explain=True)
        if depth is not None:
            doc["layers"] = [r.to_dict(True) for r in fold(report, depth)]
        return doc

    def analyze_table(self, form: str, depth: Any = None, **question: Any) -> tuple[str, Report]:
        """The analysis as a ``csv`` or ``md`` (Markdown) table, and its report."""
        from dataclasses import replace

        from cnnlab.analysis import fold
        from cnnlab.analysis.render import report_markdown

        if form not in ("csv", "md"):
            raise CnnlabError(f"format must be json, csv or md, got {form!r}")
        report = self.report(**question)
        layers = report.layers if depth in (None, "") else fold(report, _int(depth, "depth", 1, 64))
        text = replace(report, layers=list(layers)).to_csv() if form == "csv" else report_markdown(report, layers)
        return text, report

    def encoded(self, query: str, **args: Any) -> bytes:
        """A query's document as compact JSON (no NaN or infinity: see :func:`cnnlab.console.json_text`);
        the explorer's answers to :data:`HEAVY` queries are kept (see :meth:`cached`)."""
        key = self.document_key(query, args)
        if key is not None:
            hit = self._documents.get(key)
            if hit is not None:
                return hit
        data = json_text(getattr(self, query)(**args)).encode()
        return data if key is None else self._documents.put(key, data, len(data))

    def cached(self, query: str, **args: Any) -> bytes | None:
        """The kept answer to a :data:`HEAVY` query, without any work; None when there is none yet."""
        key = self.document_key(query, args)
        return None if key is None else self._documents.get(key)

    def document_key(self, query: str, args: dict[str, Any]) -> tuple[Any, ...] | None:
        """What identifies the explorer's answer to a :data:`HEAVY` query: the network (a run's checkpoint by
        its modification time) and the arguments read as the query reads them. None outside the explorer,
        for other queries, and for arguments the query itself will refuse (it then says why)."""
        if not self.bounded or query not in HEAVY:
            return None
        get = args.get
        try:
            if query == "compare":
                names = tuple(dict.fromkeys(_names(get("models") or [], "models", "a,b")))
                return query, names, _shape(get("input")), _int(get("batch"), "batch", 1, 2**20, default=1)
            network = self._network_key(get("model"), get("run"))
            if network is None:
                return None
            if query == "analyze":
                depth = None if get("depth") in (None, "") else _int(get("depth"), "depth", 1, 64)
                return (query, network, _shape(get("input")), _int(get("batch"), "batch", 1, 2**20, default=1),
                        get("optimizer") or "sgd", depth)
            if query == "rf":
                return (query, network, _shape(get("input")), get("layer") or None,
                        _int(get("samples"), "samples", 1, LIMITS["erf_samples"], default=8))
            image = get("image")
            return (query, network, _int(get("top"), "top", 1, LIMITS["top_k"], default=5),
                    tuple(_names(get("layers") or [], "layers", "conv1,layer1")),
                    None if image is None else hashlib.sha256(image).hexdigest())
        except (CnnlabError, OSError, TypeError):
            return None

    def _network_key(self, model: Any, run: Any) -> tuple[Any, ...] | None:
        """A zoo model by name, a run by its checkpoint file and that file's modification time."""
        from cnnlab.runs import RunDir

        if bool(model) == bool(run) or not isinstance(model or run, str):
            return None
        if model:
            return ("model", model)
        path = RunDir(self.run_dir(run)).checkpoint()
        return None if path is None else ("run", str(path), path.stat().st_mtime_ns)

    def compare(self, models: Any = None, input: Any = None, batch: Any = None) -> dict[str, Any]:
        """Several networks side by side, each at ``input`` (default: its own input)."""
        from cnnlab.analysis.render import compare_document

        names = _names(models or [], "models", "resnet18,vgg11")
        if not names:
            raise CnnlabError("models is missing: give zoo model names separated by commas, e.g. resnet18,vgg11")
        if self.bounded and len(names) > LIMITS["compare_models"]:
            raise CnnlabError(f"{len(names)} models is too many to compare at once: at most {LIMITS['compare_models']}")
        sources = [self.source(n, command="cnnlab compare") for n in dict.fromkeys(names)]
        size = _shape(input)
        n = _int(batch, "batch", 1, 2**20, default=1)
        reports = []
        for source in sources:
            self.in_time("the comparison")
            reports.append(self._entry(source, size, n, None, False)["report"])
        return compare_document(reports, size, n)

    # -- layer calculator -----------------------------------------------------------------------------

    def layer(self, input: Any = None, layer: Any = None) -> dict[str, Any]:
        """One layer written in the stack grammar, with the counting conventions."""
        from cnnlab.shapes import parse_layer

        shape = self._calc_input(input)
        if not isinstance(layer, str) or not layer.strip():
            raise CnnlabError("layer is missing: give one layer in the stack grammar, e.g. 'conv 96 k11 s4'")
        return layer_document(parse_layer(layer, shape))

    def stack(self, input: Any = None, layers: Any = None) -> dict[str, Any]:
        """:func:`cnnlab.shapes.stack`: a chain of layers in the calculator's grammar, every formula explained."""
        from cnnlab.shapes import stack

        layers = layers if layers is not None else []
        if isinstance(layers, str):
            layers = layers.splitlines()
        if not isinstance(layers, (list, tuple)) or not all(isinstance(x, str) for x in layers):
            raise CnnlabError('layers must be a list of strings like "conv 64 k3 p1" (or one per line)')
        layers = [x.strip() for x in layers if x.strip() and not x.strip().startswith("#")]
        if not layers:
            raise CnnlabError('layers is empty: write one layer per line, e.g. "conv 64 k3 p1"')
        if self.bounded and (len(layers) > LIMITS["stack_layers"] or any(len(x) > 200 for x in layers)):
            raise CnnlabError(f"at most {LIMITS['stack_layers']} layers of up to 200 characters each")
        return stack(self._calc_input(input), layers).to_dict()

    def _calc_input(self, given: Any) -> tuple[int, ...]:
        shape = _shape(given)
        if shape is None:
            raise CnnlabError("input is missing: give the input shape as CxHxW, e.g. 3x32x32")
        if self.bounded and (len(shape) > 4 or max(shape) > LIMITS["stack_side"]):
            raise CnnlabError(f"input {fmt_shape(shape)} is out of range: CxL, CxHxW or CxDxHxW with sizes up to "
                              f"{LIMITS['stack_side']:,}")
        return shape

    # -- convolution stepper ----------------------------------------------------------------------------

    def conv(self, input: Any = None, kernel: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
             bias: Any = 0) -> dict[str, Any]:
        """Every placement of a small kernel over a small input, as inner products."""
        from cnnlab.scratch.explain import explain_convolution

        for name, grid in (("input", input), ("kernel", kernel)):
            if grid is not None and not isinstance(grid, (str, list)):
                raise CnnlabError(f"{name} must be rows like '1,2,3;4,5,6' or a list of lists of numbers")
        if isinstance(bias, bool) or not isinstance(bias, (int, float, str)):
            raise CnnlabError(f"bias must be a number, got {bias!r}")
        if isinstance(bias, float) and bias.is_integer():
            bias = int(bias)
        return explain_convolution(
            input, kernel,
            stride=_pair(stride, "stride", 1, 32),
            padding=_pair(padding, "padding", 0, 16),
            dilation=_pair(dilation, "dilation", 1, 16),
            bias=bias if bias != "" else 0,
        ).to_dict()

    def pool(self, values: Any = None, kernel: Any = None, stride: Any = None, padding: Any = 0, dilation: Any = 1,
             mode: Any = "max", input: Any = None) -> dict[str, Any]:
        """Max, average or min pooling of a small grid, window by window (``mode`` "all": the three)."""
        from cnnlab.scratch.explain import explain_pooling

        if values is None or (isinstance(values, str) and not values.strip()):
            raise CnnlabError("values are missing: give the grid to pool as rows like '1,3,2,4;5,6,1,2'")
        if not isinstance(values, (str, list)):
            raise CnnlabError("values must be rows like '1,2,3;4,5,6' or a list of lists of numbers")
        if not isinstance(mode, str):
            raise CnnlabError(f"mode must be max, avg, min or all, got {mode!r}")
        return explain_pooling(
            values,
            kernel=_pair(kernel, "kernel", 1, 32),
            stride=None if stride is None or stride == "" else _pair(stride, "stride", 1, 32),
            padding=_pair(padding, "padding", 0, 16),
            dilation=_pair(dilation, "dilation", 1, 16),
            modes=mode,
            input_shape=_shape(input),
        ).to_dict()

    # -- networks with weights: receptive field, inside a trained network ---------------------------------

    def _module(self, source: Source) -> tuple[Any, dict[str, Any]]:
        """A real model in eval mode and its input metadata (zoo models: seeded random weights)."""
        from cnnlab.viz.common import model_or_checkpoint

        key = ("module", self._identity(source))
        cached = self._models.get(key)
        if cached is not None:
            return cached
        model_obj, meta = model_or_checkpoint(source)
        meta["label"] = source.label
        nbytes = sum(t.numel() * t.element_size() for t in model_obj.state_dict().values())
        return self._models.put(key, (model_obj, meta), nbytes)

    def _timed(self, kind: str, report: Report, samples: int) -> Any:
        """A context that feeds the time the work inside it takes to the speed the estimates use."""
        work = _PASSES[kind] * self._macs(report) * samples
        return _Timed(lambda seconds: self._speed.observe(work, seconds))

    def rf(self, model: str | None = None, run: str | None = None, input: Any = None, layer: str | None = None,
           samples: Any = None) -> dict[str, Any]:
        """A layer's theoretical field on the sample photo, next to its measured effective field."""
        import torch.nn.functional as F

        from cnnlab.models.registry import model_info
        from cnnlab.viz.common import as_image, display_image
        from cnnlab.viz.dataurl import colorize, png_data_url
        from cnnlab.viz.rf import erf_details, field_box, is_conv_or_pool

        n = _int(samples, "samples", 1, LIMITS["erf_samples"], default=8)
        source = self.source(model, run, command="the receptive field", accept=("zoo", "checkpoint", "run"))
        default = source.default_input
        if _shape(input) is None and default is not None and max(default[1:]) > 128:
            # a real forward and backward pass per sample: keep the default small
            side = max(128, model_info(source.name).min_input) if source.kind == "zoo" else 128
            default = (default[0], side, side)
        size = self._size(input or default, source, LIMITS["model_side"])
        if size is None or len(size) != 3:
            raise CnnlabError(f"input must be CxHxW, e.g. 3x224x224, got {fmt_shape(size or ())}")
        report = self._entry(source, size, 1, None, False)["report"]
        choices = [r for r in report.layers  # modules, so that the effective field can hook their output
                   if r.kind == "module" and r.rf_size and len(r.rf_size) == 2 and r.output_shape
                   and len(r.output_shape) == 4 and is_conv_or_pool(r.op)]
        if not choices:
            raise CnnlabError(f"{source.label} has no convolution or pooling layer with a spatial output at this input")
        if layer:
            chosen = next((r for r in choices if r.name == layer), None)
            if chosen is None:
                names = ", ".join(r.name for r in choices[:12])
                raise CnnlabError(f"{source.label} has no convolution or pooling layer {layer!r}: choose one of "
                                  f"{names}" + (f", ... ({len(choices)} in all)" if len(choices) > 12 else ""))
        else:  # the deepest layer whose field still fits in the input
            fitting = [r for r in choices if r.rf_size[0] <= size[1] and r.rf_size[1] <= size[2]]
            chosen = fitting[-1] if fitting else choices[0]
        what = f"the effective field of {source.label} at {fmt_shape(size)} with {n} sample{'s' if n > 1 else ''}"
        chunk, nbytes = self._fit(what, report, source, size, n, "rf")
        with self.lock:
            self._make_room(nbytes)
            module, _meta = self._module(source)
            with self._timed("rf", report, n):
                erf, _name, spatial, centre = erf_details(module, size, n, 0, chosen.scope, chunk=chunk,
                                                          between=lambda: self.in_time(what), checked=self.bounded)
        photo = as_image(None).float().unsqueeze(0) / 255  # the backdrop: the sample photo at the input size
        if size[0] != 3:
            photo = photo.mean(1, keepdim=True)
        photo = F.interpolate(photo, size=size[1:], mode="bilinear", antialias=True, align_corners=False)
        top, left, r_h, r_w = field_box(chosen, centre)
        inside = erf[max(top, 0): max(top + r_h, 0), max(left, 0): max(left + r_w, 0)].sum()
        total = float(erf.sum())
        return {
            "model": source.label,
            "input_size": list(size),
            "layers": [{"name": r.name, "op": r.op, "rf_size": r.rf_size, "rf_stride": r.rf_stride,
                        "output_shape": r.output_shape} for r in choices],
            "layer": {"name": chosen.name, "op": chosen.op, "scope": chosen.scope, "output_shape": chosen.output_shape,
                      "rf_size": chosen.rf_size, "rf_stride": chosen.rf_stride, "rf_padding": chosen.rf_padding,
                      "explain": chosen.explain},
            "unit": list(centre),
            "output_spatial": list(spatial),
            "box": {"top": top, "left": left, "height": r_h, "width": r_w},
            "erf_mass_inside_box": float(inside) / total if total > 0 else 0.0,
            "samples": n,
            "weights": "random (seed 0)" if source.checkpoint is None else "trained (checkpoint)",
            "image": png_data_url(display_image(photo[0])),
            "erf": png_data_url(colorize(erf, "magma", normalize=False)),
        }

    def inside(self, model: str | None = None, run: str | None = None, top: Any = None, layers: Any = None,
               image: bytes | None = None) -> dict[str, Any]:
        """Top-k prediction, feature maps at shallow, middle and deep layers, and Grad-CAM of one image.

        The default layers are the first, middle and last convolution that the eval-mode pass runs,
        and Grad-CAM explains the class the prediction ranks first.
        """
        import torch

        from cnnlab.viz.common import layer_error, prepare_input
        from cnnlab.viz.dataurl import blend, colorize, png_data_url
        from cnnlab.viz.features import feature_maps, parse_layers, pick_layers, ran_convolutions
        from cnnlab.viz.gradcam import grad_cam

        k = _int(top, "top", 1, LIMITS["top_k"], default=5)
        asked = parse_layers(layers)
        source = self.source(model, run, command="inside a network", accept=("zoo", "checkpoint", "run"))
        pixels = 0 if image is None else _image_pixels(image)
        size = source.default_input
        if size is None or len(size) != 3:
            raise CnnlabError(f"{source.label} does not take one CxHxW image: the inside view needs one")
        c, h, w = size
        if self.bounded:
            size = (c, min(h, LIMITS["model_side"]), min(w, LIMITS["model_side"]))
        report = self._entry(source, size, 1, None, False)["report"]
        what = f"inside {source.label} at {fmt_shape(size)}"
        _, nbytes = self._fit(what, report, source, size, 1, "inside", extra=_DECODE_BYTES_PER_PIXEL * pixels)
        with self.lock:
            self._make_room(nbytes)
            picture_in = None if image is None else decode_image(image)
            module, meta = self._module(source)
            meta = {**meta, "input_size": list(size)}
            with self._timed("inside", report, 1):
                x, picture = prepare_input(picture_in, module, meta)
                ran = ran_convolutions(module, x)
                chosen = asked or pick_layers(ran)
                self.in_time(what)
                maps = feature_maps(module, x, chosen)
                missing = [name for name in chosen if name not in maps]
                if missing:
                    raise layer_error(missing[0], ran, "layer that runs in eval mode")
                self.in_time(what)
                with torch.no_grad():
                    output = module(x)
                logits = (output if isinstance(output, torch.Tensor) else output[0])[0].float()
                # One ranking, by the logits (softmax can round near-equal ones to equal probabilities),
                # and Grad-CAM explains its first class.
                ranked = torch.sort(logits, descending=True, stable=True).indices[: min(k, logits.numel())]
                probs = logits.softmax(0)
                self.in_time(what)
                cam = grad_cam(module, x, class_index=int(ranked[0]))
        class_name = _class_names(meta)
        features = []
        for name, tensor in maps.items():
            if tensor.dim() != 4:
                continue
            shown = tensor[0][: LIMITS["feature_maps"]].float().numpy()
            features.append({"layer": name, "shape": list(tensor[0].shape),
                             "images": [png_data_url(colorize(m, "viridis")) for m in shown]})
        return {
            "model": meta["label"],
            "weights": "trained (checkpoint)" if source.checkpoint is not None
            else "random (seed 0): pick a run for a trained network",
            "input_size": list(size),
            "image": png_data_url(picture),
            "predictions": [{"class": class_name(int(i)), "index": int(i), "probability": float(probs[i])}
                            for i in ranked],
            "features": features,
            "conv_layers": ran,
            "gradcam": {"class": class_name(cam.class_index), "index": cam.class_index, "score": cam.score,
                        "image": png_data_url(blend(picture, cam.heatmap))},
        }

    def filters(self, model: str | None = None, run: str | None = None, layer: str | None = None,
                filter: Any = None, image: str | None = None) -> dict[str, Any]:
        """One convolution on one image: each input channel with its slice of a filter, the sum, the bias,
        and the modules after it (:func:`cnnlab.viz.convolution.conv_breakdown`); values to 5 significant digits."""
        import torch

        from cnnlab.data.bundled import default_image, sample_images
        from cnnlab.models.registry import list_models, model_info
        from cnnlab.viz.common import conv_layers, layer_error, prepare_input
        from cnnlab.viz.convolution import conv_breakdown, following, rounded
        from cnnlab.viz.dataurl import png_data_url

        index = _int(filter, "filter", 0, 1_000_000, default=0)
        source = self.source(model, run, command="the filters view", accept=("zoo", "checkpoint", "run"))
        with self.lock:
            module, meta = self._module(source)
            dataset = meta.get("dataset")
            images = {p.stem: p for p in sample_images(dataset)} if default_image(dataset) else {}
            if image and image not in images:
                raise CnnlabError(f"image {image!r} is not a bundled test image of this network's data: "
                                  + (f"choose one of {', '.join(images)}" if images else
                                     "it sees the sample photo, leave image out"))
            c, h, w = (int(v) for v in meta["input_size"])
            low = model_info(source.name).min_input if source.name in list_models() else 1
            side = max(LIMITS["filters_side"], low)  # every value is sent: keep the maps small
            size = (c, min(h, side), min(w, side))
            x, picture = prepare_input(images.get(image or "") or (default_image(dataset) if images else None),
                                       module, {**meta, "input_size": list(size)})
            convs = conv_layers(module)
            if not convs:
                raise CnnlabError(f"{source.label} has no 2-D convolution to look at")
            if layer is None or layer == "":
                layer = next((n for n, m in convs if m.in_channels // m.groups > 1), convs[0][0])
            elif layer not in dict(convs):
                raise layer_error(layer, [n for n, _ in convs], "convolution")
            report = self._entry(source, size, 1, None, False)["report"]
            parts = conv_breakdown(module, x, layer, following(report.layers, layer), index)
        conv = parts.conv
        shown = LIMITS["feature_maps"]
        first = index - index % shown
        kept = list(range(first, min(first + shown, conv.out_channels)))  # the filters side by side
        channels = parts.channels[:shown]
        rest = parts.partials[shown:].sum(0) if len(parts.channels) > shown else None
        left, right, top, bottom = parts.pad
        records = {r.scope: r for r in reversed(report.layers) if r.kind == "module"}  # first call of each
        probs = parts.logits.float().softmax(1)[0]
        values, indices = probs.topk(min(3, probs.numel()))
        class_name = _class_names(meta)

        def pairs(v: Any) -> list[int]:
            return [int(v), int(v)] if isinstance(v, int) else [int(t) for t in v]

        stages = []
        for name, mod, out in parts.stages:
            stage = {"name": name, "op": type(mod).__name__, "shape": list(out.shape),
                     "explain": records[name].explain if name in records else [],
                     "values": rounded(out[kept]), "filter": rounded(out[index])}
            if isinstance(mod, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
                stage.update(kernel_size=pairs(mod.kernel_size), stride=pairs(mod.stride or mod.kernel_size),
                             padding=pairs(mod.padding))
            stages.append(stage)
        return {
            "model": meta["label"],
            "trained": source.checkpoint is not None,
            "weights": "trained (checkpoint)" if source.checkpoint is not None
            else "random (seed 0): pick a run for a trained network",
            "dataset": dataset,
            "input_size": list(size),
            "image": png_data_url(picture),
            "image_name": (image or default_image(dataset).stem) if images else None,
            "images": list(images),
            "predictions": [{"class": class_name(int(i)), "index": int(i), "probability": float(v)}
                            for v, i in zip(values, indices, strict=True)],
            "layers": [{"name": n, "in_channels": m.in_channels, "out_channels": m.out_channels,
                        "kernel_size": list(m.kernel_size)} for n, m in convs],
            "layer": {"name": layer, "in_channels": conv.in_channels, "out_channels": conv.out_channels,
                      "groups": conv.groups, "kernel_size": list(conv.kernel_size), "stride": list(conv.stride),
                      "dilation": list(conv.dilation), "padding": {"top": top, "bottom": bottom, "left": left,
                                                                   "right": right},
                      "padding_mode": conv.padding_mode, "bias": conv.bias is not None,
                      "input_shape": [conv.in_channels, parts.padded.shape[1] - top - bottom,
                                      parts.padded.shape[2] - left - right],
                      "output_shape": list(parts.output.shape),
                      "explain": records[layer].explain if layer in records else []},
            "input": {"channels": channels, "padded": rounded(parts.padded[channels])},
            "filters": kept,
            "output": rounded(parts.output[kept]),
            "stages": stages,
            "filter": {
                "index": index,
                "channels": channels,
                "weights": rounded(conv.weight[index, : len(channels)]),
                "bias": float(conv.bias[index].detach()) if conv.bias is not None else 0.0,
                "partials": rounded(parts.partials[: len(channels)]),
                "rest": None if rest is None else rounded(rest),
                "rest_channels": len(parts.channels) - len(channels),
                "output": rounded(parts.output[index]),
            },
        }

    # -- runs ----------------------------------------------------------------------------------------------

    def runs(self) -> dict[str, Any]:
        """One summary per run folder in the runs folder, the most recently updated first.

        A run whose files cannot be read as a run (a config that is a link out of it, say) is left
        out; damaged lines of metrics.jsonl are skipped and counted (``damaged_lines``).
        """
        from cnnlab.experiments import EXPERIMENT_FILE
        from cnnlab.runs import RunDir

        out = []
        names = [f.name for f in self.runs_dir.iterdir()] if self.runs_dir.is_dir() else []
        for experiment in [n for n in names if (self.runs_dir / n / EXPERIMENT_FILE).is_file()]:
            names += [f"{experiment}/{f.name}" for f in (self.runs_dir / experiment).iterdir() if f.is_dir()]
        for name in names:
            try:
                run = RunDir(self.run_dir(name))  # listed only if it can be opened: a link out is not
                config = run.read_config()
                if config is not None:
                    out.append({**_run_summary(run, config, run.scan_metrics()), "name": name,
                                "experiment": name.split("/")[0] if "/" in name else None})
            except (CnnlabError, OSError):
                continue
        # Runs of their own first, newest first; then each experiment's runs together, in its order.
        out.sort(key=lambda r: (r["experiment"] is not None, r["experiment"] or "",
                                -r["updated"] if r["experiment"] is None else 0, r["name"]))
        return {"runs_dir": self.runs_dir.name, "runs": out}

    def run(self, name: str | None = None) -> dict[str, Any]:
        """One run: its summary, config, epoch metrics (read live while it trains) and result; ``notes``
        says what of metrics.jsonl was skipped or read as null, and why."""
        from cnnlab.runs import RunDir

        if not name:
            raise CnnlabError("name is missing: give a run's folder name (see the runs list)")
        run = RunDir(self.run_dir(name))
        config = run.read_config()
        if config is None:
            raise CnnlabError(f"run {name!r} has no readable config.json: is it a cnnlab run folder?")
        result = run.read_result()
        metrics = run.scan_metrics()
        return {**_run_summary(run, config, metrics), "name": name, "config": config,
                "metrics": metrics.records, "notes": metrics.notes,
                "result": {k: v for k, v in (result or {}).items() if k not in ("history", "config")} or None}


def layer_document(result: LayerResult) -> dict[str, Any]:
    """One layer of the calculator as a document: its numbers and formulas, and the counting conventions."""
    from cnnlab.shapes import CONVENTIONS

    return {**result.to_dict(), "conventions": CONVENTIONS}


def _class_names(meta: dict[str, Any]) -> Any:
    """Class index -> its name from the checkpoint's data, else 'class i'."""
    classes = meta.get("classes")

    def name(i: int) -> str:
        return str(classes[i]) if classes and i < len(classes) else f"class {i}"

    return name


class _Timed:
    """Times the block and hands the seconds to ``done`` when it ends without an error."""

    def __init__(self, done: Any) -> None:
        self.done = done

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self.done(time.perf_counter() - self.start)


def _run_summary(run: Any, config: dict[str, Any], metrics: Any) -> dict[str, Any]:
    result = run.read_result()
    records = metrics.records
    best = max((m["val_top1"] for m in records if isinstance(m.get("val_top1"), (int, float))), default=None)
    test = (result or {}).get("test")
    return {
        "name": run.path.name,
        "model": _text(config.get("model")),
        "dataset": _text(config.get("dataset")),
        "epochs": _count(config.get("epochs")),
        "epochs_done": len(records),
        "damaged_lines": metrics.damaged_lines,
        "status": run.status(),
        "best_val_top1": best,
        "test_top1": _fraction(test.get("top1")) if isinstance(test, dict) else None,
        "has_checkpoint": run.checkpoint() is not None,
        "updated": run.updated(),
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:200]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _fraction(value: Any) -> float | None:
    """A number a run recorded (an accuracy), or None when the file holds something else there."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return value if ok else None


def _image_pixels(data: bytes) -> int:
    """The pixels an upload will decode to, read from its header alone (nothing is decoded); one line
    when it is not an image of the listed formats, or too large."""
    from PIL import Image, UnidentifiedImageError

    _check_upload(data)
    try:
        with Image.open(io.BytesIO(data)) as img:
            _check_header(img)
            return img.width * img.height
    except CnnlabError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise CnnlabError("the upload is not an image: send PNG, JPEG, GIF, BMP or WebP") from None


def _check_upload(data: bytes) -> None:
    if not data:
        raise CnnlabError("the upload is empty: choose an image file (PNG, JPEG, GIF, BMP or WebP)")
    if len(data) > LIMITS["upload_bytes"]:
        raise CnnlabError(f"the upload is {len(data) / 2**20:.1f} MB: the limit is "
                          f"{LIMITS['upload_bytes'] // 2**20} MB, send a smaller image")


def _check_header(img: Any) -> None:
    if img.format not in IMAGE_FORMATS:
        raise CnnlabError(f"the upload is a {img.format} file: send PNG, JPEG, GIF, BMP or WebP")
    if img.width * img.height > LIMITS["upload_pixels"]:
        raise CnnlabError(f"the image is {img.width}x{img.height} pixels: at most "
                          f"{LIMITS['upload_pixels'] // 1_000_000} million pixels")


def decode_image(data: bytes) -> Any:
    """Upload bytes as a uint8 C x H x W tensor; only real images of the listed formats, bounded in pixels."""
    from PIL import Image, UnidentifiedImageError

    from cnnlab.train.inference import image_tensor

    _check_upload(data)
    try:
        with Image.open(io.BytesIO(data)) as img:
            _check_header(img)
            return image_tensor(img)
    except CnnlabError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise CnnlabError("the upload is not an image: send PNG, JPEG, GIF, BMP or WebP") from None
