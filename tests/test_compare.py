import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from amsda_keras import compare
from amsda_keras.results.significance import compare_run_sets, comparison_markdown, load_run_set

CLASSES = ["positive", "neutral", "negative"]
LABELS = list(range(len(CLASSES)))


def write_run(folder, labels, predicted, *, ids=None, split="dev", untouched=("dev",),
              selected_on="validation"):
    """A run folder whose `split` rows hold `labels`/`predicted` (class indices), written in
    shuffled order, plus as many validation rows (the split that picked the epoch)."""
    folder.mkdir(parents=True)
    ids = ids if ids is not None else [f"s{index:03d}" for index in range(len(labels))]
    rows = []
    for name, prefix in ((split, ""), ("validation", "v")):
        for sample, label, guess in zip(ids, labels, predicted):
            probabilities = np.full(len(CLASSES), 0.1)
            probabilities[guess] = 0.8
            rows.append({"id": prefix + sample, "split": name, "label": CLASSES[label],
                         "predicted": CLASSES[guess],
                         **{f"probability_{c}": p for c, p in zip(CLASSES, probabilities)}})
    order = np.random.default_rng(len(rows)).permutation(len(rows))
    pd.DataFrame(rows).iloc[order].to_csv(folder / "predictions.csv", index=False)
    info = {"selected_on": selected_on, "untouched_splits": list(untouched)}
    (folder / "run.json").write_text(json.dumps(info))
    (folder / "metrics.json").write_text("{}")
    return folder


def noisy(labels, rate, rng):
    """`labels` with a fraction `rate` replaced by random classes."""
    flip = rng.random(len(labels)) < rate
    return np.where(flip, rng.integers(0, len(CLASSES), len(labels)), labels)


def test_bootstrap_matches_a_hand_computed_loop(tmp_path):
    rng = np.random.default_rng(7)
    data = {}
    for key, size in (("seed-1", 60), ("seed-2", 45)):
        # A rare third class, so some resamples lack it and zero_division matters.
        labels = rng.choice(3, size=size, p=[0.6, 0.35, 0.05])
        data[key] = (labels, noisy(labels, 0.4, rng), noisy(labels, 0.25, rng))
        write_run(tmp_path / "a" / key, labels, data[key][1])
        write_run(tmp_path / "b" / key, labels, data[key][2])
    resamples, seed = 200, 3
    result = compare_run_sets(load_run_set(tmp_path / "a"), load_run_set(tmp_path / "b"),
                              resamples=resamples, seed=seed)

    scorers = {
        "accuracy": accuracy_score,
        "weighted_f1": lambda t, p: f1_score(t, p, labels=LABELS, average="weighted",
                                             zero_division=0),
        "macro_f1": lambda t, p: f1_score(t, p, labels=LABELS, average="macro", zero_division=0),
    }
    draws = np.random.default_rng(seed)
    indices = {key: draws.integers(0, len(data[key][0]), size=(resamples, len(data[key][0])))
               for key in sorted(data)}
    assert result["members"] == ["seed-1", "seed-2"] and result["samples"] == 105
    for name, score in scorers.items():
        reference = np.mean([score(t, r) for t, r, _ in data.values()])
        other = np.mean([score(t, o) for t, _, o in data.values()])
        differences = []
        for replicate in range(resamples):
            picks = {key: indices[key][replicate] for key in data}
            differences.append(
                np.mean([score(t[picks[k]], o[picks[k]]) for k, (t, _, o) in data.items()])
                - np.mean([score(t[picks[k]], r[picks[k]]) for k, (t, r, _) in data.items()]))
        values = result["metrics"][name]
        assert values["reference"] == pytest.approx(reference, abs=1e-12)
        assert values["other"] == pytest.approx(other, abs=1e-12)
        assert values["difference"] == pytest.approx(other - reference, abs=1e-12)
        assert values["ci_low"] == pytest.approx(np.percentile(differences, 2.5), abs=1e-12)
        assert values["ci_high"] == pytest.approx(np.percentile(differences, 97.5), abs=1e-12)
    json.dumps(result)


def test_mcnemar_matches_the_exact_binomial_p_value(tmp_path):
    labels = np.zeros(40, dtype=int)
    # Samples 0-9: only the reference is right (b = 10); 10-12: only the other (c = 3);
    # 13-29: both right; 30-39: both wrong.
    reference = np.array([0] * 10 + [1] * 3 + [0] * 17 + [2] * 10)
    other = np.array([1] * 10 + [0] * 3 + [0] * 17 + [2] * 10)
    result = compare_run_sets(load_run_set(write_run(tmp_path / "a", labels, reference)),
                              load_run_set(write_run(tmp_path / "b", labels, other)))
    exact = 2 * sum(math.comb(13, k) for k in range(4)) / 2 ** 13
    assert result["mcnemar"]["reference_only_correct"] == 10
    assert result["mcnemar"]["other_only_correct"] == 3
    assert result["mcnemar"]["p_value"] == pytest.approx(exact, rel=1e-9)


def test_identical_predictions_are_within_noise_and_a_better_model_is_not(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    guesses = noisy(labels, 0.5, rng)
    weak = load_run_set(write_run(tmp_path / "weak", labels, guesses))
    same = compare_run_sets(weak, load_run_set(write_run(tmp_path / "same", labels, guesses)))
    for values in same["metrics"].values():
        assert (values["difference"], values["ci_low"], values["ci_high"]) == (0.0, 0.0, 0.0)
    assert same["mcnemar"] == {"reference_only_correct": 0, "other_only_correct": 0,
                               "p_value": 1.0}
    better = compare_run_sets(weak, load_run_set(write_run(tmp_path / "good", labels, labels)))
    for values in better["metrics"].values():
        assert values["ci_low"] > 0
    markdown = comparison_markdown([same, better])
    assert f"{tmp_path / 'same'} vs {tmp_path / 'weak'} (dev, 200 paired samples over 1 run)" \
        in markdown
    assert markdown.count("within noise") == 3
    assert "| metric | reference | other | difference | 95% CI |" in markdown


def test_pairing_errors_name_the_member(tmp_path):
    labels, guesses = np.array([0, 1, 2, 1]), np.array([0, 1, 1, 1])
    write_run(tmp_path / "a" / "seed-1", labels, guesses)
    write_run(tmp_path / "b" / "seed-1", labels, guesses, ids=["s000", "s001", "s002", "x9"])
    with pytest.raises(ValueError, match=r"seed-1.*\['s003', 'x9'\]"):
        compare_run_sets(load_run_set(tmp_path / "a"), load_run_set(tmp_path / "b"))
    write_run(tmp_path / "c" / "fold-1" / "seed-2", labels, guesses)
    with pytest.raises(ValueError, match=r"share no run.*\['seed-1'\].*\['fold-1/seed-2'\]"):
        compare_run_sets(load_run_set(tmp_path / "a"), load_run_set(tmp_path / "c"))


def test_loading_errors_name_the_folder(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "run.json").write_text("{}")
    with pytest.raises(ValueError, match=f"{old} has no predictions.csv.*retrained"):
        load_run_set(old)
    labels = np.array([0, 1, 2])
    write_run(tmp_path / "group" / "seed-1", labels, labels, untouched=("dev", "test"),
              split="test")
    write_run(tmp_path / "group" / "seed-2", labels, labels)
    with pytest.raises(ValueError, match=r"seed-2 reports its dev split.*--split"):
        load_run_set(tmp_path / "group")
    with pytest.raises(ValueError, match="holds no run"):
        load_run_set(tmp_path)


def test_a_split_that_picked_the_epoch_adds_a_note(tmp_path):
    labels = np.array([0, 1, 2, 0])
    run_set = load_run_set(write_run(tmp_path / "a", labels, labels), split="validation")
    result = compare_run_sets(run_set, load_run_set(write_run(tmp_path / "b", labels, labels),
                                                    split="validation"))
    assert result["split"] == "validation" and len(result["notes"]) == 2
    assert all("validation split picked the epoch" in note and "optimistic" in note
               for note in result["notes"])


def test_cli_writes_json_and_reports_bad_paths(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AMSDA_KERAS_DEBUG", raising=False)
    labels = np.array([0, 1, 2, 0, 1])
    runs = [str(write_run(tmp_path / name, labels, guesses)) for name, guesses in
            (("a", labels), ("b", np.array([0, 1, 1, 0, 1])), ("c", np.zeros(5, dtype=int)))]
    compare.main([*runs, "--resamples", "50", "--output", str(tmp_path / "out" / "c.json")])
    assert "vs" in capsys.readouterr().out
    results = json.loads((tmp_path / "out" / "c.json").read_text())
    assert [result["other"] for result in results] == runs[1:]
    assert set(results[0]) == {"reference", "other", "split", "members", "samples", "metrics",
                               "mcnemar", "notes"}
    with pytest.raises(SystemExit) as exit_info:
        compare.main([str(tmp_path / "missing"), runs[0]])
    assert str(exit_info.value.code).startswith("Error:")
