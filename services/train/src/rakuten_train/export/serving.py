"""Export a bundle's Keras model to the TensorFlow-free runtime (``serving/`` in the bundle).

The Keras model's string layers (text normalisation, character n-grams, ``TextVectorization``)
need TensorFlow, which costs about 9 CPU seconds to import in every serving worker and batch
run. :func:`export_serving` splits the model where the strings become numbers:

- ``serving/text.json``: the vocabularies and settings of the string layers
  (:class:`rakuten_core.text_spec.TextSpec`), which
  :class:`rakuten_core.text_vectors.TextVectors` applies in Python and NumPy;
- ``serving/wide.npz``: when the n-gram counts feed sublinear TF-IDF layers and one Dense
  layer (the model's wide part), that layer's weights and the IDF weights: the wide part is
  computed sparse, on the n-grams a listing has (:class:`rakuten_core.text_wide.WideLayer`),
  instead of as ``(N, 120,000)`` dense tensors in ONNX Runtime;
- ``serving/model.onnx``: the rest of the model (embedding, LSTM, CNN, fusion), from the
  vectorisers' or the wide part's outputs and the image inputs to the probabilities, converted
  with tf2onnx and run by ONNX Runtime.

The split is found from the graph (the ``TextVectorization`` layers and the tensors the image
inputs become), not from layer names, and the export checks the runtime's probabilities against
the Keras model's on a few products before it writes anything. Imports TensorFlow, Keras and
tf2onnx: training only (:func:`rakuten_train.export.bundle.save_bundle`, and
``rakuten-train export`` for a bundle saved without ``serving/``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np
import onnx
import onnx.compose
import tensorflow as tf
import tf2onnx
from keras.layers import InputLayer, TextVectorization
from onnx import TensorProto, helper, numpy_helper

from rakuten_core.bundle import ONNX_FILE, SERVING_DIR, TEXT_SPEC_FILE, WIDE_FILE, OnnxRuntime
from rakuten_core.errors import BundleError
from rakuten_core.inputs import HAS_IMAGE_INPUT, IMAGE_INPUT, TEXT_INPUT, model_inputs
from rakuten_core.text_spec import (
    INPUT_NAMES,
    WIDE_FEATURES,
    CharNgramSpec,
    TextSpec,
    Vocabulary,
    WideRole,
    WideSpec,
)
from rakuten_train.layers import CharNgrams, ModalityDropout, SublinearTfIdf, TextNormalizer

ONNX_OPSET = 17
# the export is refused when the two runtimes differ by more than this on any probability
EXPORT_TOLERANCE = 1e-4
# products the export is checked on: accents, punctuation, a no-break space, casing, nothing
CHECK_TEXTS = (
    "Piscine tubulaire ronde 3,66 x 0,76 m",
    "ÉTÉ Jeu de société : « Les Aventuriers du Rail » – édition 2024 !",
    "Coque iPhone\u00a012 silicone, noir/rouge  (lot de 2)",
    "",
    "Lampe LED 220V E27 - 10W ~ blanc chaud... 100% neuf",
)


def _vectorizer_role(layer: Any) -> tuple[str, bool]:
    """``(role, normalized)``: what the vectoriser counts, and whether its text is normalised."""

    config = layer.get_config()
    if config.get("standardize") is not None or config.get("split") != "whitespace":
        raise BundleError(f"{layer.name}: only standardize=None, split='whitespace' export")
    mode = config.get("output_mode")
    if mode not in ("int", "count", "multi_hot", "tf_idf"):
        raise BundleError(f"{layer.name}: output_mode {mode!r} not exported")
    if config.get("pad_to_max_tokens") or config.get("sparse") or config.get("ragged"):
        raise BundleError(f"{layer.name}: padded to max_tokens, sparse or ragged: not exported")
    if mode == "int" and not config.get("output_sequence_length"):
        raise BundleError(f"{layer.name}: int mode without output_sequence_length: not exported")
    source = layer.input._keras_history.operation  # a functional model calls each layer once
    if isinstance(source, CharNgrams):
        if mode == "int":
            raise BundleError(f"{layer.name}: character n-gram ids (int mode) are not exported")
        return "chars", True
    if isinstance(source, TextNormalizer):
        normalized = True
    elif isinstance(source, InputLayer | ModalityDropout):
        normalized = False
    else:
        raise BundleError(f"{layer.name} reads {source.name}, which the export does not know")
    return ("sequences" if mode == "int" else "words"), normalized


def text_spec(model: Any) -> tuple[TextSpec, dict[str, Any]]:
    """The model's string layers as a :class:`TextSpec`, and each vectoriser's output tensor."""

    vocabularies: dict[str, Vocabulary] = {}
    outputs: dict[str, Any] = {}
    char_spec: CharNgramSpec | None = None
    for layer in model.layers:
        if isinstance(layer, CharNgrams):
            config = layer.get_config()
            char_spec = CharNgramSpec(
                min_n=config["min_n"],
                max_n=config["max_n"],
                max_chars=config["max_chars"],
                word_bounded=config.get("word_bounded", False),
            )
        if not isinstance(layer, TextVectorization):
            continue
        role, normalized = _vectorizer_role(layer)
        if role in vocabularies:
            raise BundleError(f"two {role} vectorisers ({layer.name}): not exported")
        config = layer.get_config()
        ngrams = config.get("ngrams") or 1
        if isinstance(ngrams, list | tuple):
            if list(ngrams) != list(range(1, len(ngrams) + 1)):
                raise BundleError(f"{layer.name}: ngrams {ngrams} not exported (only 1..n)")
            ngrams = len(ngrams)
        if role == "sequences" and int(ngrams) > 1:
            raise BundleError(f"{layer.name}: n-gram ids (int mode) are not exported")
        vocabularies[role] = Vocabulary(
            tokens=[str(t) for t in layer.get_vocabulary()],
            mode=config["output_mode"],
            ngrams=int(ngrams),
            sequence_length=config.get("output_sequence_length"),
            normalized=normalized,
            idf=_idf(layer) if config["output_mode"] == "tf_idf" else None,
        )
        outputs[role] = layer.output
    if "chars" in vocabularies and char_spec is None:
        raise BundleError("a character vectoriser without CharNgrams: not exported")
    spec = TextSpec(
        sequences=vocabularies.get("sequences"),
        words=vocabularies.get("words"),
        chars=vocabularies.get("chars"),
        char_ngrams=char_spec if "chars" in vocabularies else None,
    )
    return spec, outputs


def _idf(layer: Any) -> list[float]:
    # Keras keeps the IDF weights of a tf_idf vectoriser in its lookup layer, with no getter
    weights = np.asarray(layer._lookup_layer.idf_weights, dtype=np.float32)
    if weights.shape != (int(layer.vocabulary_size()),):
        raise BundleError(f"{layer.name}: IDF weights of shape {weights.shape} not exported")
    return [float(w) for w in weights]


def _wide_part(model: Any, spec: TextSpec, outputs: dict[str, Any]) -> _Wide | None:
    """The wide part, when every n-gram count vectoriser feeds ``Reshape`` then
    ``SublinearTfIdf``, and those (through one ``Concatenate`` and any ``Dropout``, an identity
    at inference) feed one relu or linear ``Dense``: what :class:`WideLayer` computes; else
    ``None`` (the export then keeps the wide part in the ONNX graph)."""

    def source(tensor: Any) -> Any:
        return tensor._keras_history.operation

    roles: tuple[WideRole, ...] = ("words", "chars")
    counted = {source(outputs[role]): role for role in roles if role in outputs}
    if not counted or any(getattr(spec, role).mode != "count" for role in counted.values()):
        return None
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Dense) or not layer.use_bias:
            continue
        activation = layer.get_config()["activation"]
        if activation not in ("relu", "linear"):
            continue
        feeder = source(layer.input)
        while isinstance(feeder, keras.layers.Dropout):
            feeder = source(feeder.input)
        if isinstance(feeder, keras.layers.Concatenate):
            branches = [source(t) for t in feeder.input] if feeder.axis in (-1, 1) else []
        else:
            branches = [feeder]
        idf: dict[WideRole, Any] = {}
        for branch in branches:
            reshape = source(branch.input) if isinstance(branch, SublinearTfIdf) else None
            if (
                not isinstance(reshape, keras.layers.Reshape)
                or source(reshape.input) not in counted
            ):
                break
            idf[counted[source(reshape.input)]] = branch.idf.numpy()
        else:
            if len(idf) == len(branches) and set(idf) == set(counted.values()):
                kernel, bias = layer.get_weights()
                arrays = {f"idf_{role}": w for role, w in idf.items()}
                arrays |= {"kernel": kernel, "bias": bias}
                return _Wide(layer, WideSpec(parts=list(idf), activation=activation), arrays)
    return None


class _Wide(NamedTuple):
    dense: Any  # the Dense layer whose output the ONNX graph takes
    spec: WideSpec
    arrays: dict[str, Any]  # serving/wide.npz


def _image_tensors(model: Any) -> tuple[Any, Any]:
    """The tensors the image inputs become (after ModalityDropout, an identity at inference)."""

    image = model.get_layer(IMAGE_INPUT).output
    has_image = model.get_layer(HAS_IMAGE_INPUT).output
    for layer in model.layers:
        if isinstance(layer, ModalityDropout):
            return layer.output[1], layer.output[2]
    return image, has_image


def numeric_model(model: Any, cuts: dict[str, Any]) -> Any:
    """The part of ``model`` from the tensors ``cuts`` (named ONNX inputs) to its output."""

    try:
        return keras.Model(list(cuts.values()), model.outputs[0], name=f"{model.name}_numeric")
    except ValueError as exc:  # "graph disconnected": a string reaches the output otherwise
        raise BundleError(f"the model cannot be split after its text layers: {exc}") from exc


LSTM_FEATURES = "lstm_features"


def _recurrent_part(model: Any, tokens: Any) -> tuple[Any, Any] | None:
    """``(embedding, rnn)`` when the token ids feed a masked Embedding then one LSTM (or a
    Bidirectional LSTM) that ONNX's own ``LSTM`` operator computes the same way; else ``None``.

    tf2onnx turns Keras' masked LSTM into a generic ``Loop`` that ONNX Runtime runs step by step
    (60 % of the model's time); the ``LSTM`` operator with per-row sequence lengths is the same
    computation for right-padded ids (``TextVectorization`` pads at the end).
    """

    for layer in model.layers:
        if not isinstance(layer, keras.layers.Bidirectional | keras.layers.LSTM):
            continue
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        if any(str(t.dtype) != "bool" for t in inputs[1:]):  # only the mask may come along
            return None  # (initial states given: not this shape)
        source = inputs[0]._keras_history.operation
        if not isinstance(source, keras.layers.Embedding) or not source.mask_zero:
            return None
        feeder = source.input._keras_history.operation
        while isinstance(feeder, keras.layers.Reshape):
            feeder = feeder.input._keras_history.operation
        if feeder is not tokens._keras_history.operation:
            return None
        cells = (
            [layer.forward_layer, layer.backward_layer]
            if isinstance(layer, keras.layers.Bidirectional)
            else [layer]
        )
        for cell in cells:
            config = cell.get_config()
            if (
                not isinstance(cell, keras.layers.LSTM)
                or config["activation"] != "tanh"
                or config["recurrent_activation"] != "sigmoid"
                or not config["use_bias"]
                or config["return_sequences"]
                or config["return_state"]
                or config["stateful"]
            ):
                return None
        if isinstance(layer, keras.layers.Bidirectional) and (
            layer.merge_mode != "concat" or layer.backward_layer.go_backwards is not True
        ):
            return None
        if isinstance(layer, keras.layers.LSTM) and layer.go_backwards:
            return None
        return source, layer
    return None


def _lstm_onnx(embedding: Any, rnn: Any, sequence_length: int, template: Any) -> Any:
    """An ONNX model: ``tokens`` (N, L) int64 -> ``lstm_features``, the Keras layers' output.

    Keras orders an LSTM's gates i, f, c, o in its kernels, ONNX i, o, f, c; Keras has one bias,
    ONNX an input and a recurrent one (the latter zero). A row without any token (L = 0) gets
    length 1 and its output is zeroed, as Keras leaves the state of a fully masked row at zero.
    """

    cells = (
        [rnn.forward_layer, rnn.backward_layer]
        if isinstance(rnn, keras.layers.Bidirectional)
        else [rnn]
    )
    units = int(cells[0].units)

    def reorder(matrix: Any) -> Any:  # (..., 4H) i f c o -> (4H, ...) i o f c
        i, f, c, o = np.split(np.asarray(matrix, dtype=np.float32), 4, axis=-1)
        return np.concatenate([i, o, f, c], axis=-1).T

    w = np.stack([reorder(cell.cell.kernel.numpy()) for cell in cells])
    r = np.stack([reorder(cell.cell.recurrent_kernel.numpy()) for cell in cells])
    b = np.stack(
        [
            np.concatenate([reorder(cell.cell.bias.numpy()[None, :])[:, 0], np.zeros(4 * units)])
            for cell in cells
        ]
    ).astype(np.float32)
    table = np.asarray(embedding.embeddings.numpy(), dtype=np.float32)
    p = "rakuten_lstm_"
    init = [
        numpy_helper.from_array(table, p + "table"),
        numpy_helper.from_array(w, p + "W"),
        numpy_helper.from_array(r, p + "R"),
        numpy_helper.from_array(b, p + "B"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), p + "zero"),
        numpy_helper.from_array(np.array(0, dtype=np.int32), p + "zero_i"),
        numpy_helper.from_array(np.array(1, dtype=np.int32), p + "one"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), p + "axis1"),
        numpy_helper.from_array(np.array([-1, len(cells) * units], dtype=np.int64), p + "shape"),
    ]
    nodes = [
        helper.make_node("Gather", [p + "table", "tokens"], [p + "embedded"]),
        helper.make_node("Transpose", [p + "embedded"], [p + "x"], perm=[1, 0, 2]),
        helper.make_node("Equal", ["tokens", p + "zero"], [p + "pad"]),
        helper.make_node("Not", [p + "pad"], [p + "valid"]),
        helper.make_node("Cast", [p + "valid"], [p + "valid_i"], to=TensorProto.INT32),
        helper.make_node("ReduceSum", [p + "valid_i", p + "axis1"], [p + "len"], keepdims=0),
        helper.make_node("Max", [p + "len", p + "one"], [p + "len1"]),
        helper.make_node(
            "LSTM",
            [p + "x", p + "W", p + "R", p + "B", p + "len1"],
            ["", p + "h"],
            hidden_size=units,
            direction="bidirectional" if len(cells) == 2 else "forward",
        ),
        helper.make_node("Transpose", [p + "h"], [p + "h_t"], perm=[1, 0, 2]),
        helper.make_node("Reshape", [p + "h_t", p + "shape"], [p + "features"]),
        helper.make_node("Greater", [p + "len", p + "zero_i"], [p + "any"]),
        helper.make_node("Cast", [p + "any"], [p + "any_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", [p + "any_f", p + "axis1"], [p + "keep"]),
        helper.make_node("Mul", [p + "features", p + "keep"], [LSTM_FEATURES]),
    ]
    graph = helper.make_graph(
        nodes,
        "rakuten_lstm",
        [helper.make_tensor_value_info("tokens", TensorProto.INT64, [None, sequence_length])],
        [
            helper.make_tensor_value_info(
                LSTM_FEATURES, TensorProto.FLOAT, [None, len(cells) * units]
            )
        ],
        init,
    )
    return helper.make_model(
        graph, opset_imports=list(template.opset_import), ir_version=template.ir_version
    )


def export_serving(
    model_file: Path, target: Path, image_size: int, *, sparse_wide: bool = True
) -> None:
    """Write ``target/serving/{model.onnx,text.json}`` (and ``wide.npz``) for the saved
    ``model_file``, checked. ``sparse_wide=False`` keeps the wide part inside the ONNX graph, as
    exports before ``wide.npz`` did.

    The model is loaded again from the file (as serving would): the split builds a new model
    over the same layers, which must not touch the caller's model (Keras would then fail to
    save it again), and the export is then of exactly what the bundle holds.
    """

    model = keras.saving.load_model(model_file, compile=False, safe_mode=True)
    spec, outputs = text_spec(model)
    image, has_image = _image_tensors(model)
    cuts = {INPUT_NAMES[role]: tensor for role, tensor in outputs.items()}
    wide = _wide_part(model, spec, outputs) if sparse_wide else None
    if wide is not None:  # the ONNX graph starts after the wide part's Dense layer
        cuts = {name: t for name, t in cuts.items() if name == INPUT_NAMES["sequences"]}
        cuts[WIDE_FEATURES] = wide.dense.output
        spec = spec.model_copy(update={"wide": wide.spec})
    recurrent = _recurrent_part(model, outputs["sequences"]) if "sequences" in outputs else None
    if recurrent is not None:  # the LSTM runs as ONNX's LSTM operator, before the rest
        del cuts["tokens"]
        cuts = {LSTM_FEATURES: recurrent[1].output, **cuts}
    cuts |= {IMAGE_INPUT: image, HAS_IMAGE_INPUT: has_image}
    sub = numeric_model(model, cuts)
    signature = [
        tf.TensorSpec(tuple(t.shape), tf.as_dtype(t.dtype), name=name)
        for t, name in zip(sub.inputs, cuts, strict=True)
    ]

    @tf.function(input_signature=signature)  # type: ignore[misc]  # tf is untyped
    def forward(*tensors: Any) -> Any:
        return {"probabilities": sub(list(tensors), training=False)}

    graph, _ = tf2onnx.convert.from_function(forward, input_signature=signature, opset=ONNX_OPSET)
    if recurrent is not None:
        assert spec.sequences is not None and spec.sequences.sequence_length  # it has tokens
        lstm = _lstm_onnx(*recurrent, spec.sequences.sequence_length, graph)
        graph = onnx.compose.merge_models(lstm, graph, io_map=[(LSTM_FEATURES, LSTM_FEATURES)])
    out_dir = target / SERVING_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save_model(graph, str(out_dir / ONNX_FILE))
    if wide is not None:
        arrays: dict[str, Any] = {k: np.asarray(a, np.float32) for k, a in wide.arrays.items()}
        np.savez(out_dir / WIDE_FILE, **arrays)
    (out_dir / TEXT_SPEC_FILE).write_text(spec.model_dump_json() + "\n", encoding="utf-8")
    _check_export(model, out_dir, image_size)


def _check_export(model: Any, serving_dir: Path, image_size: int) -> None:
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8) if i % 2 else None
        for i in range(len(CHECK_TEXTS))
    ]
    inputs = model_inputs(list(CHECK_TEXTS), images, image_size=image_size)
    expected = np.asarray(model.predict_on_batch(inputs), dtype=np.float32)
    got = OnnxRuntime.load(serving_dir).predict_proba(inputs)
    gap = float(np.abs(expected - got).max())
    if not gap <= EXPORT_TOLERANCE:
        raise BundleError(
            f"the exported runtime differs from the Keras model by {gap:.2e} "
            f"(tolerance {EXPORT_TOLERANCE:.0e}) on {TEXT_INPUT!r} check products"
        )
    (serving_dir / "check.json").write_text(
        json.dumps({"max_abs_difference": gap, "products": len(CHECK_TEXTS)}) + "\n",
        encoding="utf-8",
    )
