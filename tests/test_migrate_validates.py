"""`mljob migrate` output is judged clean by the same validation, and the runner's model reads both syntaxes."""

from __future__ import annotations

from pathlib import Path

from mljob.runner.migrate import migrate_text
from mljob.runner.model import JobInvalid, load_job
from mljob.runner.validate import Settings, validate_text


def seed_jobs(corpus: Path) -> list[Path]:
    return [p for p in sorted((corpus / "seed-2021").rglob("*.yml")) if p.name != "environment.yml"]


def test_migrated_seed_jobs_have_no_errors_and_no_deprecations(corpus: Path):
    for path in seed_jobs(corpus):
        migrated = migrate_text(path.read_text(encoding="utf-8")).text
        found = validate_text(migrated, path, settings=Settings(strict=True)).diagnostics
        # The one expected warning: cifar-distributed's input data folder is downloaded by the user first.
        unexpected = [d for d in found if d.severity <= 2 and not (d.code == "MLJ203" and "cifar" in str(path))]
        assert unexpected == [], (path, unexpected)
        assert not any(d.code == "MLJ301" for d in found), path


def test_migrated_sweep_has_zero_diagnostics(corpus: Path):
    path = corpus / "seed-2021" / "train" / "lightgbm" / "iris" / "job-sweep.yml"
    migrated = migrate_text(path.read_text(encoding="utf-8")).text
    assert "type: sweep\n" in migrated and "sampling_algorithm: random" in migrated
    assert validate_text(migrated, path, settings=Settings(strict=True)).diagnostics == []


def test_model_reads_2021_as_ga(corpus: Path):
    job = load_job(corpus / "seed-2021" / "train" / "lightgbm" / "iris" / "job.yml")
    assert job.kind == "command"
    assert job.data["code"] == "src"
    assert job.data["command"].startswith("python main.py")
    assert "${{inputs.iris}}" in job.data["command"]
    assert job.data["environment"]["image"] == "mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04"
    assert job.data["inputs"]["iris"]["mode"] == "ro_mount"
    assert job.experiment_name == "lightgbm-iris-example"


def test_model_applies_overrides_and_refuses_errors(tmp_path: Path):
    path = tmp_path / "job.yml"
    path.write_text("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
                    "command: echo ${{inputs.n}}\nenvironment:\n  image: python:3.11\ninputs:\n  n: 1\n")
    job = load_job(path, ["compute=local", "inputs.n=5"])
    assert job.data["compute"] == "local" and job.data["inputs"]["n"] == 5
    assert job.experiment_name == tmp_path.name
    try:
        load_job(path, ["resources.instance_count=0"])
    except JobInvalid as err:
        assert "--set resources.instance_count=0: error MLJ205" in str(err)
    else:
        raise AssertionError("an invalid override must refuse the job")
