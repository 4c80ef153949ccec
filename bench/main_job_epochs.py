"""How many epochs the main job needs: LeNet-5's recipe at 3 and 4 epochs over six seeds.

Every run is ``cnnlab train`` with no options but ``--epochs`` and ``--seed`` (in-process through
``cnnlab.train.fit``), on this machine's default precision and threads. It prints the test
accuracies and the mean time each run took, to show what one epoch fewer would save and cost.

    python bench/main_job_epochs.py > bench/results/main_job_epochs.json
"""

from __future__ import annotations

import json
import os
import tempfile
import time

SEEDS = int(os.environ.get("SEEDS", "6"))


def main() -> None:
    from cnnlab.train.config import override
    from cnnlab.train.loop import fit
    from cnnlab.train.recipes import DEFAULT_RECIPE, get_recipe

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for epochs in (3, 4):
            accs, seconds = [], []
            for seed in range(SEEDS):
                cfg = override(get_recipe(DEFAULT_RECIPE), dict(epochs=epochs, seed=seed, out=tmp, name=f"e{epochs}-s{seed}"))
                start = time.perf_counter()
                result = fit(cfg, quiet=True)
                seconds.append(time.perf_counter() - start)
                accs.append(result.test["top1"])
            rows.append({"epochs": epochs, "seeds": list(range(SEEDS)), "test_top1": accs, "min": min(accs),
                         "max": max(accs), "mean": sum(accs) / len(accs),
                         "mean_fit_seconds": round(sum(seconds) / len(seconds), 1)})
    print(json.dumps({"recipe": DEFAULT_RECIPE, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
