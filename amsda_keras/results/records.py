"""Run records: the small files of each finished run that the tables are computed from.

Run folders hold the trained model (tens of MB) and stay out of git; their records
(config, metrics, run facts, training history and per-sample predictions, tens of kB a run)
are copied to `results/<experiment>/<row folder>/seed-N` (or `.../fold-F/seed-N`), which is
committed. The tables are written from the records, so runs trained in different sessions or
on different machines add up, and the report can be rewritten where the run folders are gone.
"""

import shutil
from pathlib import Path

from amsda_keras.files import folder_replaced_atomically
from amsda_keras.training.reporting import PREDICTIONS_FILE, RUN_INFO_FILE

RECORD_FILES = ("config.yaml", "metrics.json", RUN_INFO_FILE, "history.csv", PREDICTIONS_FILE)
FINISHED = RUN_INFO_FILE
# The run folders of a `--seeds` group and of a `--folds` group.
MEMBER_PATTERNS = ("seed-*", "fold-*/seed-*")


def member_folders(group, seeds, folds=None):
    """The finished run folders of a group for `seeds` (and folds 1..`folds`), in order."""
    names = ([f"seed-{seed}" for seed in seeds] if not folds else
             [f"fold-{fold}/seed-{seed}" for fold in range(1, folds + 1) for seed in seeds])
    return [Path(group, name) for name in names if Path(group, name, FINISHED).exists()]


def save_records(output, records, folders):
    """Copies the records of every finished run below `<output>/<folder>` to
    `<records>/<folder>`, replacing older records of the same run. Returns how many runs
    were copied."""
    copied = 0
    for folder in folders:
        for pattern in MEMBER_PATTERNS:
            for run in sorted(Path(output, folder).glob(pattern)):
                if not (run / FINISHED).exists():
                    continue
                target = Path(records, folder, run.relative_to(Path(output, folder)))
                with folder_replaced_atomically(target) as written:
                    for name in RECORD_FILES:
                        shutil.copy2(run / name, written / name)
                copied += 1
    return copied
