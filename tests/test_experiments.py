"""A/B assignment: sticky per key and faithful to the weights."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from harerun.errors import PipelineError
from harerun.experiments import Experiment, Variant, load_experiments


def test_same_key_same_variant_and_keys_spread():
    exp = Experiment(
        variants=[Variant(name="A", pipeline="default", weight=1), Variant(name="B", pipeline="fast", weight=1)]
    )
    first = [exp.assign("e", f"user-{i}").name for i in range(200)]
    again = [exp.assign("e", f"user-{i}").name for i in range(200)]
    assert first == again
    assert set(first) == {"A", "B"}


@pytest.mark.parametrize("weights", [(50, 50), (90, 10), (1, 2, 7)])
def test_weights_are_honoured_within_two_percent(weights):
    variants = [Variant(name=f"v{i}", pipeline="default", weight=w) for i, w in enumerate(weights)]
    exp = Experiment(variants=variants)
    counts = Counter(exp.assign("exp", f"key-{i}").name for i in range(10_000))
    total = sum(weights)
    for i, w in enumerate(weights):
        assert abs(counts[f"v{i}"] / 10_000 - w / total) <= 0.02, (counts, weights)


def test_experiment_name_changes_the_assignment():
    exp = Experiment(variants=[Variant(name="A", pipeline="p", weight=1), Variant(name="B", pipeline="p", weight=1)])
    a = [exp.assign("one", str(i)).name for i in range(100)]
    b = [exp.assign("two", str(i)).name for i in range(100)]
    assert a != b


def test_repo_experiments_file_loads(tmp_path):
    repo = Path(__file__).resolve().parents[1]
    exps = load_experiments(repo / "pipelines" / "experiments.yaml")
    assert "skin-ab" in exps.experiments
    assert load_experiments(tmp_path / "missing.yaml").experiments == {}


def test_bad_experiments_file_is_reported(tmp_path):
    bad = tmp_path / "experiments.yaml"
    bad.write_text("schema_version: 1\nexperiments:\n  x:\n    variants:\n      - {name: A, pipeline: p, weight: -1}\n")
    with pytest.raises(PipelineError) as info:
        load_experiments(bad)
    assert "experiments.yaml: experiments.x.variants[0].weight: must be > 0 (got -1)" in str(info.value)


def test_experiments_problems_name_the_fix(tmp_path):
    """The same problem list as pipelines: every problem at once, with did-you-mean."""
    bad = tmp_path / "experiments.yaml"
    bad.write_text("schema_version: 1\nexperiments:\n  x:\n    variants:\n      - {name: A, pipeline: p, wieght: 1}\n")
    with pytest.raises(PipelineError) as info:
        load_experiments(bad)
    assert info.value.problems == [
        "experiments.yaml: experiments.x.variants[0].weight: is required",
        "experiments.yaml: experiments.x.variants[0].wieght: unknown key; did you mean 'weight'? "
        "(allowed: name, pipeline, weight)",
    ]
