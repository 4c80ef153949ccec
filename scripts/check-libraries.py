"""The analyzer on other libraries' models: parameters and MACs against torch's own counts, no crash allowed.

Neither library is a dependency of cnnlab; install the one to check where this script can import
it, e.g. ``pip install timm`` or ``pip install segmentation-models-pytorch`` in the project's
environment. Every model is built on the meta device (no weights, no memory; one whose
constructor needs values is built on the CPU and moved there) and analysed at its own input
size; the parameters are compared with ``sum(p.numel())`` and the MACs with
``torch.utils.flop_counter.FlopCounterMode`` on the same meta input (halved). A ``CnnlabError``
(a model that cannot run at that size, say) is listed, not failed; anything else is a failure.

    python scripts/check-libraries.py                   # timm: one model of every family
    python scripts/check-libraries.py --every 5         # every fifth model of timm's list
    python scripts/check-libraries.py --library smp     # segmentation_models_pytorch: every architecture
                                                        # with encoders of nine families
    python scripts/check-libraries.py --library smp --every 1   # every architecture with every encoder

Prints one JSON document; exits 1 when a model crashes or disagrees with torch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

# segmentation_models_pytorch: one encoder of each of nine families (torchvision's, timm's "tu-"
# wrappers, two transformers: DPT takes only the ViT) unless --every walks its whole encoder list.
SMP_ENCODERS = ("resnet34", "mobilenet_v2", "efficientnet-b0", "mit_b0", "densenet121", "vgg11_bn",
                "timm-regnety_002", "tu-convnext_tiny", "tu-vit_small_patch16_224")
SMP_SIDE = 224  # divisible by 32, as every smp decoder asks, and the ViT encoder's own size


def _timm_names(every: int | None) -> list[str]:
    import timm

    if every:
        return timm.list_models()[::every]
    # one per family: the shortest name in each of timm's model modules
    return [min(names, key=len) for names in (timm.list_models(module=m) for m in sorted(timm.list_modules()))
            if names]


def _timm_build(name: str) -> tuple[Any, tuple[int, ...]]:
    import timm

    model = _on_meta(lambda: timm.create_model(name, pretrained=False))
    return model, tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))


def _smp_names(every: int | None) -> list[str]:
    import segmentation_models_pytorch as smp

    archs = sorted(a.__name__ for a in smp._MODEL_ARCHITECTURES)
    encoders = smp.encoders.get_encoder_names()[::every] if every else SMP_ENCODERS
    return [f"{arch}/{encoder}" for arch in archs for encoder in encoders]


def _smp_build(name: str) -> tuple[Any, tuple[int, ...]]:
    import segmentation_models_pytorch as smp

    arch, encoder = name.split("/")
    return _on_meta(lambda: smp.create_model(arch, encoder_name=encoder, encoder_weights=None, classes=3)), \
        (3, SMP_SIDE, SMP_SIDE)


LIBRARIES: dict[str, tuple[str, Callable[[int | None], list[str]], Callable[[str], tuple[Any, tuple[int, ...]]]]] = {
    "timm": ("timm", _timm_names, _timm_build),
    "smp": ("segmentation_models_pytorch", _smp_names, _smp_build),
}


class Unsupported(Exception):
    """The library itself refuses the combination (an encoder an architecture does not take)."""


def _on_meta(build: Callable[[], Any]) -> Any:
    import torch

    try:
        with torch.device("meta"):
            return build().eval()
    except (RuntimeError, NotImplementedError):  # a constructor that reads values (.item()): build, then move
        try:
            return build().eval().to_empty(device="meta")
        except ValueError as exc:
            raise Unsupported(str(exc).splitlines()[0]) from None
    except ValueError as exc:
        raise Unsupported(str(exc).splitlines()[0]) from None


def check(name: str, build: Callable[[str], tuple[Any, tuple[int, ...]]]) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cnnlab import analyze
    from cnnlab.errors import CnnlabError

    try:
        model, size = build(name)
    except Unsupported as exc:
        return {"model": name, "unsupported": str(exc)}
    row = {"model": name, "input": list(size)}
    try:
        report = analyze(model, size)
    except CnnlabError as exc:
        return {**row, "refused": str(exc)}
    torch_params, torch_macs, note = sum(p.numel() for p in model.parameters()), None, None
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.empty(1, *size, device="meta"))
        torch_macs = counter.get_total_flops() // 2
    except Exception as exc:  # torch's own counter fails on a few models: nothing to compare with then
        note = f"torch's counter failed: {type(exc).__name__}: {exc}".splitlines()[0]
    # the totals count what the inference graph uses; model_params adds modules it never runs
    params_ok = torch_params in (report.params, report.model_params)
    return {**row, "method": report.method, "params": report.params, "torch_params": torch_params,
            "macs": report.macs, "torch_macs": torch_macs, "unknown": sorted(report.unknown),
            "agrees": params_ok and (torch_macs is None or report.macs == torch_macs),
            **({"note": note} if note else {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", choices=sorted(LIBRARIES), default="timm", help="whose models (default timm)")
    parser.add_argument("--every", type=int, default=None, help="every N-th model (timm) or encoder (smp)")
    args = parser.parse_args()
    module, names, build = LIBRARIES[args.library]
    try:
        __import__(module)
    except ImportError:
        raise SystemExit(f"check-libraries: {module} is not installed here: pip install it first") from None
    warnings.simplefilter("ignore")
    rows, start = [], time.perf_counter()
    for name in names(args.every):
        try:
            row = check(name, build)
        except Exception as exc:  # a crash is what this script looks for
            row = {"model": name, "crash": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    bad = [r["model"] for r in rows if "crash" in r or r.get("agrees") is False]
    print(json.dumps({"library": module, "models": len(rows), "agree": sum(bool(r.get("agrees")) for r in rows),
                      "unsupported": sum("unsupported" in r for r in rows),
                      "refused": [r["model"] for r in rows if "refused" in r], "failed": bad,
                      "seconds": round(time.perf_counter() - start, 1), "rows": rows}, indent=2))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
