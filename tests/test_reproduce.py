"""`python -m amsda_keras.reproduce`: rows to commands, seed summaries to tables and figures."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import amsda_keras
from amsda_keras import reproduce
from amsda_keras.data.demo import make_demo_dataset
from amsda_keras.results import tables
from amsda_keras.results.experiments import EXPERIMENTS, Row, Table
from amsda_keras.results.report import attention_figure, replace_blocks
from amsda_keras.results.significance import (RunSet, compare_run_sets, ensemble_run_set,
                                               load_run_set)

FAST = ("--epochs", "1", "--set", "encoders.sequence_length=16")
PROBE = Row("probe", "probe", ("--model", "probe", "--set", "encoders.sequence_length=16"))
BOTH = Row("both", "baseline, text + image", ("--model", "baseline", *FAST), paper=(0.7, 0.6))
DEMO_TABLES = (
    Table("main", "Demo data.", (
        Row("majority", "majority class", (), majority_of="probe"),
        PROBE,
        Row("text", "baseline, text", ("--model", "baseline", "--modality", "text", *FAST)),
        BOTH,
        Row("gpu_only", "baseline, fine-tuned", ("--model", "baseline", "--train-encoders"),
            needs_gpu=True),
    ), family="baseline", reference="text"),
    Table("folds", "Demo data, 2-fold.", (PROBE, dataclasses.replace(BOTH, max_seeds=1)),
          folds=2),
)


def test_rows_are_trained_once_and_gpu_rows_only_when_asked(capsys):
    shared = Row("a", "A", ("--model", "baseline"))
    duplicated = (Table("one", "", (shared, Row("gpu", "G", (), needs_gpu=True))),
                  Table("two", "", (shared, Row("b", "B", ()))),
                  Table("cv", "", (shared,), folds=5))

    def keys(rows):
        return [(row.key, folds) for row, folds in rows]

    assert keys(reproduce.rows_to_train(duplicated, None, all_rows=False)) == [
        ("a", None), ("b", None), ("a", 5)]
    assert "skipping gpu" in capsys.readouterr().out
    assert keys(reproduce.rows_to_train(duplicated, None, all_rows=True)) == [
        ("a", None), ("gpu", None), ("b", None), ("a", 5)]
    assert keys(reproduce.rows_to_train(duplicated, ["b"], all_rows=False)) == [("b", None)]
    with pytest.raises(ValueError, match=r"--rows: unknown \['c'\]"):
        reproduce.rows_to_train(duplicated, ["c"], all_rows=False)
    assert shared.train_argv([1, 2], "out") == [
        "--model", "baseline", "--seeds", "1,2", "--output", "out/a"]
    assert dataclasses.replace(shared, max_seeds=1).train_argv([1, 2], "out", folds=5) == [
        "--model", "baseline", "--seeds", "1", "--folds", "5", "--output", "out/5-fold/a"]


def test_every_mvsa_single_row_parses_as_train_or_evaluate_flags():
    from amsda_keras.evaluate import build_parser as evaluate_parser
    from amsda_keras.train import build_parser as train_parser

    ensembles = 0
    for table in EXPERIMENTS["mvsa_single"]:
        for row in table.rows:
            if row.trains:
                train_parser().parse_args(row.train_argv([1], "runs/x"))
            elif row.ensemble_of:
                ensembles += 1
                assert row.ensemble_of in {other.key for other in table.rows if other.trains}
                evaluate_parser().parse_args(["--run", "runs/x", *row.args])
    assert ensembles == 5


def test_an_ensemble_averages_probabilities_and_pairs_with_every_member():
    def member(probabilities):
        probabilities = np.array(probabilities)
        return pd.DataFrame({"id": ["a", "b"], "label": [0, 1],
                             "predicted": probabilities.argmax(axis=1),
                             "probability_x": probabilities[:, 0],
                             "probability_y": probabilities[:, 1]})

    runs = RunSet(Path("runs/m"), "dev", ["x", "y"],
                  {"seed-1": member([[0.9, 0.1], [0.8, 0.2]]),
                   "seed-2": member([[0.2, 0.8], [0.3, 0.7]])})
    ensemble = ensemble_run_set(runs)
    assert list(ensemble.members) == ["seed-1", "seed-2"]
    for frame in ensemble.members.values():
        np.testing.assert_allclose(frame["probability_y"], [0.45, 0.45])
        assert frame["predicted"].tolist() == [0, 0]
    # Against its own members the ensemble's difference is from their mean accuracy (0.5).
    result = compare_run_sets(runs, ensemble)["metrics"]["accuracy"]
    assert (result["reference"], result["other"]) == (0.5, 0.5)
    runs.members["seed-2"] = runs.members["seed-2"].assign(id=["a", "c"])
    with pytest.raises(ValueError, match="runs/m/seed-2 and runs/m/seed-1 scored different dev"):
        ensemble_run_set(runs)
    with pytest.raises(ValueError, match="Table cv: a seed-ensemble row"):
        Table("cv", "", (BOTH, Row("e", "E", (), ensemble_of="both")), folds=5)


def test_docs_results_has_a_block_for_every_mvsa_single_table():
    text = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    for table in EXPERIMENTS["mvsa_single"]:
        assert f"<!-- reproduce:{table.name} -->" in text, table.name


def test_majority_class_comes_from_each_runs_training_split_counts(tmp_path):
    runs = []
    for name, counts in (("fold-1", {"train": (5, 2, 3), "test": (3, 1, 2)}),
                         ("fold-2", {"train": (2, 5, 3), "test": (1, 4, 5)})):
        runs.append(tmp_path / name)
        runs[-1].mkdir()
        metrics = {split: {"per_class": {c: {"support": n} for c, n in zip("abc", values)}}
                   for split, values in counts.items()}
        (runs[-1] / "metrics.json").write_text(json.dumps(metrics))
    summary = tables.majority_summary({"runs": runs, "report": "test"})["metrics"]["test"]
    assert summary["accuracy"]["values"] == [0.5, 0.4]
    np.testing.assert_allclose(summary["weighted_f1"]["values"][0], 0.5 * (2 * 0.5 / 1.5))
    np.testing.assert_allclose(summary["macro_f1"]["values"][0], (2 * 0.5 / 1.5) / 3)
    assert tables.majority_summary(None) is None


def test_docs_blocks_are_replaced_and_a_missing_block_is_named():
    text = "intro\n<!-- reproduce:main -->\nold\n<!-- /reproduce:main -->\nend\n"
    assert replace_blocks(text, {"main": "new\n"}) == (
        "intro\n<!-- reproduce:main -->\nnew\n<!-- /reproduce:main -->\nend\n")
    with pytest.raises(ValueError, match="no `<!-- reproduce:amsda -->`"):
        replace_blocks(text, {"amsda": "x"})


def test_reproduce_trains_reuses_and_reports(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(EXPERIMENTS, "demo", DEMO_TABLES)
    output, records = tmp_path / "runs", tmp_path / "results"
    docs = tmp_path / "docs" / "results.md"
    docs.parent.mkdir()
    docs.write_text("# Results\n<!-- reproduce:main -->\n<!-- /reproduce:main -->\n"
                    "<!-- reproduce:folds -->\n<!-- /reproduce:folds -->\n")
    common = ["--output", str(output), "--records", str(records), "--no-progress"]
    args = ["demo", "--seeds", "1,2", *common]
    reproduce.main([*args, "--tables", "main", "--rows", "probe,text,both"])
    out = capsys.readouterr().out
    assert "python -m amsda_keras.train --model baseline --modality text" in out
    assert "| baseline, text + image | 2 | 0." in (output / "tables.md").read_text()

    reproduce.main([*args, "--docs", str(docs)])
    out = capsys.readouterr().out
    assert out.count("reusing the finished run") == 6 and "skipping gpu_only" in out
    report = docs.read_text()
    # The demo data has no split: 8:1:1, dev picks the epoch and test is reported.
    both = json.loads((output / "both" / "summary.json").read_text())["metrics"]
    accuracy = both["test"]["accuracy"]
    assert f"| {both['dev']['accuracy']['mean']:.3f} ± " in report  # selection accuracy
    assert f"| {accuracy['mean']:.3f} ± {accuracy['std']:.3f} |" in report
    versus_probe = compare_run_sets(load_run_set(records / "probe"),
                                    load_run_set(records / "both"))["metrics"]["accuracy"]
    assert (f"| {versus_probe['difference']:+.3f} [{versus_probe['ci_low']:+.3f}, "
            f"{versus_probe['ci_high']:+.3f}] |") in report
    assert "Δ accuracy vs baseline, text [95% CI]" in report
    assert "| wall time per run | time per epoch | peak memory |" in report
    assert "| 0.7000 / 0.6000 |" in report and "--seeds 1,2 --output" in report
    assert report.count("not run") == 3  # the GPU row's three metrics
    assert (docs.parent / "figures" / "confusion_main.png").stat().st_size > 0
    assert "figures/confusion_main.png" in report
    # The K-fold table: every fold of the probe's two seeds, one seed of the slow row.
    assert "--seeds 1 --folds 2 --output" in report
    assert sorted(p.relative_to(records / "2-fold").as_posix() for p in
                  (records / "2-fold").glob("*/fold-*/seed-*")) == [
        "both/fold-1/seed-1", "both/fold-2/seed-1", "probe/fold-1/seed-1",
        "probe/fold-1/seed-2", "probe/fold-2/seed-1", "probe/fold-2/seed-2"]
    assert "| baseline, text + image | 2 | 0." in report

    # One seed of a shared row rewrites its summary.json; the report still counts both seeds.
    reproduce.main(["demo", "--seeds", "1", *common, "--tables", "main", "--rows", "both"])
    assert json.loads((output / "both" / "summary.json").read_text())["seeds"] == [1]
    reproduce.main([*args, "--report-only", "--docs", str(docs)])
    assert f"| {accuracy['mean']:.3f} ± {accuracy['std']:.3f} |" in docs.read_text()

    # The records alone rewrite the same tables where the run folders are gone.
    assert sorted(path.name for path in (records / "both" / "seed-2").iterdir()) == [
        "config.yaml", "history.csv", "metrics.json", "predictions.csv", "run.json"]
    shutil.rmtree(output)
    reproduce.main([*args, "--report-only", "--docs", str(docs)])
    assert docs.read_text() == report


def test_epoch_time_and_peak_memory_come_from_histories_that_have_them(tmp_path):
    runs = [tmp_path / "seed-1", tmp_path / "seed-2"]
    for run, seconds, peak in zip(runs, ([10.0, 20.0], [30.0, 40.0]), ([900, 1024], [2048, 3072])):
        run.mkdir()
        pd.DataFrame({"epoch": [0, 1], "epoch_seconds": seconds,
                      "peak_memory_mib": peak}).to_csv(run / "history.csv", index=False)
    assert tables.resources_cells({"runs": runs}) == {"time per epoch": "25 s",
                                                      "peak memory": "3.0 GiB"}
    # A platform without peak memory (Windows) logs NaN: the time is still shown.
    for run in runs:
        pd.DataFrame({"epoch": [0], "epoch_seconds": [5.0],
                      "peak_memory_mib": [float("nan")]}).to_csv(run / "history.csv", index=False)
    assert tables.resources_cells({"runs": runs}) == {"time per epoch": "5 s", "peak memory": ""}
    pd.DataFrame({"epoch": [0]}).to_csv(runs[1] / "history.csv", index=False)
    assert tables.resources_cells({"runs": runs}) == dict.fromkeys(tables.RESOURCE_HEADERS)


def test_fusion_weight_curves_have_a_panel_for_each_row_that_learned_weights(tmp_path):
    table = Table("finetuned", "", (PROBE, BOTH, Row("amsda", "A-MSDA", ())), fusion_curves=True)
    summaries = {"probe": None, "both": None, "amsda": None}
    for key, columns in (("both", {}), ("amsda", {"fusion_weight_text": [0.3, 0.4],
                                                  "fusion_weight_image": [0.3, 0.2]})):
        run = tmp_path / key / "seed-1"
        run.mkdir(parents=True)
        pd.DataFrame({"epoch": [0, 1], **columns}).to_csv(run / "history.csv", index=False)
        (run / "run.json").write_text(json.dumps({"best_epoch": 2}))
        summaries[key] = {"runs": [run], "members": ["seed-1"]}
    path = tables.plot_fusion_weight_curves(tmp_path / "curves.png", table, summaries)
    assert path.stat().st_size > 0
    summaries["amsda"] = None
    assert tables.plot_fusion_weight_curves(tmp_path / "none.png", table, summaries) is None


def test_attention_heatmap_is_kept_where_the_trained_model_is_gone(tmp_path, capsys):
    row = Row("mahfnet", "MAHFNet", ())
    figures = tmp_path / "figures"
    summary = {"members": ["seed-2"]}
    assert attention_figure(summary, row, tmp_path / "runs", figures, progress=False) is None
    assert "No trained model in" in capsys.readouterr().out
    figures.mkdir()
    (figures / "attention_mahfnet.png").write_bytes(b"png")
    kept = attention_figure(summary, row, tmp_path / "runs", figures, progress=False)
    assert kept == figures / "attention_mahfnet.png"
    assert "kept from an earlier run" in capsys.readouterr().out
    assert attention_figure(None, row, tmp_path / "runs", figures, progress=False) is None


def test_the_best_row_of_a_family_is_a_model_not_its_floor():
    table = Table("t", "caption", (Row("majority", "majority", (), majority_of="probe"), PROBE,
                                   BOTH), family="baseline")

    def summary(accuracy):
        return {"report": "dev", "metrics": {"dev": {"accuracy": {"mean": accuracy}}}}

    summaries = {"majority": None, "probe": summary(0.72), "both": summary(0.67)}
    assert tables.best_row(table, summaries) is BOTH
    assert tables.best_row(table, {**summaries, "both": None}) is None


def test_an_ensemble_row_equals_evaluates_ensemble_of_its_source_rows_runs(tmp_path, monkeypatch):
    # Seeds draw their own splits of data without any: give the demo data a fixed split, as
    # MVSA-Single has, so that both seeds score the same dev and test samples (dev selects,
    # test is reported).
    manifest = make_demo_dataset(tmp_path / "demo", num_samples=160)
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps({**line, "split": ("dev", "test")[i % 2] if i % 5 == 0
                                            else "train"}) + "\n"
                                for i, line in enumerate(lines)))
    both = dataclasses.replace(BOTH, args=BOTH.args + ("--data", str(manifest)))
    ensemble = Row("both_ensemble", "seed ensemble of both",
                   ("--data", str(manifest), "--split", "test"), ensemble_of="both")
    monkeypatch.setitem(EXPERIMENTS, "demo", (Table("t", "Fixed split.", (both, ensemble),
                                                    reference="both"),))
    output = tmp_path / "runs"
    reproduce.main(["demo", "--seeds", "1,2", "--output", str(output), "--records",
                    str(tmp_path / "results"), "--no-progress"])
    report = (output / "tables.md").read_text()
    evaluated = amsda_keras.evaluate(output / "both", manifest, split="test",
                                     output=tmp_path / "evaluation", progress=False)
    (line,) = [line for line in report.splitlines() if line.startswith("| seed ensemble")]
    cells = line.split(" | ")
    assert cells[1] == "2" and cells[3] == f"{evaluated['accuracy'].iloc[0]:.3f}"
    assert f"python -m amsda_keras.evaluate --run {output / 'both'} --data {manifest}" in report
