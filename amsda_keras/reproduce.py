"""`python -m amsda_keras.reproduce`: rerun the results tables of docs/results.md from scratch.

Trains every row of the chosen tables once per seed (`python -m amsda_keras.train ... --seeds`,
printed before it runs; with `--folds K` in a K-fold table) into OUTPUT/<row>/seed-N (or
OUTPUT/K-fold/<row>/fold-F/seed-N), copies each finished run's records (config, metrics, run
facts, history, per-sample predictions; `results/records.py`) to the same place under RECORDS,
then writes OUTPUT/tables.md from the records (mean ± std per row, the paired differences from
the probe and the reference row with their 95% CI, the commands) and OUTPUT/figures/
(confusion matrix of each family's best row, a MAHFNet attention heatmap). Finished runs and
valid feature caches are reused, so an interrupted run continues where it stopped; RECORDS
(committed: results/EXPERIMENT) keeps runs trained in earlier sessions.

Examples:
    python -m amsda_keras.reproduce mvsa_single                       # everything, seeds 1,2,3
    python -m amsda_keras.reproduce mvsa_single --tables main,amsda   # some tables
    python -m amsda_keras.reproduce mvsa_single --rows mahfnet --seeds 1
    python -m amsda_keras.reproduce mvsa_single --dry-run             # print the commands
    python -m amsda_keras.reproduce mvsa_single --report-only --docs docs/results.md
"""

import argparse
import shlex
from pathlib import Path

from amsda_keras.cli import comma_list
from amsda_keras.console import quiet_tensorflow
from amsda_keras.results.experiments import EXPERIMENTS
from amsda_keras.training.errors import user_errors

DEFAULT_SEEDS = (1, 2, 3)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m amsda_keras.reproduce", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS), help="Experiment to rerun.")
    parser.add_argument("--tables", type=comma_list, metavar="NAME[,NAME]",
                        help="Tables to run and report (default: all).")
    parser.add_argument("--rows", type=comma_list, metavar="KEY[,KEY]",
                        help="Train only these rows (the report still shows every row).")
    parser.add_argument("--seeds", type=lambda text: comma_list(text, item_type=int),
                        default=list(DEFAULT_SEEDS), metavar="N[,N]",
                        help="Seeds per row (default: 1,2,3; a row of a K-fold table may take "
                             "only the first).")
    parser.add_argument("--output", help="Run folder (default: runs/reproduce/EXPERIMENT).")
    parser.add_argument("--records", help="Run records the tables are written from "
                                          "(default: results/EXPERIMENT).")
    parser.add_argument("--all-rows", action="store_true",
                        help="Also train the rows that need a GPU (fine-tuned encoders) "
                             "when none is present.")
    parser.add_argument("--dry-run", action="store_true", help="Print the commands only.")
    parser.add_argument("--report-only", action="store_true",
                        help="Write the tables from the runs that exist; train nothing.")
    parser.add_argument("--docs", metavar="FILE.md",
                        help="Also replace the `<!-- reproduce:TABLE -->` blocks of this "
                             "Markdown file and write its figures to FILE's folder/figures.")
    parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    from amsda_keras.results.records import save_records
    from amsda_keras.results.report import write_report

    with user_errors():
        tables = selected_tables(args.experiment, args.tables)
        output = Path(args.output or Path("runs") / "reproduce" / args.experiment)
        if not args.report_only:
            rows = rows_to_train(tables, args.rows, all_rows=args.all_rows or _has_gpu())
            for number, (row, folds) in enumerate(rows, start=1):
                argv = row.train_argv(args.seeds, output, folds)
                print(f"=== Row {number} of {len(rows)}: {row.label} ===\n"
                      f"python -m amsda_keras.train {shlex.join(argv)}", flush=True)
                if not args.dry_run:
                    _train(argv + (["--no-progress"] if args.no_progress else []))
        if not args.dry_run:
            records = Path(args.records or Path("results") / args.experiment)
            folders = {table.folder(row) for table in tables for row in table.rows}
            copied = save_records(output, records, sorted(folders))
            print(f"Records of {copied} runs in {output} copied to {records}.")
            write_report(tables, output, records, args.seeds, docs=args.docs,
                         progress=not args.no_progress)


def selected_tables(experiment, names):
    tables = EXPERIMENTS[experiment]
    if names is None:
        return tables
    known = [table.name for table in tables]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"--tables: no table {unknown} in {experiment}; it has {known}.")
    return tuple(table for table in tables if table.name in names)


def rows_to_train(tables, keys, all_rows):
    """The distinct trainable `(row, folds)` of `tables` (first occurrence of each row key and
    protocol), filtered by `keys`."""
    distinct = {}
    for table in tables:
        for row in table.rows:
            distinct.setdefault((row.key, table.folds), (row, table.folds))
    rows = [pair for pair in distinct.values() if pair[0].trains]
    if keys is not None:
        known = list(dict.fromkeys(row.key for row, _ in rows))
        unknown = sorted(set(keys) - set(known))
        if unknown:
            raise ValueError(f"--rows: unknown {unknown}; the tables have {known}.")
        rows = [(row, folds) for row, folds in rows if row.key in keys]
    skipped = list(dict.fromkeys(row.key for row, _ in rows if row.needs_gpu and not all_rows))
    if skipped:
        print(f"No GPU: skipping {', '.join(skipped)} (fine-tuned encoders; --all-rows "
              "trains them anyway).")
    return [(row, folds) for row, folds in rows if row.key not in skipped]


def _train(argv):
    from amsda_keras.train import main as train_main

    train_main(argv)


def _has_gpu():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


if __name__ == "__main__":
    main()
