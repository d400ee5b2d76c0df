"""Keras frontend: a trained Keras 3 model (``.keras`` / ``.h5`` file or ``keras.Model``) to a
float :class:`nnhdl.ir.Graph`.

TensorFlow/Keras are imported only inside the functions here, so ``import nnhdl`` and
``import nnhdl.frontend.keras`` stay fast and work without them installed. This module reads
the file and walks the model; the layer-to-op translation below is
:class:`nnhdl.frontend.common._Builder`, which the HGQ2 frontend (:mod:`nnhdl.frontend.hgq`)
extends.

The model must be a single chain of layers (a ``Sequential`` model, or a functional model whose
layers each read the previous one). Supported layers and what they become:

================================  ===========================================================
Keras layer                       IR op(s)
================================  ===========================================================
``InputLayer``                    :class:`~nnhdl.ir.Input`
``Dense``                         :class:`~nnhdl.ir.Dense` (activation linear, relu,
                                  leaky_relu fused; ``softmax`` becomes a linear Dense with
                                  ``result_key="logits"`` followed by a Softmax op named
                                  ``<layer>_softmax`` whose origin is the Dense layer)
``Activation``                    :class:`~nnhdl.ir.Activation` or :class:`~nnhdl.ir.Softmax`
``ReLU``, ``LeakyReLU``           :class:`~nnhdl.ir.Activation`
``Softmax``                       :class:`~nnhdl.ir.Softmax` (last axis only)
``BatchNormalization``            :class:`~nnhdl.ir.BatchNorm` (last axis only; folded into the
                                  layer before or after it, or made a per-channel scale and
                                  shift by :func:`nnhdl.passes.fold_batchnorm`)
``Dropout`` and the other layers  :class:`~nnhdl.ir.Dropout` (identity at inference)
that are the identity at
inference (:data:`NOOP_LAYERS`)
``Flatten``                       :class:`~nnhdl.ir.Flatten`
``Reshape``                       :class:`~nnhdl.ir.Reshape`
``Conv1D``, ``Conv2D``            :class:`~nnhdl.ir.Conv` (padding ``valid``, ``same``, and
                                  ``causal`` for Conv1D; any strides; activation fused)
``DepthwiseConv2D``               :class:`~nnhdl.ir.Conv` with a block-diagonal weight
``SeparableConv2D``               a depthwise :class:`~nnhdl.ir.Conv` named
                                  ``<layer>_depthwise`` (its own config entry), then the 1x1
                                  pointwise :class:`~nnhdl.ir.Conv` named ``<layer>``
``MaxPooling1D/2D``,              :class:`~nnhdl.ir.Pool` (``same`` padding is excluded from
``AveragePooling1D/2D``           the windows, as in Keras)
``GlobalMaxPooling1D/2D``,        :class:`~nnhdl.ir.Pool` over the whole image (not
``GlobalAveragePooling1D/2D``     ``keepdims``)
``ZeroPadding1D/2D``              :class:`~nnhdl.ir.Pad`
================================  ===========================================================

Weights, biases, slopes and BatchNormalization statistics must be finite, and moving variances
non-negative: anything else stops with an error naming the layer.

Convolutions and pooling need ``data_format="channels_last"`` and a dilation rate of 1 (and
``groups=1``); anything else stops with an error naming the layer and the argument.

Every op's ``origin`` is the Keras layer name, which is also the name used in
``[layer.NAME]`` tables of the precision configuration.

The input op is named after the Keras ``InputLayer``, except that names Keras generates by
itself (``input``, ``input_<n>``, ``input_layer``, ``input_layer_<n>``; the number depends on
how many models the Python session built before) all become ``"input"`` (unless another layer
is called ``input``: then the Keras name is kept). A ``Sequential``
model built without an explicit ``keras.Input`` therefore has an input op ``"input"``, and its
input format is configured with ``[layer.input]``.

The ``leaky_relu`` activation given by name (``activation="leaky_relu"``) has Keras' default
negative slope of :func:`keras.activations.leaky_relu` (0.2 in Keras 3, read from its
signature); the ``LeakyReLU`` layer's own default is 0.3 and is read from the layer.
"""

import os
from pathlib import Path

import numpy as np

from ..ir import Graph
from ..names import verilog_name
from .common import (INPUT_NAME, NOOP_LAYERS, SUPPORTED_ACTIVATIONS, SUPPORTED_LAYERS,  # noqa: F401 (re-exported)
                     FrontendError, _Builder, _import_keras, _leaky_relu_default, _quiet_native_stderr)
from .hgq import HgqBuilder, check_file_not_qkeras, import_hgq, is_hgq_model

__all__ = ["load", "keras_predict", "FrontendError", "SUPPORTED_LAYERS", "NOOP_LAYERS",
           "SUPPORTED_ACTIVATIONS", "SUFFIXES"]

#: File name suffixes :func:`load` reads.
SUFFIXES = (".keras", ".h5", ".hdf5")


def _brief(error, limit=300):
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return f"{type(error).__name__}: {text}"


def _read_model(path):
    """``keras.models.load_model`` with clear errors for a missing / wrong / unreadable file."""
    path = Path(path)
    if not path.exists():
        raise FrontendError(f"{path}: no such file")
    if path.suffix.lower() not in SUFFIXES:
        raise FrontendError(f"{path}: expected a Keras model file ending in .keras or .h5 "
                            f"(save it with model.save('model.keras')), not {path.suffix or 'no suffix'!r}")
    if not path.is_file():
        raise FrontendError(f"{path}: is a directory, not a .keras or .h5 file")
    _check_container(path)
    hgq_model = check_file_not_qkeras(path)
    keras = _import_keras()
    if hgq_model:
        import_hgq(path)
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as e:  # Keras raises many kinds (OSError, ValueError, BadZipFile, TypeError...)
        detail = _brief(e)
        if "File not found" in detail:  # Keras' words for any .keras it cannot open; the file exists
            detail = "not a readable .keras zip archive"
        raise FrontendError(f"{path}: could not be read as a Keras model ({detail}); it is damaged or was saved "
                            "by another program: save the model again with model.save(...)") from e


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _check_container(path):
    """Refuse a file that cannot be a Keras model before Keras sees it (Keras reports a corrupt
    ``.keras`` as "File not found"): a ``.keras`` file is a zip archive holding ``config.json``,
    an ``.h5`` file starts with the HDF5 signature (at offset 0, 512, 1024, ...)."""
    import zipfile
    again = "it is damaged or not a Keras model; save the model again with model.save(...)"
    try:
        if path.suffix.lower() == ".keras":
            if not zipfile.is_zipfile(path):
                raise FrontendError(f"{path}: not a .keras file (a .keras file is a zip archive; this one is not): "
                                    f"{again}")
            try:
                with zipfile.ZipFile(path) as archive:
                    names = archive.namelist()
            except (zipfile.BadZipFile, EOFError) as e:
                raise FrontendError(f"{path}: a damaged zip archive ({e}): {again}") from None
            if "config.json" not in names:
                raise FrontendError(f"{path}: a zip archive without the config.json of a .keras model: {again}")
        else:
            size = path.stat().st_size
            with open(path, "rb") as f:
                offsets = [0] + [512 << k for k in range(20) if (512 << k) + 8 <= size]
                found = False
                for offset in offsets:
                    f.seek(offset)
                    if f.read(8) == _HDF5_SIGNATURE:
                        found = True
                        break
            if not found:
                raise FrontendError(f"{path}: not an HDF5 file (no HDF5 signature): {again}")
    except OSError as e:
        raise FrontendError(f"{path}: cannot be read ({e.strerror or e}); check its permissions") from None


_sanitize = verilog_name  # the one sanitiser (nnhdl.names)




def _chain_error(builder, detail):
    prefix = f"{builder.source}: " if builder.source else ""
    return FrontendError(f"{prefix}{detail}; only sequential chains of layers (each layer reading the "
                         f"previous one, one input and one output) are supported for now")


def _walk(keras, model, builder):
    """Add the model's input and layers to ``builder``, checking the model is one chain."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError) as e:
        prefix = f"{builder.source}: " if builder.source else ""
        raise FrontendError(f"{prefix}model {model.name!r} has no defined input ({_brief(e)}); build it with "
                            f"a keras.Input(shape=...) first layer or model.build((None, n))") from None
    if len(inputs) != 1 or len(outputs) != 1:
        raise _chain_error(builder, f"model {model.name!r} has {len(inputs)} inputs and {len(outputs)} outputs")
    in_shape = tuple(inputs[0].shape)[1:]

    if isinstance(model, keras.Sequential):
        # Sequential.layers omits the InputLayer; the model config names it (Keras always
        # creates one when the model is built).
        first = model.get_config()["layers"][0]
        in_name = first["config"].get("name", INPUT_NAME) if first.get("class_name") == "InputLayer" else INPUT_NAME
        builder.input(in_name, in_shape)
        for layer in model.layers:
            builder.layer(layer)
        return

    layers = list(model.layers)
    if not layers or type(layers[0]).__name__ != "InputLayer":
        raise _chain_error(builder, f"model {model.name!r} does not start with its InputLayer")
    builder.input(layers[0].name, in_shape, layers[0])
    for prev, layer in zip(layers, layers[1:]):
        try:
            reads_prev = layer.input is prev.output
        except (AttributeError, ValueError):
            reads_prev = False
        if not reads_prev:
            raise _chain_error(builder, f"layer {layer.name!r} ({type(layer).__name__}) does not read only "
                                        f"the layer before it, {prev.name!r}")
        builder.layer(layer)
    if outputs[0] is not layers[-1].output:
        raise _chain_error(builder, f"the output of model {model.name!r} is not the output of its last layer "
                                    f"{layers[-1].name!r} (a layer used twice, or unused layers)")


def _model_and_source(model):
    """``(keras.Model, source)``: the path's checks run before TensorFlow is imported."""
    if isinstance(model, (str, os.PathLike)):
        return _read_model(model), str(model)
    keras = _import_keras()
    if isinstance(model, keras.Model):
        return model, ""
    raise FrontendError(f"expected a path to a .keras or .h5 file or a keras.Model, not {type(model).__name__}")


def load(model) -> Graph:
    """A float :class:`~nnhdl.ir.Graph` from a Keras model.

    ``model``: a path (``str`` or :class:`~pathlib.Path`) to a ``.keras`` or ``.h5`` file, or a
    ``keras.Model``. Raises :class:`FrontendError` for a missing or unreadable file, a model that
    is not a single chain, and unsupported layers, activations or arguments.
    """
    kmodel, source = _model_and_source(model)
    keras = _import_keras()
    builder = (HgqBuilder if is_hgq_model(kmodel) else _Builder)(keras, source, [layer.name for layer in kmodel.layers])
    _walk(keras, kmodel, builder)
    ops = tuple(builder.ops)
    return Graph(ops=ops, outputs=(ops[-1].name,), name=_sanitize(kmodel.name),
                 meta={"source": source or "<keras.Model>", "framework": f"keras {keras.__version__}"})


def keras_predict(model_or_path, x) -> np.ndarray:
    """The float outputs Keras computes for inputs ``x`` (shape ``(N, *input_shape)``), for
    comparing with the fixed-point reference."""
    model, _ = _model_and_source(model_or_path)
    x = np.asarray(x, dtype=np.float32)
    return np.asarray(model.predict(x, verbose=0, batch_size=max(1, min(len(x), 4096))))
