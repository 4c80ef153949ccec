"""The analyzer on timm's models: parameters and MACs against torch's own counts, no crash allowed.

timm is not a dependency of cnnlab; install it where this script can import it, e.g.
``pip install timm`` in the project's environment. Every model is built on the meta device
(no weights, no memory) and analysed at its own input size; the parameters are compared with
``sum(p.numel())`` and the MACs with ``torch.utils.flop_counter.FlopCounterMode`` on the same
meta input (halved). A ``CnnlabError`` (a model that cannot run at that size, say) is listed,
not failed; anything else is a failure.

    python scripts/check-timm.py                # one model of every timm family
    python scripts/check-timm.py --every 5      # every fifth model of timm's list
    python scripts/check-timm.py --every 1      # all of them (about half an hour on 2 cores)

Prints one JSON document; exits 1 when a model crashes or disagrees with torch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings


def models(every: int | None) -> list[str]:
    import timm

    if every:
        return timm.list_models()[::every]
    # one per family: the shortest name in each of timm's model modules
    return [min(names, key=len) for names in (timm.list_models(module=m) for m in sorted(timm.list_modules()))
            if names]


def check(name: str) -> dict:
    import timm
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cnnlab import analyze
    from cnnlab.errors import CnnlabError

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False).eval()
    size = tuple(model.pretrained_cfg.get("input_size", (3, 224, 224)))
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
    parser.add_argument("--every", type=int, default=None, help="every N-th model of timm's list")
    args = parser.parse_args()
    try:
        import timm  # noqa: F401
    except ImportError:
        raise SystemExit("check-timm: timm is not installed here: pip install timm") from None
    warnings.simplefilter("ignore")
    rows, start = [], time.perf_counter()
    for name in models(args.every):
        try:
            row = check(name)
        except Exception as exc:  # a crash is what this script looks for
            row = {"model": name, "crash": f"{type(exc).__name__}: {exc}".splitlines()[0]}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    bad = [r["model"] for r in rows if "crash" in r or r.get("agrees") is False]
    print(json.dumps({"models": len(rows), "agree": sum(bool(r.get("agrees")) for r in rows),
                      "refused": [r["model"] for r in rows if "refused" in r], "failed": bad,
                      "seconds": round(time.perf_counter() - start, 1), "rows": rows}, indent=2))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
