"""What the explorer's endpoints compute, without the web framework: plain arguments in, JSON-ready dicts out.

Every number comes from the library (the analyzer, the convolution explainer, Grad-CAM, the
effective receptive field, the run folders ``cnnlab train`` writes); this module only checks
what arrives from the browser and shapes the answers. Bad input raises
:class:`~cnnlab.errors.CnnlabError` with one line that names the cause and the fix.

Safety rules kept here:

- a model is a registry name (never a ``file.py:name`` spec, which would run code) or the name
  of a run folder directly inside the runs folder; no other path is ever opened;
- checkpoints load with ``weights_only=True`` (see :mod:`cnnlab.safeload`);
- input sizes, uploads and the number of compared models are bounded;
- model work (tracing, forward and backward passes) runs under one lock, so concurrent
  requests never interleave inside torch's global state; finished analyses are cached.
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.shapes import fmt_shape

__all__ = ["LIMITS", "Explorer"]

LIMITS = {
    "analysis_side": 1024,  # largest H or W the architecture view analyses
    "analysis_channels": 64,
    "model_side": 256,  # largest H or W for real forward/backward passes (receptive field, inside)
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


class _Lru:
    """A small thread-safe least-recently-used cache."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        return None

    def put(self, key: Any, value: Any) -> Any:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value


def parse_input_size(text: str | None, default: Sequence[int], max_side: int, what: str = "input") -> tuple[int, int, int]:
    """'3x64x64' -> (3, 64, 64), bounded; ``default`` when empty."""
    from cnnlab.shapes import parse_shape

    if text is None or not str(text).strip():
        size = tuple(int(v) for v in default)
    else:
        size = tuple(parse_shape(str(text)))
    if len(size) != 3:
        raise CnnlabError(f"{what} must be CxHxW, e.g. 3x224x224, got {fmt_shape(size)}")
    c, h, w = size
    if c > LIMITS["analysis_channels"] or max(h, w) > max_side:
        raise CnnlabError(
            f"{what} {c}x{h}x{w} is too large for the explorer: at most {LIMITS['analysis_channels']} channels "
            f"and {max_side} pixels a side (`cnnlab inspect` takes any size)")
    return c, h, w


def _int(value: Any, name: str, low: int, high: int, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise CnnlabError(f"{name} is missing: give a whole number from {low} to {high}")
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise CnnlabError(f"{name} must be a whole number from {low} to {high}, got {value!r}") from None
    if not low <= number <= high:
        raise CnnlabError(f"{name} must be from {low} to {high}, got {number}")
    return number


def _pair(value: Any, name: str, low: int, high: int) -> tuple[int, int]:
    """One number or two (rows, columns): 1, "1", [1, 2] or "1,2"."""
    if isinstance(value, str) and "," in value:
        value = [v for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise CnnlabError(f"{name} must be one whole number or two (rows, columns), got {value!r}")
        return _int(value[0], name, low, high), _int(value[1], name, low, high)
    number = _int(value, name, low, high)
    return number, number


class Explorer:
    """The explorer's computations over one runs folder."""

    def __init__(self, runs_dir: str | Path = "runs") -> None:
        self.runs_dir = Path(runs_dir).resolve()
        self.lock = threading.RLock()  # model work: one request at a time inside torch
        self._reports = _Lru(48)
        self._models = _Lru(4)

    # -- models and runs ----------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        from cnnlab.models.registry import list_models, model_info

        out = []
        for name in list_models():
            info = model_info(name).to_dict()
            out.append({k: info[k] for k in ("name", "family", "paper", "default_input", "min_input", "description",
                                              "torchvision") if k in info})
        return out

    def _zoo_name(self, name: str) -> str:
        from cnnlab.models.registry import list_models, unknown_model

        if name not in list_models():
            raise unknown_model(name)
        return name

    def run_dir(self, name: str) -> Path:
        """The run folder ``name`` directly inside the runs folder; anything else is refused."""
        from cnnlab.runs import RUN_NAME

        text = str(name)
        if not RUN_NAME.match(text):
            raise CnnlabError(f"run {text!r} is not a run name: give the name of a folder inside the runs folder "
                              "(letters, digits, '.', '_', '-'; no paths)")
        path = (self.runs_dir / text).resolve()
        if path.parent != self.runs_dir:
            raise CnnlabError(f"run {text!r} points outside the runs folder {self.runs_dir}: only runs inside it "
                              "can be opened")
        if not path.is_dir():
            raise CnnlabError(f"no run {text!r} in {self.runs_dir}: pick one from the runs list")
        return path

    def _checkpoint(self, run: str) -> Path:
        """The run's best checkpoint so far, else its last one."""
        from cnnlab.runs import RunDir

        folder = RunDir(self.run_dir(run))
        try:
            return folder.weights()
        except CnnlabError:
            raise CnnlabError(f"run {run!r} has no checkpoint yet (best.pt or last.pt): wait for its first "
                              "epoch") from None

    def runs(self) -> list[dict[str, Any]]:
        from cnnlab.runs import RunDir

        if not self.runs_dir.is_dir():
            return []
        out = []
        for folder in self.runs_dir.iterdir():
            try:
                run = RunDir(self.run_dir(folder.name))  # listed only if it can be opened: a link leading out is not
            except CnnlabError:
                continue
            config = run.read_config()
            if config is None:
                continue
            out.append(self._run_summary(run, config))
        return sorted(out, key=lambda r: r["updated"], reverse=True)

    def _run_summary(self, run: Any, config: dict[str, Any]) -> dict[str, Any]:
        metrics = run.read_metrics(strict=False)
        result = run.read_result()
        best = max((m["val_top1"] for m in metrics if isinstance(m.get("val_top1"), (int, float))), default=None)
        test = (result or {}).get("test")
        return {
            "name": run.path.name,
            "model": config.get("model"),
            "dataset": config.get("dataset"),
            "epochs": config.get("epochs"),
            "epochs_done": len(metrics),
            "status": run.status(),
            "best_val_top1": best,
            "test_top1": test.get("top1") if isinstance(test, dict) else None,
            "has_checkpoint": any(p.is_file() for p in (run.best, run.last, run.previous)),
            "updated": run.updated(),
        }

    def run(self, name: str) -> dict[str, Any]:
        from cnnlab.runs import RunDir

        run = RunDir(self.run_dir(name))
        config = run.read_config()
        if config is None:
            raise CnnlabError(f"run {name!r} has no readable config.json: is it a cnnlab run folder?")
        result = run.read_result()
        return {**self._run_summary(run, config), "config": config, "metrics": run.read_metrics(strict=False),
                "result": {k: v for k, v in (result or {}).items() if k not in ("history", "config")} or None}

    # -- architecture -----------------------------------------------------------------------------

    def _source(self, model: str | None, run: str | None) -> tuple[str, Any, tuple[int, int, int]]:
        """(label, cache key, default input) of a zoo model or a run's checkpoint."""
        from cnnlab.models.registry import model_info

        if model and run:
            raise CnnlabError("give either model=NAME (a zoo model) or run=NAME (a run's checkpoint), not both")
        if not model and not run:
            raise CnnlabError("no model: give model=NAME (a zoo model, see /api/models) or run=NAME (a run's "
                              "checkpoint, see /api/runs)")
        if model:
            name = self._zoo_name(model)
            return name, ("model", name), tuple(model_info(name).default_input)
        path = self._checkpoint(run)  # type: ignore[arg-type]
        ckpt = self._load_checkpoint(path)
        size = (ckpt.get("data") or {}).get("input_size") or model_info(ckpt["model"]["name"]).default_input
        return f"{run} ({ckpt['model']['name']})", ("run", str(path), path.stat().st_mtime_ns), tuple(size)

    def _load_checkpoint(self, path: Path) -> dict[str, Any]:
        from cnnlab.checkpoint import load_checkpoint

        key = ("ckpt", str(path), path.stat().st_mtime_ns)
        cached = self._models.get(key)
        return cached if cached is not None else self._models.put(key, load_checkpoint(path))

    def _meta_module(self, checkpoint: Path) -> Any:
        """The checkpoint's architecture on the meta device: shapes only, its weights are not needed."""
        from cnnlab.models.source import build_on_meta

        spec = self._load_checkpoint(checkpoint)["model"]
        return build_on_meta(self._zoo_name(spec["name"]), spec.get("kwargs", {}))

    def _entry(self, model: str | None, input: str | None, run: str | None) -> dict[str, Any]:
        """The cache entry of one analysis: the report, and its JSON once it has been asked for."""
        from cnnlab.analysis import analyze

        label, key, default = self._source(model, run)
        size = parse_input_size(input, default, LIMITS["analysis_side"])
        cached = self._reports.get((key, size))
        if cached is not None:
            return cached
        with self.lock:
            if key[0] == "model":
                report = analyze(key[1], size)
            else:
                report = analyze(self._meta_module(Path(key[1])), size)
                report.model = label
        return self._reports.put((key, size), {"report": report, "json": None})

    def report(self, model: str | None = None, input: str | None = None, run: str | None = None) -> Any:
        """The analyzer's :class:`~cnnlab.analysis.records.Report` (cached per model and size)."""
        return self._entry(model, input, run)["report"]

    def analyze(self, model: str | None = None, input: str | None = None, run: str | None = None) -> dict[str, Any]:
        return self.report(model, input, run).to_dict(explain=True)

    def analyze_json(self, model: str | None = None, input: str | None = None, run: str | None = None) -> bytes:
        """:meth:`analyze` as JSON bytes, encoded once per cached report (a repeated request costs no encoding)."""
        entry = self._entry(model, input, run)
        if entry["json"] is None:
            entry["json"] = json.dumps(entry["report"].to_dict(explain=True), separators=(",", ":")).encode()
        return entry["json"]

    def compare(self, models: str | Sequence[str], input: str | None = None) -> dict[str, Any]:
        from cnnlab.analysis.render import compare_document

        names = [m.strip() for m in (models.split(",") if isinstance(models, str) else models) if m.strip()]
        if not names:
            raise CnnlabError("models is empty: give zoo model names separated by commas, e.g. resnet18,vgg11")
        if len(names) > LIMITS["compare_models"]:
            raise CnnlabError(f"{len(names)} models is too many to compare at once: at most {LIMITS['compare_models']}")
        names = list(dict.fromkeys(self._zoo_name(n) for n in names))
        size = parse_input_size(input, (3, 224, 224), LIMITS["analysis_side"])
        reports = [self.report(model=n, input=fmt_shape(size)) for n in names]
        return compare_document(reports, size)

    # -- layer calculator ---------------------------------------------------------------------------

    def stack(self, body: dict[str, Any]) -> dict[str, Any]:
        """:func:`cnnlab.shapes.stack`: a chain of layers in the calculator's grammar, every formula explained."""
        from cnnlab.shapes import parse_shape, stack

        if not isinstance(body, dict):
            raise CnnlabError('send a JSON object like {"input": "3x32x32", "layers": ["conv 64 k3 p1", "pool k2"]}')
        unknown = sorted(set(body) - {"input", "layers"})
        if unknown:
            raise CnnlabError(f"unknown field {unknown[0]!r}: use input and layers")
        layers = body.get("layers", [])
        if isinstance(layers, str):
            layers = layers.splitlines()
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise CnnlabError('layers must be a list of strings like "conv 64 k3 p1" (or one per line)')
        layers = [x.strip() for x in layers if x.strip() and not x.strip().startswith("#")]
        if not layers:
            raise CnnlabError('layers is empty: write one layer per line, e.g. "conv 64 k3 p1"')
        if len(layers) > LIMITS["stack_layers"] or any(len(x) > 200 for x in layers):
            raise CnnlabError(f"at most {LIMITS['stack_layers']} layers of up to 200 characters each")
        text = body.get("input")
        if not isinstance(text, str) or not text.strip():
            raise CnnlabError("input is missing: give the input shape as CxHxW, e.g. 3x32x32")
        shape = parse_shape(text)
        if len(shape) > 4 or max(shape) > LIMITS["stack_side"]:
            raise CnnlabError(f"input {text} is out of range: CxL, CxHxW or CxDxHxW with sizes up to "
                              f"{LIMITS['stack_side']:,}")
        return stack(shape, layers).to_dict()

    # -- convolution stepper ----------------------------------------------------------------------

    def conv(self, body: dict[str, Any]) -> dict[str, Any]:
        from cnnlab.scratch.explain import explain_convolution

        if not isinstance(body, dict):
            raise CnnlabError("send a JSON object like {\"input\": \"1,2;3,4\", \"kernel\": \"1,0;0,1\"}")
        unknown = sorted(set(body) - {"input", "kernel", "stride", "padding", "dilation", "bias"})
        if unknown:
            raise CnnlabError(f"unknown field {unknown[0]!r}: use input, kernel, stride, padding, dilation, bias")
        for field in ("input", "kernel"):
            if field in body and not isinstance(body[field], (str, list)):
                raise CnnlabError(f"{field} must be rows like '1,2,3;4,5,6' or a list of lists of numbers")
        bias = body.get("bias", 0)
        if isinstance(bias, bool) or not isinstance(bias, (int, float, str)):
            raise CnnlabError(f"bias must be a number, got {bias!r}")
        return explain_convolution(
            body.get("input"), body.get("kernel"),
            stride=_pair(body.get("stride", 1), "stride", 1, 32),
            padding=_pair(body.get("padding", 0), "padding", 0, 16),
            dilation=_pair(body.get("dilation", 1), "dilation", 1, 16),
            bias=bias if bias != "" else 0,
        ).to_dict()

    # -- models with weights: receptive field, inside a trained network ---------------------------------

    def _module(self, model: str | None, run: str | None) -> tuple[Any, dict[str, Any]]:
        """A real model in eval mode and its input metadata (zoo models: seeded random weights)."""
        from cnnlab.viz.common import model_or_checkpoint

        label, key, _ = self._source(model, run)
        cached = self._models.get(("module", key))
        if cached is not None:
            return cached
        model_obj, meta = model_or_checkpoint(key[1])  # a zoo name or a checkpoint path
        meta["label"] = label
        return self._models.put(("module", key), (model_obj, meta))

    def rf(self, model: str | None = None, input: str | None = None, run: str | None = None,
           layer: str | None = None, samples: Any = None) -> dict[str, Any]:
        """A layer's theoretical field on the sample photo, next to its measured effective field."""
        import torch.nn.functional as F

        from cnnlab.viz.common import as_image, display_image
        from cnnlab.viz.rf import erf_details, field_box, is_conv_or_pool
        from cnnlab.web.images import colorize, png_data_url

        n = _int(samples, "samples", 1, LIMITS["erf_samples"], default=8)
        label, _key, default = self._source(model, run)
        if max(default[1:]) > 128:  # a real forward and backward pass per sample: keep the default small
            from cnnlab.models.registry import model_info

            side = max(128, model_info(model).min_input) if model else 128
            default = (default[0], side, side)
        size = parse_input_size(input, default, LIMITS["model_side"])
        report = self.report(model, fmt_shape(size), run)
        choices = [r for r in report.layers  # modules, so that the effective field can hook their output
                   if r.kind == "module" and r.rf_size and len(r.rf_size) == 2 and r.output_shape
                   and len(r.output_shape) == 4 and is_conv_or_pool(r.op)]
        if not choices:
            raise CnnlabError(f"{label} has no convolution or pooling layer with a spatial output at this input")
        if layer:
            chosen = next((r for r in choices if r.name == layer), None)
            if chosen is None:
                names = ", ".join(r.name for r in choices[:12])
                raise CnnlabError(f"{label} has no convolution or pooling layer {layer!r}: choose one of {names}"
                                  + (f", ... ({len(choices)} in all)" if len(choices) > 12 else ""))
        else:  # the deepest layer whose field still fits in the input
            fitting = [r for r in choices if r.rf_size[0] <= size[1] and r.rf_size[1] <= size[2]]
            chosen = fitting[-1] if fitting else choices[0]
        with self.lock:
            module, _meta = self._module(model, run)
            erf, _name, spatial, centre = erf_details(module, size, n, 0, chosen.scope)
        photo = as_image(None).float().unsqueeze(0) / 255  # the backdrop: the sample photo at the input size
        if size[0] != 3:
            photo = photo.mean(1, keepdim=True)
        photo = F.interpolate(photo, size=size[1:], mode="bilinear", antialias=True, align_corners=False)
        top, left, r_h, r_w = field_box(chosen, centre)
        inside = erf[max(top, 0): max(top + r_h, 0), max(left, 0): max(left + r_w, 0)].sum()
        total = float(erf.sum())
        return {
            "model": label,
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
            "weights": "trained (checkpoint)" if run else "random (seed 0)",
            "image": png_data_url(display_image(photo[0])),
            "erf": png_data_url(colorize(erf, "magma", normalize=False)),
        }

    def inside(self, image: bytes | None, model: str | None = None, run: str | None = None,
               top: Any = None, layers: str | None = None) -> dict[str, Any]:
        """Top-k prediction, feature maps at shallow, middle and deep layers, and Grad-CAM of one image."""
        import torch

        from cnnlab.viz.common import conv_layers, prepare_input
        from cnnlab.viz.features import default_layers, feature_maps, parse_layers
        from cnnlab.viz.gradcam import grad_cam
        from cnnlab.web.images import blend, colorize, png_data_url

        k = _int(top, "top", 1, LIMITS["top_k"], default=5)
        picture_in = None if image is None else decode_image(image)
        with self.lock:
            module, meta = self._module(model, run)
            c, h, w = (int(v) for v in meta["input_size"])
            if max(h, w) > LIMITS["model_side"]:
                meta = {**meta, "input_size": [c, min(h, LIMITS["model_side"]), min(w, LIMITS["model_side"])]}
            x, picture = prepare_input(picture_in, module, meta)
            names = parse_layers(layers) or default_layers(module)
            maps = feature_maps(module, x, names)
            with torch.no_grad():
                output = module(x)
            logits = output if isinstance(output, torch.Tensor) else output[0]
            probs = logits.softmax(1)[0]
            cam = grad_cam(module, x)
        classes = meta.get("classes")
        values, indices = probs.topk(min(k, probs.numel()))

        def class_name(i: int) -> str:
            return str(classes[i]) if classes and i < len(classes) else f"class {i}"

        features = []
        for name, tensor in maps.items():
            fmap = tensor[0] if tensor.dim() == 4 else None
            if fmap is None:
                continue
            shown = fmap[: LIMITS["feature_maps"]].float().numpy()
            features.append({"layer": name, "shape": list(fmap.shape),
                             "images": [png_data_url(colorize(m, "viridis")) for m in shown]})
        return {
            "model": meta["label"],
            "weights": "trained (checkpoint)" if run else "random (seed 0): pick a run for a trained network",
            "input_size": [int(v) for v in meta["input_size"]],
            "image": png_data_url(picture),
            "predictions": [{"class": class_name(int(i)), "index": int(i), "probability": float(v)}
                            for v, i in zip(values, indices, strict=True)],
            "features": features,
            "conv_layers": [name for name, _ in conv_layers(module)],
            "gradcam": {"class": class_name(cam.class_index), "index": cam.class_index, "score": cam.score,
                        "image": png_data_url(blend(picture, cam.heatmap))},
        }


def decode_image(data: bytes) -> Any:
    """Upload bytes as a uint8 C x H x W tensor; only real images of the listed formats, bounded in pixels."""
    from PIL import Image, UnidentifiedImageError

    from cnnlab.train.inference import image_tensor

    if not data:
        raise CnnlabError("the upload is empty: choose an image file (PNG, JPEG, GIF, BMP or WebP)")
    if len(data) > LIMITS["upload_bytes"]:
        raise CnnlabError(f"the upload is {len(data) / 2**20:.1f} MB: the limit is "
                          f"{LIMITS['upload_bytes'] // 2**20} MB, send a smaller image")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in IMAGE_FORMATS:
                raise CnnlabError(f"the upload is a {img.format} file: send PNG, JPEG, GIF, BMP or WebP")
            if img.width * img.height > LIMITS["upload_pixels"]:
                raise CnnlabError(f"the image is {img.width}x{img.height} pixels: at most "
                                  f"{LIMITS['upload_pixels'] // 1_000_000} million pixels")
            return image_tensor(img)
    except CnnlabError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise CnnlabError("the upload is not an image: send PNG, JPEG, GIF, BMP or WebP") from None
