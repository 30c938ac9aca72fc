"""Paired significance of the difference between two models scored on the same samples.

Every run folder's `predictions.csv` holds one row per scored sample (`id`, `split`, `label`,
`predicted`, `probability_<class>`). A *run set* is a run folder, or a `--seeds`/`--folds`
group parent whose finished `seed-*/` and `fold-*/seed-*/` runs are its members; two sets pair
the members they share (same seed, same fold), and inside a member the samples pair by id.

The paired bootstrap resamples each member's samples with the same indices for both sets, so
the CI of the difference reflects how much the two models disagree, not how hard the samples
are. The exact McNemar test counts the samples that only one set gets right.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from amsda_keras.results.records import FINISHED, MEMBER_PATTERNS
from amsda_keras.training.protocol import report_split
from amsda_keras.training.reporting import (HEADLINE_METRICS, PREDICTIONS_FILE, RUN_INFO_FILE,
                                            markdown_table)

PROBABILITY_PREFIX = "probability_"
SHOWN_IDS = 5
SIDES = ("reference", "other")
RETRAIN = "runs trained before per-sample predictions were saved must be retrained to be compared"


@dataclasses.dataclass
class RunSet:
    """One split of the per-sample predictions of a run set's members.

    Attributes:
        path: the run folder or group parent.
        split: the split read.
        class_names: class names in the models' output order.
        members: member key (`""` for a run folder, else `seed-2`, `fold-3/seed-1`) -> DataFrame
            of the split's rows: `id` (str), `label` and `predicted` (int class indices),
            `probability_<class>` (float), sorted by id.
        notes: caveats for the comparison (a split that picked some member's epoch).
    """

    path: Path
    split: str
    class_names: list
    members: dict
    notes: list = dataclasses.field(default_factory=list)


def load_run_set(path, split=None, members=None):
    """Reads one split of the predictions of a run folder, or of every finished run of a group.

    Args:
        path: a run folder (with `predictions.csv`), or the parent of the `seed-*/` or
            `fold-*/seed-*/` run folders written by `--seeds` / `--folds`.
        split: the split to read. Defaults to the report split of each member's protocol
            (`test` if untouched, else `dev`, else the first untouched split). A split that
            picked some member's epoch is read, with a note that its numbers are optimistic.
        members: the member keys to read (`seed-1`, `fold-2/seed-1`); default: every
            finished run of the group.

    Returns:
        A `RunSet`.

    Raises:
        FileNotFoundError: `path` or a member's `run.json` does not exist.
        ValueError: no run is found; a run lacks per-sample predictions or its protocol; the
            members disagree on the report split or the classes; a run has no rows of the split.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder: pass a run folder written by "
                                "amsda_keras.train, or the parent of its --seeds/--folds runs.")
    folders = _member_folders(path)
    if members is not None:
        absent = sorted(set(members) - set(folders))
        if absent:
            raise ValueError(f"{path} has no finished run {', '.join(absent)}.")
        folders = {key: folders[key] for key in sorted(members)}
    members = {key: _read_member(folder) for key, folder in folders.items()}
    untouched = {key: info["untouched_splits"] for key, (info, _, _) in members.items()}
    notes = []
    if split is None:
        split = _common_report_split(path, untouched)
    else:
        selected = [_member_name(path, key) for key, splits in untouched.items()
                    if split not in splits]
        if selected:
            notes.append(f"The {split} split picked the epoch of {', '.join(selected)} (it is "
                         f"not untouched there), so those {split} numbers are optimistic.")
    first_key, (_, _, class_names) = next(iter(members.items()))
    frames = {}
    for key, (_, frame, names) in members.items():
        if names != class_names:
            raise ValueError(f"{_member_name(path, key)} has the classes {names}, but "
                             f"{_member_name(path, first_key)} has {class_names}.")
        frames[key] = _split_rows(path / key / PREDICTIONS_FILE, frame, split, class_names)
    return RunSet(path, split, class_names, frames, notes)


def ensemble_run_set(run_set):
    """The seed ensemble of `run_set`'s members: their class probabilities averaged per sample
    and its argmax predicted, as a `RunSet` holding that one ensemble under every member key.
    Paired with another set, the ensemble meets that set's seed-k run for each k, so a
    comparison gives the ensemble against the mean of the other set's runs.

    Raises:
        ValueError: the members scored different samples or gave them different labels.
    """
    (first_key, first), *others = run_set.members.items()
    for key, frame in others:
        if not (frame["id"].equals(first["id"]) and frame["label"].equals(first["label"])):
            raise ValueError(f"{_member_name(run_set.path, key)} and "
                             f"{_member_name(run_set.path, first_key)} scored different "
                             f"{run_set.split} samples or labels: an ensemble averages runs "
                             "trained on the same splits.")
    columns = [f"{PROBABILITY_PREFIX}{name}" for name in run_set.class_names]
    probabilities = np.mean([frame[columns].to_numpy() for frame in run_set.members.values()],
                            axis=0)
    ensemble = first.assign(**dict(zip(columns, probabilities.T)),
                            predicted=probabilities.argmax(axis=1))
    note = (f"{run_set.path}: one ensemble of {', '.join(_keys(run_set.members))}, paired with "
            "each of them.")
    return RunSet(run_set.path, run_set.split, run_set.class_names,
                  {key: ensemble for key in run_set.members}, run_set.notes + [note])


def compare_run_sets(reference, other, *, resamples=2000, seed=0):
    """Paired bootstrap CIs and an exact McNemar test of `other` against `reference`.

    Args:
        reference: the `RunSet` compared against.
        other: the `RunSet` compared with it, read on the same split.
        resamples: bootstrap replicates. Defaults to `2000`.
        seed: seed of the bootstrap's `numpy.random.default_rng`. Defaults to `0`.

    Returns:
        A JSON-ready dict: `reference`, `other` (paths), `split`, `members` (the paired member
        keys), `samples` (paired samples in all), `metrics` (per headline metric: `reference`,
        `other`, the mean over members, `difference` = other - reference and its 95% CI
        `ci_low`, `ci_high`), `mcnemar` (`reference_only_correct`, `other_only_correct`,
        `p_value`, pooled over members) and `notes`.

    Raises:
        ValueError: `resamples` is not positive; the sets differ in classes or split, share no
            member, or a paired member's samples differ in ids or true labels.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be a positive integer, not {resamples!r}.")
    if reference.class_names != other.class_names:
        raise ValueError(f"{other.path} has the classes {other.class_names}, but {reference.path} "
                         f"has {reference.class_names}: compare runs of the same dataset.")
    if reference.split != other.split:
        raise ValueError(f"{other.path} reports its {other.split} split, but {reference.path} "
                         f"its {reference.split} split: pass --split NAME to compare one split.")
    keys = sorted(set(reference.members) & set(other.members))
    if not keys:
        raise ValueError(f"{reference.path} and {other.path} share no run: their members are "
                         f"{_keys(reference.members)} and {_keys(other.members)}. Compare runs "
                         "of the same seeds (and folds), or two run folders.")
    notes = reference.notes + other.notes
    for run_set, partner in ((reference, other), (other, reference)):
        unpaired = sorted(set(run_set.members) - set(partner.members))
        if unpaired:
            notes.append(f"Left out {', '.join(unpaired)} of {run_set.path}: {partner.path} "
                         "has no such run.")
    num_classes = len(reference.class_names)
    rng = np.random.default_rng(seed)
    scores = {side: [] for side in SIDES}
    discordant = np.zeros(2, dtype=int)
    samples = 0
    for key in keys:
        true, predictions = _pair(reference, other, key)
        indices = rng.integers(0, len(true), size=(resamples, len(true)))
        for side, predicted in zip(SIDES, predictions):
            scores[side].append(_member_scores(true * num_classes + predicted, indices,
                                               num_classes))
        correct = [predicted == true for predicted in predictions]
        discordant += [np.sum(correct[0] & ~correct[1]), np.sum(correct[1] & ~correct[0])]
        samples += len(true)
    metrics = {}
    for name in HEADLINE_METRICS:
        means = {side: np.mean([member[name] for member in scores[side]], axis=0)
                 for side in SIDES}
        low, high = np.percentile(means["other"][1:] - means["reference"][1:], [2.5, 97.5])
        metrics[name] = {"reference": float(means["reference"][0]),
                         "other": float(means["other"][0]),
                         "difference": float(means["other"][0] - means["reference"][0]),
                         "ci_low": float(low), "ci_high": float(high)}
    b, c = (int(count) for count in discordant)
    return {"reference": str(reference.path), "other": str(other.path), "split": reference.split,
            "members": keys, "samples": samples, "metrics": metrics,
            "mcnemar": {"reference_only_correct": b, "other_only_correct": c,
                        "p_value": mcnemar_p_value(b, c)},
            "notes": notes}


def mcnemar_p_value(b, c):
    """Two-sided exact McNemar p-value of `b` and `c` discordant samples (1.0 when none)."""
    if b + c == 0:
        return 1.0
    return float(min(1.0, 2 * stats.binom.cdf(min(b, c), b + c, 0.5)))


def comparison_markdown(results):
    """Markdown of `compare_run_sets` results: per comparison a heading, the metrics table with
    the 95% CI of each difference ("within noise" when it contains 0), McNemar and the notes."""
    blocks = []
    for result in results:
        runs = len(result["members"])
        rows = []
        for name, values in result["metrics"].items():
            noise = " (within noise)" if values["ci_low"] <= 0 <= values["ci_high"] else ""
            rows.append({"metric": name, "reference": f"{values['reference']:.4f}",
                         "other": f"{values['other']:.4f}",
                         "difference": f"{values['difference']:+.4f}{noise}",
                         "95% CI": f"[{values['ci_low']:+.4f}, {values['ci_high']:+.4f}]"})
        mcnemar = result["mcnemar"]
        p_value = mcnemar["p_value"]
        lines = [f"### {result['other']} vs {result['reference']} ({result['split']}, "
                 f"{result['samples']} paired samples over {runs} run{'s' * (runs != 1)})", "",
                 markdown_table(pd.DataFrame(rows)),
                 f"McNemar (exact, pooled over runs): only the reference is right on "
                 f"{mcnemar['reference_only_correct']} samples, only the other on "
                 f"{mcnemar['other_only_correct']}; p "
                 + (f"= {p_value:.4f}" if p_value >= 1e-4 else "< 0.0001") + "."]
        lines += [f"\nNote: {note}" for note in result["notes"]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _member_folders(path):
    """Member key -> run folder: the folder itself, or the finished runs below a group."""
    if any((path / name).exists() for name in (PREDICTIONS_FILE, RUN_INFO_FILE)):
        return {"": path}
    folders = {run.relative_to(path).as_posix(): run for pattern in MEMBER_PATTERNS
               for run in path.glob(pattern) if (run / FINISHED).exists()}
    if not folders:
        raise ValueError(f"{path} holds no run: expected {PREDICTIONS_FILE} (a run folder) or "
                         "finished seed-*/ or fold-*/seed-*/ run folders (a --seeds/--folds "
                         "group).")
    return dict(sorted(folders.items()))


def _read_member(folder):
    """`(run.json dict, predictions.csv as strings, class names)` of one run folder."""
    predictions = folder / PREDICTIONS_FILE
    if not predictions.exists():
        raise ValueError(f"{folder} has no {PREDICTIONS_FILE}: {RETRAIN}.")
    info_path = folder / RUN_INFO_FILE
    if not info_path.exists():
        raise FileNotFoundError(f"{info_path} is missing: {folder} is not a complete run "
                                "folder written by amsda_keras.train.")
    info = json.loads(info_path.read_text())
    if "untouched_splits" not in info:
        raise ValueError(f"{info_path} does not say which splits are untouched: {RETRAIN}.")
    frame = pd.read_csv(predictions, dtype=str, keep_default_na=False)
    class_names = [column[len(PROBABILITY_PREFIX):] for column in frame.columns
                   if column.startswith(PROBABILITY_PREFIX)]
    missing = [name for name in ("id", "split", "label", "predicted") if name not in frame]
    if missing or not class_names:
        raise ValueError(f"{predictions} lacks the columns {missing or ['probability_<class>']}:"
                         f" it was not written by amsda_keras.train; {RETRAIN}.")
    return info, frame, class_names


def _common_report_split(path, untouched):
    """The report split all members agree on."""
    reports = {key: report_split(splits) for key, splits in untouched.items()}
    first_key, split = next(iter(reports.items()))
    for key, report in reports.items():
        if report is None:
            raise ValueError(f"{_member_name(path, key)} has no untouched split to report "
                             "(every scored split picked its epoch): pass --split NAME.")
        if report != split:
            raise ValueError(f"{_member_name(path, key)} reports its {report} split, but "
                             f"{_member_name(path, first_key)} its {split} split: pass "
                             "--split NAME to compare one split.")
    return split


def _split_rows(predictions, frame, split, class_names):
    """The split's rows as `id`, `label`, `predicted` (class indices), sorted by id."""
    rows = frame[frame["split"] == split]
    if rows.empty:
        raise ValueError(f"{predictions} has no {split} rows (its splits: "
                         f"{sorted(set(frame['split']))}): pass --split with one of them.")
    repeated = rows["id"][rows["id"].duplicated()].tolist()
    if repeated:
        raise ValueError(f"{predictions} repeats the {split} ids {repeated[:SHOWN_IDS]}: "
                         "samples pair by id, so ids must be unique.")
    index = {name: position for position, name in enumerate(class_names)}
    unknown = sorted((set(rows["label"]) | set(rows["predicted"])) - set(index))
    if unknown:
        raise ValueError(f"{predictions} names the classes {unknown}, which have no "
                         f"{PROBABILITY_PREFIX} column (its classes: {class_names}).")
    probabilities = {f"{PROBABILITY_PREFIX}{name}": rows[f"{PROBABILITY_PREFIX}{name}"]
                     .astype(float) for name in class_names}
    return pd.DataFrame({"id": rows["id"], "label": rows["label"].map(index).astype(int),
                         "predicted": rows["predicted"].map(index).astype(int),
                         **probabilities}).sort_values("id").reset_index(drop=True)


def _pair(reference, other, key):
    """`(true labels, (reference predictions, other predictions))` of a paired member."""
    first, second = reference.members[key], other.members[key]
    member = f"run {key}" if key else "The run"
    unpaired = sorted(set(first["id"]) ^ set(second["id"]))
    if unpaired:
        raise ValueError(f"{member} scored different {reference.split} samples in "
                         f"{_member_name(reference.path, key)} and "
                         f"{_member_name(other.path, key)}: ids {unpaired[:SHOWN_IDS]} are in "
                         "only one of them. Compare runs trained on the same splits.")
    relabelled = first["id"][first["label"] != second["label"]].tolist()
    if relabelled:
        raise ValueError(f"{member} has other true labels in {_member_name(reference.path, key)}"
                         f" than in {_member_name(other.path, key)} for the ids "
                         f"{relabelled[:SHOWN_IDS]}: compare runs with the same label rule.")
    true = first["label"].to_numpy()
    return true, (first["predicted"].to_numpy(), second["predicted"].to_numpy())


def _member_scores(codes, indices, num_classes):
    """The headline metrics of one member's samples, then of each resample (`indices`, one row
    per replicate), as arrays `[1 + replicates]`. `codes` is `true * K + predicted`."""
    original = _metrics(_confusions(codes[None], num_classes))
    resampled = _metrics(_confusions(codes[indices], num_classes))
    return {name: np.concatenate([original[name], resampled[name]]) for name in HEADLINE_METRICS}


def _confusions(codes, num_classes):
    """Confusion matrices `[replicates, K, K]` from per-sample codes `true * K + predicted` of
    shape `[replicates, samples]`, counted in one `bincount` over `replicate * K² + code`."""
    cells = num_classes * num_classes
    offsets = np.arange(len(codes))[:, None] * cells
    counts = np.bincount((codes + offsets).ravel(), minlength=len(codes) * cells)
    return counts.reshape(len(codes), num_classes, num_classes)


def _metrics(confusions):
    """The headline metrics of each confusion matrix `[R, K, K]`, as arrays `[R]`, with
    scikit-learn's `f1_score(labels=range(K), zero_division=0)` semantics."""
    hits = np.diagonal(confusions, axis1=1, axis2=2)
    support = confusions.sum(axis=2)
    total = support.sum(axis=1)
    denominator = support + confusions.sum(axis=1)
    f1 = np.divide(2 * hits, denominator, out=np.zeros(hits.shape), where=denominator > 0)
    return {"accuracy": hits.sum(axis=1) / total,
            "weighted_f1": (f1 * support).sum(axis=1) / total,
            "macro_f1": f1.mean(axis=1)}


def _member_name(path, key):
    return str(Path(path, key)) if key else str(path)


def _keys(members):
    return [key or "(the run itself)" for key in sorted(members)]
