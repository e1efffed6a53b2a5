"""Load the acne-grade model once per process (lazily, thread-safe) and run it.

Models come from :class:`harerun.modelstore.ModelStore`. A ``.keras`` or legacy
``.h5`` file is loaded with Keras and called through a ``tf.function`` with a
fixed input shape (``model.predict`` costs tens of ms per call); a ``.tflite``
file runs in the TFLite interpreter (``ai_edge_litert`` when installed, else
``tf.lite``). TensorFlow is imported here, on first use, never at plugin import; it is an
optional install (:data:`TRAIN_EXTRA`), so a Keras model without it is unavailable, with the fix.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harerun.litert import native_stderr_to_log
from harerun.modelstore import LoadedModels, ModelStore, ModelUnavailable, ResolvedModel, record_load

#: After a failed load (e.g. S3 down), wait this long before trying again, so a
#: dead endpoint costs one timeout per interval instead of one per photo.
RETRY_AFTER_S = 30.0
#: What installs TensorFlow, which training and ``.keras``/``.h5`` models need (``.tflite`` ones do not).
TRAIN_EXTRA = "pip install 'harerun-ml-classifier[train]'"


def tensorflow_missing() -> str | None:
    """Why TensorFlow cannot be used here (with the install command), or None when it is installed."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return f"TensorFlow is not installed; {TRAIN_EXTRA} adds it"
    return None


@dataclass
class LoadedModel:
    """A ready-to-run model: ``run(x)`` maps one (S, S, 3) float32 input to (probs, density or None)."""

    resolved: ResolvedModel
    runtime: str
    input_size: int
    channels: int
    run: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
    #: What the model says it was trained on: ``framing``, ``channels``, ``size`` (any may be
    #: missing), from its manifest entry and its ``<stem>.metadata.json``; empty when undeclared.
    declared: dict[str, Any] = field(default_factory=dict)


_MODELS = LoadedModels(RETRY_AFTER_S)


def clear_cache() -> None:
    """Forget loaded models and remembered failures (tests, or after fixing the configuration)."""
    _MODELS.clear()


def get_model(
    spec: str, *, path: str | None = None, runtime: str = "auto", store: ModelStore | None = None
) -> LoadedModel:
    """The loaded model for ``spec`` (or explicit ``path``); raises :class:`ModelUnavailable`."""
    store = store or ModelStore.from_env()
    key = (
        spec,
        path,
        runtime,
        str(store.model_dir),
        str(store.cache_dir),
        store.s3_bucket,
        store.s3_prefix,
        store.s3_endpoint_url,
    )

    def load() -> LoadedModel:
        resolved = store.resolve(spec, path=path)
        model = _load(resolved, runtime)
        model.declared = declaration(resolved, store=None if path else store)
        return model

    return _MODELS.get(key, load)


def declaration(resolved: ResolvedModel, *, store: ModelStore | None = None) -> dict[str, Any]:
    """The input a model declares: ``framing``, ``channels`` (names in order), ``size``, and ``source``.

    From the model store's manifest entry (keys ``framing``, ``channels``, ``size``) when the
    model came from the store, then from ``<stem>.metadata.json`` next to the file (written by
    training; its top-level keys or ``network_data_format.inputs.image``). The manifest wins.
    """
    out: dict[str, Any] = {}
    sources = []
    if store is not None:
        entry = store.entry(resolved.name, resolved.version)
        if entry is not None:
            found = {k: entry.extra[k] for k in ("framing", "channels", "size") if k in entry.extra}
            if found:
                out.update(found)
                sources.append("manifest")
    meta_path = resolved.path.with_name(resolved.path.stem + ".metadata.json")
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            image = meta.get("network_data_format", {}).get("inputs", {}).get("image", {})
            channel_def = image.get("channel_def")
            found = {
                "framing": meta.get("framing", image.get("framing")),
                "channels": meta.get("channels")
                or ([channel_def[k] for k in sorted(channel_def, key=int)] if channel_def else None),
                "size": meta.get("size") or (image.get("shape") or [None])[0],
            }
            found = {k: v for k, v in found.items() if v is not None and k not in out}
            if found:
                out.update(found)
                sources.append(meta_path.name)
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            pass  # an unreadable sidecar declares nothing; the manifest (if any) still counts
    if sources:
        out["source"] = " + ".join(sources)
    return out


def _load(resolved: ResolvedModel, runtime: str) -> LoadedModel:
    suffix = resolved.path.suffix.lower()
    if runtime == "auto":
        runtime = "tflite" if suffix == ".tflite" else "keras"
    if runtime == "keras" and suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelUnavailable(
            f"{resolved.path} is not a .keras or .h5 file (runtime 'keras')",
            name=resolved.name,
            version=resolved.version,
        )
    t0 = time.perf_counter()
    try:
        loaded = _load_tflite(resolved) if runtime == "tflite" else _load_keras(resolved)
        s = loaded.input_size
        loaded.run(np.zeros((s, s, loaded.channels), np.float32))  # warm-up: trace / allocate once, inside load time
    except ModelUnavailable:
        raise
    except Exception as exc:  # a corrupt or incompatible file is a model problem, reported as such
        raise ModelUnavailable(
            f"cannot load {resolved.path} with {runtime}: {type(exc).__name__}: {exc}",
            name=resolved.name,
            version=resolved.version,
        ) from None
    record_load(resolved, (time.perf_counter() - t0) * 1000.0)
    return loaded


def _split_outputs(outputs: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Find the (1, 4) grade probabilities and the optional (1, g, g, 1) density map."""
    if isinstance(outputs, dict):
        items = list(outputs.values())
    elif isinstance(outputs, (list, tuple)):
        items = list(outputs)
    else:
        items = [outputs]
    arrays = [np.asarray(o) for o in items]
    probs = next((a for a in arrays if a.ndim == 2), None)
    density = next((a for a in arrays if a.ndim == 4), None)
    if probs is None or probs.shape[-1] != 4:
        raise ValueError(f"model outputs {[a.shape for a in arrays]}: expected a (1, 4) grade output")
    return probs[0].astype(np.float64), None if density is None else density[0, ..., 0].astype(np.float64)


def _load_keras(resolved: ResolvedModel) -> LoadedModel:
    if why := tensorflow_missing():
        raise ModelUnavailable(
            f"{resolved.path.name} is a Keras model and {why} (or use the model's .tflite file)",
            name=resolved.name,
            version=resolved.version,
        )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    model = keras.models.load_model(resolved.path, compile=False)
    shape = model.inputs[0].shape
    size = int(shape[1])
    fn = tf.function(
        lambda x: model(x, training=False), input_signature=[tf.TensorSpec((1, size, size, int(shape[3])), tf.float32)]
    )

    def run(x: np.ndarray):
        out = fn(tf.constant(x[None]))
        if isinstance(out, dict):
            out = {k: v.numpy() for k, v in out.items()}
        elif isinstance(out, (list, tuple)):
            out = [v.numpy() for v in out]
        else:
            out = out.numpy()
        return _split_outputs(out)

    return LoadedModel(resolved, "keras", size, int(shape[3]), run)


def _interpreter_class(resolved: ResolvedModel):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        if tensorflow_missing():
            raise ModelUnavailable(
                f"neither ai-edge-litert nor TensorFlow is installed: pip install ai-edge-litert (Linux, macOS) "
                f"or {TRAIN_EXTRA}",
                name=resolved.name,
                version=resolved.version,
            ) from None
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import warnings

        import tensorflow as tf

        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        Interpreter = tf.lite.Interpreter
    return Interpreter


def _load_tflite(resolved: ResolvedModel) -> LoadedModel:
    with native_stderr_to_log():  # the runtime's "INFO: Created ... XNNPACK delegate" line
        interpreter = _interpreter_class(resolved)(model_path=str(resolved.path), num_threads=1)
        interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    outs = interpreter.get_output_details()
    size = int(inp["shape"][1])
    lock = threading.Lock()  # an interpreter is not thread-safe

    def run(x: np.ndarray):
        with lock:
            interpreter.set_tensor(inp["index"], np.ascontiguousarray(x[None], dtype=np.float32))  # copies
            interpreter.invoke()
            out = [interpreter.get_tensor(o["index"]).copy() for o in outs]
        return _split_outputs(out)

    return LoadedModel(resolved, "tflite", size, int(inp["shape"][3]), run)


def model_file_kind(path: str | Path) -> str:
    """``keras`` or ``tflite`` by file suffix (what ``runtime='auto'`` picks)."""
    return "tflite" if Path(path).suffix.lower() == ".tflite" else "keras"
