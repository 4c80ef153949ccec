"""Pictures of what a CNN does: classic kernels, convolution step by step, learned filters,
feature maps, Grad-CAM, receptive fields (theoretical and effective), training curves and
model comparisons.

Every ``draw_*`` function writes one PNG and returns its path; the numbers behind the
pictures come from separate functions (``apply_kernel``, ``feature_maps``, ``grad_cam``) so
they can be checked and reused.
"""

from cnnlab.viz.common import load_image, model_or_checkpoint, sample_photo, save_figure
from cnnlab.viz.compare import draw_compare, model_costs
from cnnlab.viz.curves import draw_curves, read_run
from cnnlab.viz.features import default_layers, draw_features, feature_maps
from cnnlab.viz.filters import draw_filters
from cnnlab.viz.gradcam import GradCam, draw_gradcam, grad_cam
from cnnlab.viz.kernels import (
    CLASSIC_KERNELS,
    apply_kernel,
    draw_conv_steps,
    draw_kernel,
    draw_pooling,
)
from cnnlab.viz.rf import (
    ERF_STACKS,
    draw_erf_stacks,
    draw_rf,
    effective_receptive_field,
    stack_fields,
    theoretical_fields,
)
from cnnlab.viz.tour import make_tour

__all__ = [
    "CLASSIC_KERNELS",
    "ERF_STACKS",
    "GradCam",
    "apply_kernel",
    "default_layers",
    "draw_compare",
    "draw_conv_steps",
    "draw_curves",
    "draw_erf_stacks",
    "draw_features",
    "draw_filters",
    "draw_gradcam",
    "draw_kernel",
    "draw_pooling",
    "draw_rf",
    "effective_receptive_field",
    "feature_maps",
    "grad_cam",
    "load_image",
    "make_tour",
    "model_costs",
    "model_or_checkpoint",
    "read_run",
    "sample_photo",
    "save_figure",
    "stack_fields",
    "theoretical_fields",
]
