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
"""

import argparse
import json
from pathlib import Path

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


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("give at least two run sets: the reference, then the runs compared with it.")
    with user_errors():
        from amsda_keras.files import write_text_atomically
        from amsda_keras.results.significance import (
            compare_run_sets,
            comparison_markdown,
            load_run_set,
        )

        output = Path(args.output) if args.output else None
        if output is not None and output.suffix not in OUTPUT_SUFFIXES:
            raise ValueError(f"--output {output} must end in .md (Markdown) or .json.")
        reference = load_run_set(args.runs[0], args.split)
        results = [compare_run_sets(reference, load_run_set(run, args.split),
                                    resamples=args.resamples, seed=args.seed)
                   for run in args.runs[1:]]
        markdown = comparison_markdown(results)
        print(markdown, end="")
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            text = markdown if output.suffix == ".md" else json.dumps(results, indent=2) + "\n"
            write_text_atomically(output, text)


if __name__ == "__main__":
    main()
