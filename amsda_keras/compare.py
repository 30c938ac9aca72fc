"""`python -m amsda_keras.compare`: paired significance of the differences between runs.

The first run set is the reference; each later one is compared with it on the samples both
scored: the paired bootstrap 95% CI of the difference in accuracy, weighted F1 and macro F1,
and an exact McNemar test. A run set is a run folder, a `--seeds`/`--folds` group (its runs
pair by seed and fold) or a record folder of `results/`. The split is each run's report split
(test if untouched, else dev) unless `--split` names one.

Examples:
    python -m amsda_keras.compare runs/baseline-20261123-101500 runs/amsda-20261123-113000
    python -m amsda_keras.compare results/mvsa_single/baseline_both \
        results/mvsa_single/amsda_frozen results/mvsa_single/mahfnet --output comparison.md

From Python, `amsda_keras.compare(run_a, run_b, ...)` returns the comparisons as a DataFrame.
"""

import argparse
import json
from pathlib import Path

import pandas as pd

from amsda_keras.cli import make_module_callable
from amsda_keras.training.errors import user_errors

OUTPUT_SUFFIXES = (".md", ".json")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m amsda_keras.compare",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="Run folders or --seeds/--folds groups; the first is the reference.")
    parser.add_argument("--split", help="Compare this split (default: each run's report split).")
    parser.add_argument("--resamples", type=int, default=2000,
                        help="Bootstrap replicates (default: %(default)s).")
    parser.add_argument("--seed", type=int, default=0,
                        help="Seed of the bootstrap (default: %(default)s).")
    parser.add_argument("--output", help="Also write the comparison to FILE.md or FILE.json.")
    return parser


def compare(*runs, split=None, resamples=2000, seed=0, output=None):
    """Compares each run set with the first, on the samples both scored (above).

    Args:
        *runs: run folders, `--seeds`/`--folds` folders or record folders, or the `Run` and
            `RunGroup` objects of `train`; at least two.
        split: compare this split. Default: each run's report split.
        resamples: bootstrap replicates.
        seed: seed of the bootstrap.
        output: also write the comparison to FILE.md or FILE.json.

    Returns:
        A DataFrame, one row per compared run set and metric: `reference`, `other`, `split`,
        `samples`, `metric`, the `reference_value` and `other_value`, their `difference` with
        its 95% CI (`ci_low`, `ci_high`), `within_noise` (the CI holds 0) and the McNemar
        `p_value`. `attrs["notes"]` lists the runs left unpaired.

    Raises:
        ValueError: fewer than two run sets; the sets differ in classes or split, or share
            no run.
    """
    results = comparisons(runs, split=split, resamples=resamples, seed=seed, output=output)
    frame = pd.DataFrame([
        {"reference": result["reference"], "other": result["other"], "split": result["split"],
         "samples": result["samples"], "metric": name, "reference_value": values["reference"],
         "other_value": values["other"], "difference": values["difference"],
         "ci_low": values["ci_low"], "ci_high": values["ci_high"],
         "within_noise": values["ci_low"] <= 0 <= values["ci_high"],
         "p_value": result["mcnemar"]["p_value"]}
        for result in results for name, values in result["metrics"].items()])
    frame.attrs["notes"] = [note for result in results for note in result["notes"]]
    return frame


def comparisons(runs, *, split=None, resamples=2000, seed=0, output=None):
    """The `compare_run_sets` result of each of `runs[1:]` against `runs[0]`, also written to
    `output` (.md or .json) when given."""
    from amsda_keras.files import write_text_atomically
    from amsda_keras.results.significance import (
        compare_run_sets,
        comparison_markdown,
        load_run_set,
    )

    if len(runs) < 2:
        raise ValueError("give at least two run sets: the reference, then the runs compared "
                         "with it.")
    output = Path(output) if output else None
    if output is not None and output.suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"--output {output} must end in .md (Markdown) or .json.")
    paths = [getattr(run, "directory", run) for run in runs]
    reference = load_run_set(paths[0], split)
    results = [compare_run_sets(reference, load_run_set(path, split), resamples=resamples,
                                seed=seed)
               for path in paths[1:]]
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        text = (comparison_markdown(results) if output.suffix == ".md"
                else json.dumps(results, indent=2) + "\n")
        write_text_atomically(output, text)
    return results


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("give at least two run sets: the reference, then the runs compared with it.")
    with user_errors():
        from amsda_keras.results.significance import comparison_markdown

        results = comparisons(args.runs, split=args.split, resamples=args.resamples,
                              seed=args.seed, output=args.output)
        print(comparison_markdown(results), end="")


if __name__ == "__main__":
    main()
else:
    make_module_callable(__name__)
