"""A/B experiments: weighted, sticky assignment of callers to pipeline variants.

``pipelines/experiments.yaml``::

    schema_version: 1
    experiments:
      skin-ab:                 # callers ask for pipeline "skin-ab"
        variants:
          - {name: A, pipeline: default, weight: 50}
          - {name: B, pipeline: fast, weight: 50}

The same key always gets the same variant: the variant is chosen from
SHA-256(experiment name + key), so assignment needs no stored state and is the
same on every worker and machine. The key is the caller's subject id; the HTTP API
assigns a request without one by the photo's SHA-256 (:func:`photo_key`), so such
requests still split by the weights, and the same photo always gets the same variant.
Results and logs never show a subject id, only :func:`subject_hash` of it.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harerun.errors import PipelineError
from harerun.problems import validate
from harerun.yamlfile import YamlFileError, load_yaml


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    pipeline: str = Field(min_length=1, description="pipeline name in the pipelines directory")
    weight: float = Field(gt=0, description="relative share of callers")


class Experiment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    variants: list[Variant] = Field(min_length=1)

    @field_validator("variants")
    @classmethod
    def _unique(cls, variants: list[Variant]) -> list[Variant]:
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique (got {names})")
        return variants

    def assign(self, experiment: str, key: str) -> Variant:
        """The variant for ``key``: sticky (hash-based) and weighted."""
        digest = hashlib.sha256(f"{experiment}\x00{key}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
        total = sum(v.weight for v in self.variants)
        edge = 0.0
        for variant in self.variants:
            edge += variant.weight / total
            if u < edge:
                return variant
        return self.variants[-1]


class ExperimentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1]
    experiments: dict[str, Experiment] = Field(default_factory=dict)


def load_experiments(path: Path) -> ExperimentsFile:
    """Load an experiments file; a missing file means no experiments."""
    if not path.is_file():
        return ExperimentsFile(schema_version=1)
    try:
        data = load_yaml(path)
    except YamlFileError as exc:
        raise PipelineError(str(exc)) from None
    return validate(ExperimentsFile, data, path.name, "experiments file", error=PipelineError)


#: How a request to an experiment got its variant: by its subject id, or by its photo's hash.
AssignedBy = Literal["subject_id", "photo"]


def photo_key(photo: bytes) -> str:
    """The assignment key of a request that names no subject: the photo's SHA-256."""
    return "photo:" + hashlib.sha256(photo).hexdigest()


def subject_hash(subject_id: str, secret: str = "") -> str:
    """What results show instead of a subject id: HMAC-SHA256 of it (hex) under ``secret``.

    Without a secret anyone can hash a guessed id (``user-42``) and compare; a server sets one
    (``HARERUN_SUBJECT_HASH_SECRET``) so that only it can tell which subject a hash stands for.
    """
    return hmac.new(f"harerun-subject:{secret}".encode(), subject_id.encode(), hashlib.sha256).hexdigest()
