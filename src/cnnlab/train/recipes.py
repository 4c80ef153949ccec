"""Named training recipes, each a :class:`TrainConfig` that says where its values come from."""

from __future__ import annotations

import copy

from cnnlab.errors import CnnlabError
from cnnlab.train.config import TrainConfig

__all__ = ["DEFAULT_RECIPE", "RECIPES", "get_recipe"]

_HE2015 = ("He, Zhang, Ren & Sun 2015, Deep Residual Learning for Image Recognition, Sec. 4.2: 45k/5k split, "
           "SGD lr 0.1 momentum 0.9 weight decay 1e-4, batch 128, 64k iterations, lr/10 at 32k and 48k, "
           "4-pixel padding with random 32x32 crops and horizontal flips")
_TORCHVISION = ("torchvision's classification reference (references/classification/README.md): SGD momentum "
                "0.9, weight decay 1e-4, global batch 256 (32 x 8 GPUs), 90 epochs, lr/10 every 30 epochs, "
                "RandomResizedCrop 224 and horizontal flips")


def _cifar_resnet(depth: int) -> TrainConfig:
    return TrainConfig(
        recipe=f"resnet{depth}-cifar10",
        source=_HE2015 + (" (ResNet-110: lr 0.01 until training error < 80%, about 400 iterations, here a "
                          "one-epoch warm-up)" if depth >= 110 else ""),
        model=f"resnet{depth}", dataset="cifar10", val_size=5000, crop_padding=4, flip=True,
        iterations=64_000, batch_size=128, eval_batch_size=1000, optimizer="sgd", lr=0.1, momentum=0.9,
        weight_decay=1e-4, schedule="multistep", milestones=[32_000, 48_000], gamma=0.1,
        warmup=1.0 if depth >= 110 else 0.0, log_every=100,
    )


def _imagenet(model: str, lr: float) -> TrainConfig:
    return TrainConfig(
        recipe=f"{model}-imagenet", source=_TORCHVISION + f"; lr {lr} for {model}", model=model,
        dataset="imagefolder", random_resized_crop=224, flip=True, epochs=90, batch_size=256, eval_batch_size=256,
        optimizer="sgd", lr=lr, momentum=0.9, weight_decay=1e-4, schedule="step", step_size=30, gamma=0.1,
        log_every=100, workers=8,
    )


RECIPES: dict[str, TrainConfig] = {
    r.recipe: r
    for r in [
        TrainConfig(
            recipe="lenet5-mnist",
            source=("cnnlab's CPU recipe for the modern LeNet-5 (ReLU, max pooling): official 50k/10k "
                    "train/validation split, SGD with Nesterov momentum and a one-cycle schedule over 4 epochs; reaches "
                    "99% test accuracy in well under a minute on 2 CPU cores"),
            model="lenet5", dataset="mnist", epochs=4, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9,
            nesterov=True, weight_decay=5e-4, schedule="onecycle", log_every=100,
        ),
        TrainConfig(
            recipe="resnet20-fashion-mnist",
            source=("cnnlab's fast Fashion-MNIST recipe: CIFAR ResNet-20 on 1x28x28 images, 5k validation "
                    "carved from training, 2-pixel crops and flips, label smoothing 0.1, one-cycle SGD"),
            model="resnet20", dataset="fashion-mnist", val_size=5000, crop_padding=2, flip=True, epochs=15,
            batch_size=256, optimizer="sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4,
            decay_norm_and_bias=False, schedule="onecycle", label_smoothing=0.1, log_every=50,
        ),
        *[_cifar_resnet(d) for d in (20, 32, 44, 56, 110, 1202)],
        TrainConfig(
            recipe="densenet-bc-100-cifar10",
            source=("Huang, Liu, van der Maaten & Weinberger 2017, Densely Connected Convolutional Networks, "
                    "Sec. 4.2: SGD with Nesterov momentum 0.9, weight decay 1e-4, batch 64, 300 epochs, lr 0.1 "
                    "divided by 10 at 50% and 75% of training, standard augmentation (crop and flip); cnnlab "
                    "carves 5k validation images from the training set"),
            model="densenet_bc100_cifar", dataset="cifar10", val_size=5000, crop_padding=4, flip=True,
            epochs=300, batch_size=64, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4,
            schedule="multistep", milestones=[150, 225], gamma=0.1, log_every=100,
        ),
        _imagenet("alexnet", 0.01),
        _imagenet("vgg16", 0.01),
        _imagenet("resnet50", 0.1),
    ]
}

DEFAULT_RECIPE = "lenet5-mnist"


def get_recipe(name: str) -> TrainConfig:
    try:
        return copy.deepcopy(RECIPES[name])
    except KeyError:
        raise CnnlabError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)} (`cnnlab recipes`)") from None
