"""Tests for the dataset readers, each on a small fixture in its real on-disk layout."""

import re
import json
from pathlib import Path

import pytest

from amsda_keras.data import detect_format
from amsda_keras.data import read_clmlf
from amsda_keras.data import read_dataset
from amsda_keras.data import read_hfm
from amsda_keras.data import read_manifest
from amsda_keras.data import read_mmsd2
from amsda_keras.data import read_mvsa
from amsda_keras.data import read_tumemo
from amsda_keras.data.source_files import decode_text
from amsda_keras.data.table import UNLABELED

LABEL_FILE_NAME = "all_data_id_and_label.txt"
MVSA_NAMES = ["positive", "neutral", "negative"]
HFM_NAMES = ["not_sarcastic", "sarcastic"]
TUMEMO_NAMES = ["angry", "bored", "calm", "fear", "happy", "love", "sad"]
CP1252_TEXT = "Going to the café with friends today, it’s sunny"
GBK_TEXT = "今天天气很好，我们去公园散步吧。"
UNDECODABLE = bytes([0, 1, 2, 3, 0xFF, 0xFE, 0x81, 0x8D, 0x90, 0x9D, 0, 0, 5, 6, 7])


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def rows(table):
    """The table's rows as (id, text, label, split) tuples, in order."""
    frame = table.frame
    return list(zip(frame["id"], frame["text"], frame["label"], frame["split"]))


# Fixtures: one folder per layout.


@pytest.fixture
def mvsa_single(tmp_path):
    root = tmp_path / "MVSA_Single"
    labels = {
        "1": "positive,positive",
        "2": "neutral,negative",
        "3": "positive,negative",  # dropped: positive vs negative
        "4": "neutral,neutral",
        "6": "positive,happy",  # rejected: unknown label
        "7": "negative,neutral",  # rejected: no text file
        "8": "negative,negative",
        "9": "Positive,neutral",
        "10": "neutral,positive",  # rejected: undecodable text
    }
    lines = ["ID\ttext,image"] + [f"{i}\t{cell}" for i, cell in labels.items()]
    write(root / "labelResultAll.txt", "\r\n".join(lines) + "\r\n")
    texts = {"1": "\ufeff  I love it!\r\n".encode("utf-8"), "2": b"Not great", "3": b"mixed",
             "4": b"A bus", "6": b"x", "8": CP1252_TEXT.encode("cp1252"),
             "9": GBK_TEXT.encode("gbk"), "10": UNDECODABLE}
    for sample_id, raw in texts.items():
        write(root / "data" / f"{sample_id}.txt", raw)
        write(root / "data" / f"{sample_id}.jpg", b"")
    return root


@pytest.fixture
def mvsa_multiple(tmp_path):
    root = tmp_path / "MVSA"
    annotations = {
        "1": "positive,positive\tpositive,neutral\tneutral,positive",  # both: positive
        "2": "neutral,positive\tneutral,neutral\tpositive,neutral",  # neutral / positive
        "3": "positive,neutral\tneutral,negative\tnegative,positive",  # 3 texts differ
        "4": "positive,negative\tpositive,negative\tneutral,negative",  # pos vs neg
        "5": "positive,neutral\tneutral,positive\tnegative,negative",  # amsda only
        "6": "negative,negative\tnegative,neutral\tneutral,neutral",  # both: negative
        "7": "positive,positive",  # rejected: one annotator only
    }
    header = "ID\ttext,image\ttext,image\ttext,image"
    lines = [header] + [f"{i}\t{cells}" for i, cells in annotations.items()]
    write(root / "labelResultAll.txt", "\n".join(lines) + "\n")
    for sample_id in annotations:
        write(root / "data" / f"{sample_id}.txt", f"post {sample_id}\n")
    return root


@pytest.fixture
def clmlf_mvsa(tmp_path):
    data = tmp_path / "dataset" / "data" / "MVSA-single"
    folder = data / "10-flod-1"
    train = [
        {"id": "17", "text": " sunny day ", "emotion_label": 0},
        {"id": "18", "text": "bad label", "emotion_label": 5},
        {"id": "19", "emotion_label": 1},
    ]
    write(folder / "train.json", json.dumps(train))
    write(folder / "dev.json", json.dumps([{"id": "20", "text": "meh", "emotion_label": 1}]))
    write(folder / "test.json", json.dumps([{"id": 21, "text": "awful", "emotion_label": 2}]))
    (data / "dataset_image").mkdir()
    return folder


@pytest.fixture
def clmlf_hfm(tmp_path):
    folder = tmp_path / "dataset" / "data" / "HFM"
    write(folder / "train.json", json.dumps([{"id": "5", "text": "great", "emotion_label": 1}]))
    write(folder / "valid.json", json.dumps([{"id": "6", "text": "ok", "emotion_label": 0}]))
    (folder / "dataset_image").mkdir()
    return folder


@pytest.fixture
def hfm_root(tmp_path):
    root = tmp_path / "hfm"
    train = [
        "['817263540981726354', 'love waiting <num> hours at the dmv # blessed emoji_12', 1]",
        "['817263540981726355', \"i love mondays . # sarcasm\", 1]",  # keyword filter
        "['817263540981726356', 'what a sarcasmo day', 0]",  # not a token match
        "['817263540981726357', 'unterminated",  # rejected: literal_eval fails
        "['817263540981726358', 'a bad label', 7]",  # rejected: unknown label
        "['817263540981726359', 'reposting <url>', 0]",  # keyword filter
    ]
    valid = [
        "['917263540981726355', \"it 's raining again . great\", 1, 0]",
        "['917263540981726356', 'what a joke', 0, 1]",  # keyword kept outside train
    ]
    write(root / "text" / "train.txt", "\r\n".join(train) + "\r\n")
    write(root / "text" / "valid2.txt", "\r\n".join(valid) + "\r\n")
    write(root / "text" / "test2.txt", "['717263540981726350', 'nice', 0, 0]\r\n")
    (root / "dataset_image").mkdir()
    return root


@pytest.fixture
def mmsd2_root(tmp_path):
    root = tmp_path / "MMSD2.0"
    folder = root / "data" / "text_json_final"
    # Written by hand so the ids stay exact in the file, beyond 2**53.
    write(folder / "train.json",
          '[{"image_id": 840006160660983809, "text": "thanks for showing up", "label": 1},'
          ' {"image_id": 8.4e17, "text": "float id", "label": 0}]')
    write(folder / "valid.json", '[{"image_id": 9007199254740993, "text": "ok", "label": 0}]')
    write(folder / "test.json", '[{"image_id": 9007199254740995, "text": "no", "label": 2}]')
    (root / "data" / "dataset_image").mkdir()
    return root


@pytest.fixture
def tumemo_root(tmp_path):
    root = tmp_path / "TumEmo"
    labels = "id label\n101 Happy\n102 sad\n103 Excited\n104 Love\n105\n106 Calm\n"
    write(root / LABEL_FILE_NAME, labels)
    write(root / "all_data" / "101.txt", "Sunshine and coffee\n")
    write(root / "all_data" / "102.txt", "rainy again")
    write(root / "all_data" / "106.txt", CP1252_TEXT.encode("cp1252"))
    return root


@pytest.fixture
def tumemo_jsonl(tmp_path):
    root = tmp_path / "TumEmo_MGNNS"
    lines = [
        {"id": "36450", "text": "so tired", "image": "data/image_data/test_image/36450.jpg",
         "label": "bored"},
        {"id": "36451", "text": "yay", "image": "data/image_data/test_image/36451.jpg",
         "label": "Happy"},
    ]
    write(root / "tumemo.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    return root


# Text decoding.


def test_decode_text_utf8_fallbacks_and_failure():
    assert decode_text("\ufeffhé".encode("utf-8")) == ("hé", "utf-8")
    text, encoding = decode_text(GBK_TEXT.encode("gbk"))
    assert text == GBK_TEXT and encoding == "gb18030"
    assert decode_text(CP1252_TEXT.encode("cp1252"))[0] == CP1252_TEXT
    assert decode_text(UNDECODABLE) == (None, None)


# MVSA.


@pytest.mark.parametrize("label_rule", ["standard", "amsda"])
def test_mvsa_single(mvsa_single, label_rule):
    table = read_mvsa(mvsa_single, label_rule=label_rule)
    assert table.class_names == MVSA_NAMES
    assert rows(table) == [
        ("1", "I love it!", 0, None),
        ("2", "Not great", 2, None),
        ("4", "A bus", 1, None),
        ("8", CP1252_TEXT, 2, None),
        ("9", GBK_TEXT, 0, None),
    ]
    assert table.frame["image"][0] == str(mvsa_single.resolve() / "data" / "1.jpg")
    rejected = {bad.id: bad for bad in table.rejected}
    assert sorted(rejected) == ["10", "6", "7"]
    assert rejected["6"].file == f"{mvsa_single / 'labelResultAll.txt'}:6"
    assert "unknown label" in rejected["6"].reason
    assert rejected["7"].reason == "missing text file"
    assert rejected["10"].file.endswith("10.txt") and "not UTF-8" in rejected["10"].reason
    assert table.notes[0] == (
        f"MVSA label rule {label_rule!r}: dropped 1 posts whose text and image labels "
        "are positive vs negative."
    )
    assert table.notes[1].startswith("2 text files were not UTF-8 and were decoded as ")
    assert len(table.notes) == 2


def test_mvsa_multiple_standard(mvsa_multiple):
    table = read_mvsa(mvsa_multiple)
    assert [(i, label) for i, _, label, _ in rows(table)] == [("1", 0), ("2", 1), ("6", 2)]
    assert table.notes == [
        "MVSA label rule 'standard': dropped 2 posts whose three annotators gave three "
        "different text or image labels.",
        "MVSA label rule 'standard': dropped 1 posts whose text and image labels are "
        "positive vs negative.",
    ]
    [bad] = table.rejected
    assert (bad.id, bad.file) == ("7", f"{mvsa_multiple / 'labelResultAll.txt'}:8")
    assert "expected 4 tab-separated columns" in bad.reason


def test_mvsa_multiple_amsda(mvsa_multiple):
    table = read_mvsa(mvsa_multiple, label_rule="amsda")
    assert [(i, label) for i, _, label, _ in rows(table)] == [
        ("1", 0), ("2", 0), ("5", 0), ("6", 2)
    ]
    assert table.class_names == MVSA_NAMES
    assert table.notes == [
        "MVSA label rule 'amsda': dropped 2 posts where fewer than 2 of the 3 annotators "
        "end with the same label."
    ]


def test_mvsa_errors(mvsa_single, tmp_path):
    with pytest.raises(ValueError, match=r"`label_rule` must be one of .*'majority'"):
        read_mvsa(mvsa_single, label_rule="majority")
    with pytest.raises(ValueError, match="labelResultAll.txt"):
        read_mvsa(tmp_path)
    write(tmp_path / "bad" / "labelResultAll.txt", "ID\ttext,image\textra\n1\ta\tb\n")
    with pytest.raises(ValueError, match="header must have 2 tab-separated columns"):
        read_mvsa(tmp_path / "bad")


# CLMLF.


def test_clmlf_mvsa(clmlf_mvsa):
    table = read_clmlf(clmlf_mvsa)
    assert table.class_names == MVSA_NAMES
    assert rows(table) == [
        ("17", "sunny day", 0, "train"),
        ("20", "meh", 1, "dev"),
        ("21", "awful", 2, "test"),
    ]
    image_dir = clmlf_mvsa.parent.resolve() / "dataset_image"
    assert table.frame["image"][0] == str(image_dir / "17.jpg")
    assert [(bad.id, bad.file) for bad in table.rejected] == [
        ("18", f"{clmlf_mvsa / 'train.json'}[1]"),
        ("19", f"{clmlf_mvsa / 'train.json'}[2]"),
    ]
    assert "unknown label 5" in table.rejected[0].reason
    assert table.rejected[1].reason == "missing field(s) text"


def test_clmlf_hfm_and_overrides(clmlf_hfm, tmp_path):
    table = read_clmlf(clmlf_hfm)
    assert table.class_names == HFM_NAMES
    assert rows(table) == [("5", "great", 1, "train"), ("6", "ok", 0, "dev")]
    assert table.frame["image"][0] == str(clmlf_hfm.resolve() / "dataset_image" / "5.jpg")
    table = read_clmlf(clmlf_hfm, image_dir=tmp_path, class_names=["no", "yes"])
    assert table.class_names == ["no", "yes"]
    assert table.frame["image"][1] == str(tmp_path / "6.jpg")
    (clmlf_hfm / "dataset_image").rmdir()
    with pytest.raises(ValueError, match="pass `image_dir`"):
        read_clmlf(clmlf_hfm)
    with pytest.raises(ValueError, match="No split file"):
        read_clmlf(tmp_path)


# HFM and MMSD2.0.


def test_hfm(hfm_root):
    table = read_hfm(hfm_root)
    assert table.class_names == HFM_NAMES
    assert rows(table) == [
        ("817263540981726354", "love waiting <num> hours at the dmv # blessed emoji_12", 1,
         "train"),
        ("817263540981726356", "what a sarcasmo day", 0, "train"),
        ("917263540981726355", "it 's raining again . great", 0, "dev"),
        ("917263540981726356", "what a joke", 1, "dev"),
        ("717263540981726350", "nice", 0, "test"),
    ]
    assert table.frame["image"][0] == str(
        hfm_root.resolve() / "dataset_image" / "817263540981726354.jpg"
    )
    train_file = hfm_root / "text" / "train.txt"
    assert [(bad.id, bad.file) for bad in table.rejected] == [
        ("4", f"{train_file}:4"),
        ("817263540981726358", f"{train_file}:5"),
    ]
    assert table.rejected[0].reason.startswith("malformed line")
    assert table.rejected[1].reason.startswith("unknown label 7")
    [note] = table.notes
    assert note.startswith("HFM keyword filter (as the official loader): dropped 2 train posts")


def test_mmsd2_exact_ids(mmsd2_root):
    table = read_mmsd2(mmsd2_root)
    assert rows(table) == [
        ("840006160660983809", "thanks for showing up", 1, "train"),
        ("9007199254740993", "ok", 0, "dev"),
    ]
    image_dir = mmsd2_root.resolve() / "data" / "dataset_image"
    assert table.frame["image"][1] == str(image_dir / "9007199254740993.jpg")
    train_file = mmsd2_root / "data" / "text_json_final" / "train.json"
    test_file = mmsd2_root / "data" / "text_json_final" / "test.json"
    assert [(bad.id, bad.file) for bad in table.rejected] == [
        ("1", f"{train_file}[1]"),
        ("9007199254740995", f"{test_file}[0]"),
    ]
    assert "must be an integer or a string" in table.rejected[0].reason
    (mmsd2_root / "data" / "dataset_image").rmdir()
    with pytest.raises(ValueError, match="pass `image_dir`"):
        read_mmsd2(mmsd2_root)


# TumEmo.


def test_tumemo_original(tumemo_root, tmp_path):
    table = read_tumemo(tumemo_root)
    assert table.class_names == TUMEMO_NAMES
    assert rows(table) == [
        ("101", "Sunshine and coffee", 4, None),
        ("102", "rainy again", 6, None),
        ("106", CP1252_TEXT, 2, None),
    ]
    assert table.frame["image"][0] == str(tumemo_root.resolve() / "all_data" / "101.jpg")
    label_file = tumemo_root / LABEL_FILE_NAME
    assert [(bad.id, bad.file) for bad in table.rejected] == [
        ("103", f"{label_file}:4"),
        ("105", f"{label_file}:6"),
        ("104", str(tumemo_root.resolve() / "all_data" / "104.txt")),
    ]
    assert [bad.reason for bad in table.rejected][1:] == ["expected 'id label'",
                                                          "missing text file"]
    assert table.notes[0].startswith("1 text files were not UTF-8")
    table = read_tumemo(tumemo_root, image_dir=tmp_path)
    assert table.frame["image"][0] == str(tmp_path / "101.jpg")


def test_tumemo_jsonl(tumemo_jsonl):
    for path in (tumemo_jsonl, tumemo_jsonl / "tumemo.jsonl"):
        table = read_tumemo(path)
        assert table.class_names == TUMEMO_NAMES
        assert rows(table) == [("36450", "so tired", 1, None), ("36451", "yay", 4, None)]
        assert table.frame["image"][0] == str(
            tumemo_jsonl.resolve() / "data" / "image_data" / "test_image" / "36450.jpg"
        )
    with pytest.raises(ValueError, match="`image_dir` does not apply"):
        read_tumemo(tumemo_jsonl, image_dir="images")


# Manifest.


def test_manifest_jsonl_with_class_names(tmp_path):
    lines = [
        '{"id": "a", "text": " good ", "image": "img/a.jpg", "label": 0, "split": "train"}',
        '{"text": "no id", "image": "/abs/b.jpg", "label": "Negative", "split": "valid"}',
        '{"id": "c", "text": "bad label", "image": "img/c.jpg", "label": 7}',
        '{"id": "d", "text": "broken", ',
        '{"id": "e", "text": "no image", "label": 1}',
        '{"id": "f", "text": "bad split", "image": "f.jpg", "label": 1, "split": "final"}',
    ]
    path = write(tmp_path / "set" / "m.jsonl", "\n".join(lines) + "\n")
    table = read_manifest(path, class_names=MVSA_NAMES)
    assert rows(table) == [("a", "good", 0, "train"), ("2", "no id", 2, "dev")]
    assert list(table.frame["image"]) == [str(tmp_path.resolve() / "set" / "img" / "a.jpg"),
                                          "/abs/b.jpg"]
    assert [(bad.id, bad.file) for bad in table.rejected] == [
        ("4", f"{path}:4"), ("e", f"{path}:5"), ("c", f"{path}:3"), ("f", f"{path}:6"),
    ]
    reasons = [bad.reason for bad in table.rejected]
    assert reasons[0].startswith("malformed JSON")
    assert reasons[1] == "missing field(s) image"
    assert reasons[2].startswith("label out of range: 7")
    assert reasons[3].startswith("unknown split 'final'")


def test_manifest_inferred_class_names(tmp_path):
    lines = [
        '{"text": "t", "image": "0.jpg", "label": 0, "label_name": "pos"}',
        '{"text": "t", "image": "1.jpg", "label": 2, "label_name": "neg"}',
        '{"text": "t", "image": "2.jpg", "label": 1}',
    ]
    path = write(tmp_path / "ints.jsonl", "\n".join(lines))
    table = read_manifest(path)
    assert table.class_names == ["pos", "1", "neg"]
    assert list(table.frame["label"]) == [0, 2, 1]
    write(path, lines[0] + "\n" + lines[0].replace('"pos"', '"good"'))
    with pytest.raises(ValueError, match="names label 0 both 'pos' and 'good'"):
        read_manifest(path)


def test_manifest_csv(tmp_path):
    content = 'text,image,label\n"two\nlines",a.jpg,Happy\nfine,b.jpg,sad\nno label,c.jpg,\n'
    path = write(tmp_path / "m.csv", content)
    table = read_manifest(path)
    assert table.class_names == ["happy", "sad"]
    assert rows(table) == [("3", "two\nlines", 0, None), ("4", "fine", 1, None)]
    [bad] = table.rejected
    assert (bad.file, bad.reason) == (f"{path}:5", "missing field(s) label")
    write(path, "text,label\nx,1\n")
    with pytest.raises(ValueError, match="no column"):
        read_manifest(path)


# Dispatch.


def test_auto_detection(mvsa_single, clmlf_mvsa, hfm_root, mmsd2_root, tumemo_root,
                        tmp_path):
    manifest = write(tmp_path / "m.jsonl", '{"text": "t", "image": "a.jpg", "label": "x"}\n')
    expected = {manifest: "manifest", mvsa_single: "mvsa", clmlf_mvsa: "clmlf",
                hfm_root: "hfm", mmsd2_root: "mmsd2", tumemo_root: "tumemo"}
    for path, data_format in expected.items():
        assert detect_format(path) == data_format
    assert len(read_dataset(mvsa_single).frame) == 5
    assert len(read_dataset(hfm_root).frame) == 5
    assert len(read_dataset(tumemo_root, image_dir=tmp_path).frame) == 3
    assert read_dataset(manifest).class_names == ["x"]


def test_read_dataset_options_and_errors(mvsa_multiple, hfm_root, tmp_path):
    assert len(read_dataset(mvsa_multiple, label_rule="amsda").frame) == 4
    assert len(read_dataset(hfm_root, data_format="hfm", label_rule="standard").frame) == 5
    with pytest.raises(ValueError, match="`label_rule` does not apply to data_format 'hfm'"):
        read_dataset(hfm_root, label_rule="amsda")
    with pytest.raises(ValueError, match="`image_dir` does not apply to data_format 'mvsa'"):
        read_dataset(mvsa_multiple, image_dir="images")
    with pytest.raises(ValueError, match="`data_format` must be"):
        read_dataset(hfm_root, data_format="csv")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_dataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="labelResultAll.txt.*--data-format, one of: manifest"):
        read_dataset(tmp_path / "empty")


# The real shared manifest.


@pytest.mark.large
def test_shared_mvsa_single_manifest(shared_dir):
    table = read_dataset(shared_dir / "datasets" / "mvsa_single" / "mvsa_single.jsonl")
    assert table.class_names == MVSA_NAMES
    assert (table.rejected, table.notes) == ([], [])
    assert table.frame["split"].value_counts().to_dict() == {"train": 3611, "dev": 450}
    train = table.frame[table.frame["split"] == "train"]
    assert train["label"].value_counts().sort_index().tolist() == [2147, 376, 1088]
    assert Path(table.frame["image"][0]).is_file()


def test_every_row_knows_where_it_was_read(mvsa_single, clmlf_mvsa, hfm_root, mmsd2_root,
                                           tumemo_root, tmp_path):
    manifest = write(tmp_path / "m.jsonl", '{"text": "t", "image": "a.jpg", "label": "x"}\n')
    expected = {
        manifest: rf"{re.escape(str(manifest))}:1",
        mvsa_single: r".*/data/\w+\.txt",
        clmlf_mvsa: r".*/(train|dev|test)\.json\[\d+\]",
        hfm_root: r".*/text/\w+\.txt:\d+",
        mmsd2_root: r".*/(train|valid|test)\.json\[\d+\]",
        tumemo_root: r".*/\w+\.txt",
    }
    for path, pattern in expected.items():
        options = {"image_dir": tmp_path} if path == tumemo_root else {}
        sources = read_dataset(path, **options).frame["source"]
        assert len(sources) > 0 and sources.str.fullmatch(pattern).all(), (path, list(sources))


def test_manifest_read_for_prediction_needs_no_labels(tmp_path):
    path = write(tmp_path / "posts.csv", "id,text,image\na,sunny day,a.jpg\nb,rain,b.jpg\n")
    table = read_manifest(path, class_names=["positive", "negative"], labels_required=False)
    assert rows(table) == [("a", "sunny day", UNLABELED, None), ("b", "rain", UNLABELED, None)]
    with pytest.raises(ValueError, match="without labels needs `class_names`"):
        read_manifest(path, labels_required=False)
    with pytest.raises(ValueError, match="no column.*label"):
        read_manifest(path, class_names=["positive", "negative"])
    labelled = write(tmp_path / "posts.jsonl",
                     '{"text": "x", "image": "a.jpg", "label": "negative"}\n'
                     '{"text": "y", "image": "b.jpg", "label": "happy"}\n')
    table = read_manifest(labelled, class_names=["positive", "negative"], labels_required=False)
    assert table.frame["label"].tolist() == [1]
    assert "unknown label 'happy'" in table.rejected[0].reason
