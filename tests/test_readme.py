"""Every shell and Python snippet of README.md runs as written, in order, on the demo data.

A block preceded by `<!-- readme-test: skip (reason) -->` is left out (set-up, the test
command itself, real data, a stopped run). The others run verbatim, with bash or python, in one
working folder, which holds what a user would bring: `photo.jpg`, `new_posts.jsonl` (no labels)
and `labelled_posts.jsonl`.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from amsda_keras.data.demo import make_demo_dataset

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(?P<before>(?:<!--[^\n]*-->\n)*)```(?P<language>\w*)\n(?P<code>.*?)```",
                   re.DOTALL)
SKIP = re.compile(r"<!-- readme-test: skip \((?P<reason>[^)]+)\) -->")
BLOCK_TIMEOUT_S = 600


def readme_blocks():
    """`(language, code, skip reason or None)` of each fenced block, in order."""
    for match in BLOCK.finditer(README.read_text(encoding="utf-8")):
        skip = SKIP.search(match["before"])
        yield match["language"], match["code"], skip and skip["reason"]


def test_every_block_is_run_or_says_why_not():
    blocks = list(readme_blocks())
    assert len(blocks) >= 8
    for language, code, reason in blocks:
        assert language in ("bash", "python"), code
        assert reason or "runs/X" not in code, f"a placeholder path in a block that runs: {code}"


@pytest.fixture
def user_folder(tmp_path, isolated_cache):
    """A working folder with the files a README reader brings, made from the demo data."""
    demo = make_demo_dataset(isolated_cache.parent / "readme_demo")
    rows = [json.loads(line) for line in demo.read_text().splitlines()][:12]
    shutil.copy(demo.parent / rows[0]["image"], tmp_path / "photo.jpg")
    for row in rows:
        row["image"] = str(demo.parent / row["image"])
    posts = [{"text": row["text"], "image": row["image"]} for row in rows]
    for name, records in (("new_posts.jsonl", posts), ("labelled_posts.jsonl", rows)):
        (tmp_path / name).write_text("".join(json.dumps(record) + "\n" for record in records))
    return tmp_path


def test_readme_blocks_run_as_written(user_folder):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    ran = 0
    for language, code, reason in readme_blocks():
        if reason:
            continue
        command = ["bash", "-e", "-c", code] if language == "bash" else [sys.executable, "-c", code]
        result = subprocess.run(command, cwd=user_folder, env=env,
                                capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
        assert result.returncode == 0, f"{code}\nfailed with:\n{result.stderr[-3000:]}"
        ran += 1
    assert ran >= 5
    assert (user_folder / "comparison.md").is_file()
    assert (user_folder / "runs" / "api" / "seed-1" / "saved_model" / "saved_model.pb").is_file()
    assert (user_folder / "predictions.csv").is_file()
