"""torch.hub entry points for every cnnlab model.

    model = torch.hub.load("path/to/cnnlab", "resnet50", source="local", num_classes=10)

Keyword arguments go to ``cnnlab.create_model`` (``num_classes``, ``in_channels``, architecture
options, and ``weights=PATH`` for a state_dict file).
"""

import os
import sys

dependencies = ["torch", "torchvision"]

# A plain clone works without installing: the package lives under src/.
_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
if os.path.isdir(_SRC) and _SRC not in sys.path:
    sys.path.insert(0, _SRC)

from cnnlab.models import create_model as _create_model  # noqa: E402
from cnnlab.models import list_models as _list_models  # noqa: E402
from cnnlab.models import model_info as _model_info  # noqa: E402


def _entry_point(name):
    def entry(weights=None, **kwargs):
        return _create_model(name, weights=weights, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = _model_info(name).description
    return entry


globals().update({_name: _entry_point(_name) for _name in _list_models()})
