"""Run records: the small files of each finished seed run that the tables are computed from.

Run folders hold the trained model (tens of MB) and stay out of git; their records
(config, metrics, run facts and training history, about 10 kB a seed) are copied to
`results/<experiment>/<row>/seed-N`, which is committed. The tables are written from the
records, so seeds trained in different sessions or on different machines add up, and the
report can be rewritten where the run folders are gone.
"""

import shutil
from pathlib import Path

RECORD_FILES = ("config.yaml", "metrics.json", "run.json", "history.csv")
FINISHED = "metrics.json"


def save_records(output, records, keys):
    """Copies the records of every finished `<output>/<key>/seed-N` to `<records>/<key>/seed-N`,
    replacing older records of the same seed. Returns how many seed runs were copied."""
    copied = 0
    for key in keys:
        for run in sorted(Path(output, key).glob("seed-*")):
            if not (run / FINISHED).exists():
                continue
            target = Path(records, key, run.name)
            target.mkdir(parents=True, exist_ok=True)
            for name in RECORD_FILES:
                shutil.copy2(run / name, target / name)
            copied += 1
    return copied
