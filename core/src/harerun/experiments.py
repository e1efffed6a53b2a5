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
same on every worker and machine.
"""

from __future__ import annotations

import hashlib
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
