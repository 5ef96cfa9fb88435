r"""Looking inside a trained CNN: what its layers respond to and which pixels its decisions use.

Every function takes a model and a batch of images ``x`` of shape
``(N, C, H, W)`` (a NumPy array or a `Tensor`; one image is ``x[None]``) and
returns NumPy arrays; layers are named as in ``model.named_modules()``
(``"features.0"``). The plotting helpers (``plot_*``) draw those arrays with
matplotlib, an optional extra imported only when they are called.

What each method computes (chapter 16 of ``docs/`` derives them):

- weights: :func:`filters`, :func:`filter_grid` — each filter scaled to [0, 1] on its own;
- activations: :func:`feature_maps`, :func:`top_activations` (the k inputs that excite a
  unit most, with the patch its receptive field sees — :func:`receptive_field`);
- gradients with respect to the input: :func:`saliency` :math:`\max_c |\partial S_t/\partial x_c|`,
  :func:`smoothgrad` (the gradient averaged over noisy copies), :func:`guided_backprop` and
  :func:`deconvnet` (backpropagation with another rule at each ReLU, :func:`relu_backward_rule`);
- perturbation: :func:`occlusion` (the drop of the class probability under a sliding grey patch);
- localisation: :func:`class_activation_map` (GAP-headed networks), :func:`grad_cam` (any layer);
- optimising the input: :func:`activation_maximization` (class models, units) and
  :func:`invert_representation` (an image whose representation matches a given one);
- representations of a data set: :func:`layer_features`, :func:`pca`, :func:`tsne`,
  :func:`knn_accuracy`, :func:`linear_probe_accuracy`, :func:`layer_separability`.

Everything that runs the model does it in evaluation mode (batch norm with its
running statistics, no dropout — otherwise the images of a batch would influence
each other's explanations) and restores each module's mode afterwards. Gradients
are taken with ``tinygrad_cv.grad``, so parameters' ``.grad`` are left untouched.

Where the code lives (one module per kind of method; this package re-exports them all):

- ``layers.py``: :func:`receptive_field`, :func:`receptive_field_patches`, :func:`filters`,
  :func:`image_grid`, :func:`filter_grid`, :func:`feature_maps`, :func:`top_activations`;
- ``gradients.py``: :func:`input_gradient`, :func:`saliency`, :func:`smoothgrad`,
  :func:`relu_backward_rule`, :func:`guided_backprop`, :func:`deconvnet`;
- ``localization.py``: :func:`occlusion`, :func:`resize`, :func:`class_activation_map`, :func:`grad_cam`;
- ``optimize.py``: :func:`gaussian_blur`, :func:`total_variation`, :func:`activation_maximization`,
  :func:`invert_representation`;
- ``embeddings.py``: :func:`layer_features`, :func:`pca`, :func:`tsne`, :func:`knn_accuracy`,
  :func:`linear_probe_accuracy`, :func:`layer_separability`;
- ``plots.py``: :func:`plot_images`, :func:`plot_filters`, :func:`plot_overlay`, :func:`plot_embeddings`
  (the only module that imports matplotlib);
- ``_common.py``: :func:`get_layer` and the argument checks, evaluation mode and hooks the others share.
"""
from ._common import get_layer
from .embeddings import knn_accuracy, layer_features, layer_separability, linear_probe_accuracy, pca, tsne
from .gradients import deconvnet, guided_backprop, input_gradient, relu_backward_rule, saliency, smoothgrad
from .layers import (
    ReceptiveField, TopActivations, feature_maps, filter_grid, filters, image_grid, receptive_field,
    receptive_field_patches, top_activations,
)
from .localization import class_activation_map, grad_cam, occlusion, resize
from .optimize import activation_maximization, gaussian_blur, invert_representation, total_variation
from .plots import plot_embeddings, plot_filters, plot_images, plot_overlay

__all__ = [
    "get_layer", "ReceptiveField", "receptive_field",
    "filters", "filter_grid", "image_grid", "feature_maps", "TopActivations", "top_activations",
    "receptive_field_patches",
    "input_gradient", "saliency", "smoothgrad", "relu_backward_rule", "guided_backprop", "deconvnet",
    "occlusion", "class_activation_map", "grad_cam", "resize",
    "gaussian_blur", "total_variation", "activation_maximization", "invert_representation",
    "layer_features", "pca", "tsne", "knn_accuracy", "linear_probe_accuracy", "layer_separability",
    "plot_images", "plot_filters", "plot_overlay", "plot_embeddings",
]
