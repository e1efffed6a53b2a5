"""One way to say what is wrong in a configuration: a list of problems, each
``<where>: <location>: <what is wrong, and the fix>``.

Every config Hare Run reads goes through it: pipelines, their detectors' and face backends'
params, A/B experiments, the model manifest and the server's ``HARERUN_*`` settings. Unknown
keys get a did-you-mean and the allowed keys; values out of range say the bound and what was
given (at most 200 characters of it).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from harerun.errors import ConfigError
from harerun.host import did_you_mean
from harerun.yamlfile import clip, show

_BOUNDS = {
    "less_than_equal": ("≤", "le"),
    "less_than": ("<", "lt"),
    "greater_than_equal": ("≥", "ge"),
    "greater_than": (">", "gt"),
}


def location(parts: tuple[Any, ...]) -> str:
    """``("detectors", 0, "params", "k")`` -> ``detectors[0].params.k``."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{clip(str(p), 60)}" if out else clip(str(p), 60))
    return out or "(top level)"


def _num(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def describe(err: dict[str, Any], model: type[BaseModel] | None = None) -> str:
    """What is wrong in one pydantic error, in plain words; ``model`` owns the key (for the
    allowed keys of an unknown one)."""
    kind, ctx = err["type"], err.get("ctx") or {}
    got = err.get("input")
    if kind in _BOUNDS:
        sign, key = _BOUNDS[kind]
        return f"must be {sign} {_num(ctx.get(key))} (got {show(got)})"
    if kind == "extra_forbidden":
        allowed = sorted(model.model_fields) if model is not None else []
        hint = did_you_mean(clip(str(err["loc"][-1]), 60), allowed)
        return f"unknown key{hint} (allowed: {', '.join(allowed)})" if allowed else "unknown key"
    if kind == "missing":
        return "is required"
    if kind == "float_type" and isinstance(got, int):  # an integer too large for a float
        return f"is out of range (got {show(got)})"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')} (got {show(got)})"
    msg = err["msg"].rstrip(".")
    return f"{clip(msg[:1].lower() + msg[1:])} (got {show(got)})"


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of ``loc`` (for 'allowed' hints)."""
    current: Any = model
    mapping_key = False  # the next part is a key of a dict[str, Model] field
    for part in loc[:-1]:
        if isinstance(part, int) or mapping_key:
            mapping_key = False
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        current = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if current is None:
            return None
        mapping_key = getattr(ann, "__origin__", None) is dict
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def problems_from(
    exc: ValidationError, where: str, model: type[BaseModel], prefix: tuple[Any, ...] = (), *, name=location
) -> list[str]:
    """The problems of a pydantic ``ValidationError`` raised by ``model``; ``prefix`` is where
    the validated mapping sits in the file, ``name`` turns a location into what the user sees."""
    return [
        f"{where}: {name(prefix + tuple(e['loc']))}: {describe(e, _model_at(model, tuple(e['loc'])))}"
        for e in exc.errors()
    ]


def validate(model: type[BaseModel], data: Any, where: str, what: str, *, error: type[ConfigError] = ConfigError):
    """``model.model_validate(data)``, or ``error`` listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = problems_from(exc, where, model)
        raise error(f"{where}: {len(problems)} problem(s) in the {what}", problems=problems) from None
