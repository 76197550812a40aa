"""Eval data: a separate evalSource folder, or an evalSplit held out the same way for the same seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.manifests import BASE, merge

from tuneforge.api import FineTuneJob
from tuneforge.trainer.dataset import load_dataset
from tuneforge.trainer.dpo import dpo_config_kwargs
from tuneforge.trainer.errors import InvalidSpec
from tuneforge.trainer.hyperparams import sft_kwargs
from tuneforge.trainer.train import Paths, prepare_data

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
PREFERENCES = EXAMPLES / "preference-sample.json"


def job(**spec: Any) -> FineTuneJob:
    return FineTuneJob.from_manifest(merge(BASE, {"spec": spec}))


def paths(tmp_path: Path, dataset: Path, eval_dataset: Path | None = None) -> Paths:
    return Paths(tmp_path / "model", dataset, eval_dataset, tmp_path / "work")


def split(tmp_path: Path, seed: int, fraction: float = 0.2) -> tuple[list[Any], list[Any]]:
    spec = job(trainer="dpo", dataset={"evalSplit": fraction}, hyperparameters={"seed": seed})
    data = prepare_data(spec, paths(tmp_path, PREFERENCES))
    assert data.eval is not None
    return data.train, data.eval


def test_eval_split_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    train, evals = split(tmp_path, seed=7)
    assert (len(train), len(evals)) == (160, 40)
    assert split(tmp_path, seed=7) == (train, evals)
    other_train, other_evals = split(tmp_path, seed=8)
    assert other_evals != evals
    # Nothing lost, nothing in both, the training order kept.
    everything = load_dataset(PREFERENCES, "preference", trainer="dpo").records
    assert sorted(map(str, train + evals)) == sorted(map(str, everything))
    assert not {str(r) for r in train} & {str(r) for r in evals}
    assert train == [r for r in everything if r in train]


def test_the_seed_also_orders_the_training_data(tmp_path: Path) -> None:
    hp = job(hyperparameters={"seed": 1234}).spec.hyperparameters
    shared = sft_kwargs(hp, None, precision="fp32", cuda=False, has_eval=False, output_dir=tmp_path)
    assert (shared["seed"], shared["data_seed"]) == (1234, 1234)
    dpo = dpo_config_kwargs(shared, hp)
    assert (dpo["seed"], dpo["data_seed"]) == (1234, 1234)


def test_eval_source_folder_is_read_in_the_training_format(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Capital of Peru?", "chosen": "Lima.", "rejected": "Cusco."},
        {"prompt": "2 + 3?", "chosen": "5", "rejected": "6"},
    ]
    (tmp_path / "eval").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "eval" / "part-0.parquet")
    train = tmp_path / "train.jsonl"
    train.write_text('{"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}\n')
    spec = job(trainer="dpo", dataset={"evalSource": "s3://data/eval/"})
    data = prepare_data(spec, paths(tmp_path, train, tmp_path / "eval"))
    assert data.format == "preference" and data.eval == rows and len(data.train) == 1


def test_an_eval_source_without_its_folder_is_an_operator_bug(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="evalSource is set but the trainer was given no --eval-dataset"):
        prepare_data(job(trainer="dpo", dataset={"evalSource": "s3://data/e/"}), paths(tmp_path, PREFERENCES))
