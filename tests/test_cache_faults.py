"""Faults of the feature cache, each reproduced here before it was fixed.

1. Concurrent extractions into one folder (the later one killed) left a COMPLETE folder of half
   zeros: a lock per folder. 2. A damaged complete folder was read without a word, or failed with
   a bare traceback: validation on open. 3. Tiny text encoders with different vocabularies shared
   a cache: the tokenizer vocabulary in the key. 4. A full disk killed extraction with SIGBUS: a
   space check and reservation. 5. An image edited in place (same size and mtime) kept its stale
   features: image contents in the key.
"""

import errno
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest
from PIL import Image

from amsda_keras.data.feature_cache import FeatureCache, cache_directory, extract_features
from amsda_keras.encoders import build_image_encoder, build_text_encoder
from tests.helpers import WORDS, make_table_frame

WAIT_SECONDS = 60
HOLD_LOCK = (
    "import fcntl, sys, time\n"
    "lock = open(sys.argv[1], 'a')\n"
    "fcntl.flock(lock, fcntl.LOCK_EX)\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture(scope="module")
def text_encoder():
    return build_text_encoder("tiny", sequence_length=8, training_texts=sum(WORDS, []))


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    return make_table_frame(tmp_path_factory.mktemp("images"), num_rows=7)


@pytest.fixture(scope="module")
def intact(text_encoder, frame, tmp_path_factory):
    """A complete text cache of `frame`, to copy and damage."""
    return extract_features(text_encoder, frame, cache_root=tmp_path_factory.mktemp("intact"),
                            progress=False)


def _damaged_copy(intact, root, damage):
    directory = root / intact.directory.name
    shutil.copytree(intact.directory, directory)
    damage(directory)
    return directory


def test_lock_second_extraction_waits_for_the_first_and_reads_its_cache(
        text_encoder, frame, tmp_path, monkeypatch, capsys):
    """Failure 1: a second extraction into the same folder started over beside the first (and,
    killed, left a COMPLETE folder of half zeros); now it waits, then reads the first's cache."""
    first_paused, resume_first, second_predicted = (threading.Event() for _ in range(3))
    real_predict = text_encoder.feature_model.predict_on_batch

    def predict(batch):
        if threading.current_thread().name == "second":
            second_predicted.set()
        elif not first_paused.is_set():
            first_paused.set()  # the arrays exist now: the first batch created them
            resume_first.wait(WAIT_SECONDS)
        return real_predict(batch)

    monkeypatch.setattr(text_encoder.feature_model, "predict_on_batch", predict)
    results = {}
    threads = {name: _extraction_thread(name, results, text_encoder, frame, tmp_path / "cache")
               for name in ("first", "second")}
    threads["first"].start()
    try:
        assert first_paused.wait(WAIT_SECONDS)
        threads["second"].start()
        output = _wait_for_output(capsys, "Waiting for another process", lambda: (
            second_predicted.is_set() or not threads["second"].is_alive()))
        assert not second_predicted.is_set() and threads["second"].is_alive()
    finally:
        resume_first.set()
    for thread in threads.values():
        thread.join(WAIT_SECONDS)
    output += capsys.readouterr().out

    directory = cache_directory(text_encoder, frame, tmp_path / "cache")
    assert output.count(f"Waiting for another process extracting into {directory}") == 1
    assert not second_predicted.is_set()  # it read the first one's cache
    first, second = results["first"], results["second"]
    expected = real_predict(text_encoder.preprocessor(frame["text"].tolist()))
    np.testing.assert_allclose(second.arrays["pooled"], expected["pooled"], rtol=2e-3, atol=2e-3)
    np.testing.assert_array_equal(second.arrays["tokens"], first.arrays["tokens"])


def test_lock_held_by_a_process_that_dies_is_released(text_encoder, frame, tmp_path, capsys):
    """Failure 1: the lock is `<folder>.lock` in the cache root, shared between processes, and
    a killed holder releases it."""
    directory = cache_directory(text_encoder, frame, tmp_path / "cache")
    directory.parent.mkdir(parents=True)
    results = {}
    thread = _extraction_thread("waiting", results, text_encoder, frame, tmp_path / "cache")
    with subprocess.Popen([sys.executable, "-c", HOLD_LOCK, f"{directory}.lock"],
                          stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout.readline().strip() == "locked"
            thread.start()
            _wait_for_output(capsys, f"Waiting for another process extracting into {directory}",
                             lambda: not thread.is_alive())
            assert thread.is_alive() and not directory.exists()
        finally:
            holder.kill()
    thread.join(WAIT_SECONDS)
    assert len(results["waiting"]) == len(frame)


def _damage_ids(directory):
    ids = (directory / "ids.txt").read_text().splitlines()
    (directory / "ids.txt").write_text("\n".join(reversed(ids)) + "\n")


def _drop_ids(directory):
    (directory / "ids.txt").unlink()


def _truncate_tokens(directory):
    path = directory / "tokens.npy"
    os.truncate(path, path.stat().st_size // 2)


def _zero_pooled_file(directory):
    path = directory / "pooled.npy"
    path.write_bytes(bytes(path.stat().st_size))


def _damage_mask_header(directory):
    with open(directory / "mask.npy", "r+b") as file:
        file.seek(12)
        file.write(b"}{#!")


def _zero_half_of_pooled(directory):
    pooled = np.load(directory / "pooled.npy", mmap_mode="r+")
    pooled[3:] = 0
    pooled.flush()


def _drop_mask(directory):
    (directory / "mask.npy").unlink()


def _drop_rows(directory):
    np.save(directory / "pooled.npy", np.load(directory / "pooled.npy")[:5])


def _widen_pooled(directory):
    np.save(directory / "pooled.npy", np.load(directory / "pooled.npy").astype(np.float32))


def _narrow_tokens(directory):
    np.save(directory / "tokens.npy", np.load(directory / "tokens.npy")[..., :8])


# (damage, a word the note must hold). `FeatureCache` alone, without the encoder, sees these:
SEEN_ALONE = [
    (_drop_ids, "ids.txt"),
    (_truncate_tokens, "tokens.npy"),
    (_zero_pooled_file, "pooled.npy"),
    (_damage_mask_header, "mask.npy"),
    (_zero_half_of_pooled, "pooled.npy"),
    (_drop_rows, "pooled.npy"),
    (_widen_pooled, "pooled.npy"),
]
# ...and these only with the data's ids and the encoder's outputs:
SEEN_WITH_ENCODER = [
    (_damage_ids, "ids.txt"),
    (_drop_mask, "mask.npy"),
    (_narrow_tokens, "tokens.npy"),
]


def _name(value):
    return getattr(value, "__name__", value)


@pytest.mark.parametrize("damage, word", SEEN_ALONE + SEEN_WITH_ENCODER, ids=_name)
def test_validation_damaged_cache_is_noted_and_extracted_again(
        text_encoder, frame, intact, tmp_path, monkeypatch, capsys, damage, word):
    """Failure 2: a damaged complete cache gave a NaN loss, silent wrong rows or a traceback."""
    directory = _damaged_copy(intact, tmp_path, damage)
    calls = _count_predictions(text_encoder, monkeypatch)
    cache = extract_features(text_encoder, frame, cache_root=tmp_path, progress=False)
    note = capsys.readouterr().out
    assert f"feature cache {directory} is damaged" in note and word in note
    assert len(note.splitlines()) == 1
    assert calls  # extracted again
    assert cache.ids == intact.ids
    for field, array in intact.arrays.items():
        np.testing.assert_array_equal(cache.arrays[field], array)


@pytest.mark.parametrize("damage, word", SEEN_ALONE, ids=_name)
def test_validation_feature_cache_alone_refuses_a_damaged_folder(intact, tmp_path, damage, word):
    """Failure 2: opened directly, a damaged folder raises a ValueError naming it."""
    directory = _damaged_copy(intact, tmp_path, damage)
    with pytest.raises(ValueError, match=f"(?s){re.escape(str(directory))}.*{word}.*Delete"):
        FeatureCache(directory)


def test_validation_features_extracted_damaged_are_an_error(
        text_encoder, frame, tmp_path, monkeypatch):
    """Failure 2: all-zero pooled rows straight from extraction are an error, not a cache."""
    real_predict = text_encoder.feature_model.predict_on_batch

    def zero_first_row(batch):
        outputs = real_predict(batch)
        outputs["pooled"][0] = 0
        return outputs

    monkeypatch.setattr(text_encoder.feature_model, "predict_on_batch", zero_first_row)
    directory = cache_directory(text_encoder, frame, tmp_path)
    with pytest.raises(ValueError, match=f"{re.escape(str(directory))}.*pooled.npy"):
        extract_features(text_encoder, frame, cache_root=tmp_path, progress=False)


def test_key_includes_the_tiny_tokenizer_vocabulary():
    """Failure 3: tiny text encoders from different texts (same weights) shared one cache."""
    texts = ["happy sunny day", "sad rainy day"]
    encoder = build_text_encoder("tiny", sequence_length=8, training_texts=texts[:1])
    same = build_text_encoder("tiny", sequence_length=8, training_texts=texts[:1])
    other = build_text_encoder("tiny", sequence_length=8, training_texts=texts[1:])
    for copy in (same, other):
        copy.backbone.set_weights(encoder.backbone.get_weights())
    assert same.fingerprint() == encoder.fingerprint()
    assert other.fingerprint() != encoder.fingerprint()


def test_disk_space_checked_before_the_arrays_are_created(
        text_encoder, frame, tmp_path, monkeypatch):
    """Failure 4: a full disk killed extraction with SIGBUS and no message."""
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: types.SimpleNamespace(total=10**6, used=10**6 - 1000,
                                                           free=1000))
    directory = cache_directory(text_encoder, frame, tmp_path)
    pattern = f"(?s){re.escape(str(directory))}.*1,000 bytes are free.*--cache-dir"
    with pytest.raises(OSError, match=pattern):
        extract_features(text_encoder, frame, cache_root=tmp_path, progress=False)
    assert not list(directory.glob("*.npy"))


def test_disk_full_while_reserving_the_arrays_is_a_clear_error(
        text_encoder, frame, tmp_path, monkeypatch):
    """Failure 4: space is reserved for real (`posix_fallocate`); ENOSPC there is a message that
    names the folder and how to use another one, and the half-made folder is removed."""
    def no_space(descriptor, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    directory = cache_directory(text_encoder, frame, tmp_path)
    with pytest.raises(OSError) as raised:
        extract_features(text_encoder, frame, cache_root=tmp_path, progress=False)
    message = str(raised.value)
    for part in (str(directory), "need", "free", "--cache-dir", "features.cache_dir",
                 "AMSDA_KERAS_CACHE"):
        assert part in message
    assert isinstance(raised.value, ValueError)  # `training.errors.user_errors` prints one line
    assert not directory.exists()
    monkeypatch.undo()
    assert len(extract_features(text_encoder, frame, cache_root=tmp_path, progress=False)) == 7


def test_key_hashes_image_contents_not_size_and_mtime(frame, tmp_path):
    """Failure 5: an image edited in place, same size and mtime, kept its stale features."""
    encoder = build_image_encoder("tiny", image_size=32)
    frame = frame.copy()
    path = tmp_path / "edited.bmp"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
    frame.loc[0, "image"] = str(path)
    before = extract_features(encoder, frame, cache_root=tmp_path / "cache", progress=False)
    stale = np.array(before.arrays["pooled"][0])

    stat = path.stat()
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    after = extract_features(encoder, frame, cache_root=tmp_path / "cache", progress=False)
    assert after.directory != before.directory
    assert not np.allclose(after.arrays["pooled"][0], stale)
    np.testing.assert_array_equal(after.arrays["pooled"][1:], before.arrays["pooled"][1:])


def _extraction_thread(name, results, encoder, frame, cache_root):
    def run():
        results[name] = extract_features(encoder, frame, cache_root=cache_root, batch_size=2,
                                         progress=False)

    return threading.Thread(target=run, name=name, daemon=True)


def _wait_for_output(capsys, text, gave_up):
    """Polls the printed output until it holds `text`, and returns it; fails if `gave_up()`."""
    output = ""
    deadline = time.monotonic() + WAIT_SECONDS
    while text not in output and not gave_up() and time.monotonic() < deadline:
        time.sleep(0.05)
        output += capsys.readouterr().out
    assert text in output
    return output


def _count_predictions(encoder, monkeypatch):
    calls = []
    real_predict = encoder.feature_model.predict_on_batch
    monkeypatch.setattr(encoder.feature_model, "predict_on_batch",
                        lambda batch: calls.append(1) or real_predict(batch))
    return calls
