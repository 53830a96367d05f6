"""MagnaTagATune's and MTG-Jamendo's own layouts (a few files each, made here) load with the right tags and splits."""

import pytest

from modeling_audiocap.data.tagging import load_jamendo, load_mtt

MTT_TAGS = ["guitar", "classical", "no voice", "techno"]


def write_mtt(root, clips):
    """`clips`: (clip_id, folder, tags); every clip's mp3 exists except clip 9's."""
    lines = ["\t".join(["clip_id", *MTT_TAGS, "mp3_path"])]
    for clip_id, folder, tags in clips:
        path = f"{folder}/clip-{clip_id}.mp3"
        lines.append("\t".join([str(clip_id), *("1" if t in tags else "0" for t in MTT_TAGS), path]))
        if clip_id != 9:
            (root / "mp3" / folder).mkdir(parents=True, exist_ok=True)
            (root / "mp3" / path).write_bytes(b"ID3")
    (root / "annotations_final.csv").write_text("\n".join(lines) + "\n")


def test_magnatagatune_top_tags_and_its_folder_split(tmp_path):
    write_mtt(tmp_path, [
        (1, "0", {"guitar", "no voice"}), (2, "a", {"guitar"}), (3, "b", {"classical", "techno"}),
        (4, "c", {"guitar", "classical"}), (5, "d", {"no voice"}), (6, "f", set()), (9, "e", {"guitar"}),
    ])
    splits = load_mtt(tmp_path, top_k=3)  # guitar 4, classical 2, no voice 2 (before techno 1: file order breaks ties)
    names = splits["train"].features["tags"].feature.names
    assert names == ["classical", "guitar", "no voice"]
    tags = {split: {r["clip_id"]: sorted(names[t] for t in r["tags"]) for r in splits[split]} for split in splits}
    assert tags["train"] == {1: ["guitar", "no voice"], 2: ["guitar"], 3: ["classical"]}
    assert tags["validation"] == {4: ["classical", "guitar"]}
    assert tags["test"] == {5: ["no voice"], 6: []}  # clip 9 (folder e) has no audio file: skipped
    assert splits["test"][0]["audio"]["path"].endswith("mp3/d/clip-5.mp3")


def write_jamendo(root, split_rows, extra_tag=None):
    header = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"
    tracks = {
        "track_0000214": ("14/214.mp3", ["genre---rock", "instrument---guitar"]),
        "track_0000215": ("15/215.mp3", ["genre---jazz"]),
        "track_0000216": ("16/216.mp3", ["mood/theme---happy", "genre---rock"]),
        "track_0000217": ("17/217.mp3", ["genre---jazz", "instrument---piano"]),
    }

    def line(track):
        path, tags = tracks[track]
        return "\t".join([track, "artist_1", "album_1", path, "200.0", *tags])

    (root / "data" / "splits" / "split-0").mkdir(parents=True)
    (root / "data" / "autotagging_top50tags.tsv").write_text("\n".join([header, *map(line, tracks)]) + "\n")
    for split, members in split_rows.items():
        rows = [line(t) for t in members]
        if extra_tag and split == "test":
            rows.append(line(members[0]) + f"\t{extra_tag}")
        (root / "data" / "splits" / "split-0" / f"autotagging_top50tags-{split}.tsv").write_text(
            "\n".join([header, *rows]) + "\n")
    for path, _ in tracks.values():
        (root / "audio" / path).parent.mkdir(parents=True, exist_ok=True)
        (root / "audio" / path).write_bytes(b"ID3")


def test_mtg_jamendo_tags_and_its_official_split(tmp_path):
    write_jamendo(tmp_path, {"train": ["track_0000214", "track_0000215"], "validation": ["track_0000216"],
                             "test": ["track_0000217"]})
    splits = load_jamendo(tmp_path)
    names = splits["train"].features["tags"].feature.names
    assert names == ["genre---jazz", "genre---rock", "instrument---guitar", "instrument---piano", "mood/theme---happy"]
    assert [sorted(names[t] for t in r["tags"]) for r in splits["train"]] == [
        ["genre---rock", "instrument---guitar"], ["genre---jazz"]]
    assert splits["validation"]["track_id"] == ["track_0000216"] and len(splits["test"]) == 1
    assert splits["test"][0]["audio"]["path"].endswith("audio/17/217.mp3")


def test_a_tag_outside_the_vocabulary_is_refused_by_name(tmp_path):
    write_jamendo(tmp_path, {"train": ["track_0000214"], "validation": ["track_0000215"], "test": ["track_0000216"]},
                  extra_tag="genre---polka")
    with pytest.raises(ValueError, match="genre---polka"):
        load_jamendo(tmp_path)


def test_tags_in_every_form_become_one_tags_column():
    """A list of strings, a Sequence(ClassLabel), one 0/1 column per tag and a delimited string give the same tags."""
    import datasets

    from modeling_audiocap.data.targets import tag_targets

    wanted = [["guitar", "rock"], ["piano"], []]
    names = ["guitar", "piano", "rock"]
    forms = {
        "list": datasets.Dataset.from_dict({"tags": wanted}),
        "classlabel": datasets.Dataset.from_dict(
            {"labels": [[names.index(t) for t in row] for row in wanted]},
            features=datasets.Features({"labels": datasets.Sequence(datasets.ClassLabel(names=names))})),
        "columns": datasets.Dataset.from_dict({n: [int(n in row) for row in wanted] for n in names}),
        "string": datasets.Dataset.from_dict({"tag_list": ["rock | guitar", "piano", ""]}),
    }
    columns = {"list": "tags", "classlabel": "labels", "columns": names, "string": "tag_list"}
    for form, table in forms.items():
        out = tag_targets(datasets.DatasetDict(train=table), columns[form], form)["train"]
        vocabulary = out.features["tags"].feature.names
        assert vocabulary == names, form
        assert [sorted(vocabulary[i] for i in row) for row in out["tags"]] == wanted, form


def test_a_validation_tag_outside_the_training_tags_is_refused_and_bad_targets_are_counted(caplog):
    import datasets

    from modeling_audiocap.data.targets import regression_targets, tag_targets

    splits = datasets.DatasetDict(train=datasets.Dataset.from_dict({"t": ["rock|jazz", "jazz"]}),
                                  validation=datasets.Dataset.from_dict({"t": ["jazz", "polka"]}))
    with pytest.raises(ValueError, match=r"row 1 of the validation split .*\['polka'\]"):
        tag_targets(splits, "t", "my-set")
    table = datasets.Dataset.from_dict({"tempo": ["120", "n/a", "96.5", None], "valence": [0.1, 0.2, float("nan"), 0.4]})
    out = regression_targets(datasets.DatasetDict(train=table), ["tempo", "valence"], "my-set")["train"]
    assert out["targets"] == [[120.0, pytest.approx(0.1)]]
    assert "3 of 4 train rows have a missing or non-numeric target" in caplog.text and "row 1" in caplog.text


def test_the_label_columns_decide_the_problem_type_as_users_expect():
    """A class column: a classifier; a list column, several 0/1 or categorical columns: a tagger (categorical values
    are the tags); number columns: a regressor; a delimited string only when asked."""
    import datasets

    from modeling_audiocap.data.targets import clip_targets

    table = datasets.Dataset.from_dict({
        "genre": ["rock", "jazz", "rock"], "instrument": ["guitar", "piano", "piano"], "tags": [["a"], ["b", "a"], []],
        "loud": [1, 0, 1], "bright": [0, 0, 1], "tempo": [120.0, 96.5, 80.0], "valence": [0.1, -0.2, 0.4],
        "tag_string": ["a|b", "b", ""],
    })
    splits = datasets.DatasetDict(train=table)

    def read(columns, problem_type=None):
        label = clip_targets(splits, columns, problem_type, "my-set")["train"]
        feature = label.features["label"]
        names = getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", None)
        return feature, names, label["label"]

    feature, names, values = read("genre")
    assert isinstance(feature, datasets.ClassLabel) and [names[v] for v in values] == ["rock", "jazz", "rock"]
    feature, names, values = read("genre,instrument")
    assert names == ["guitar", "jazz", "piano", "rock"]
    assert [sorted(names[i] for i in row) for row in values] == [["guitar", "rock"], ["jazz", "piano"], ["piano", "rock"]]
    feature, names, values = read(["loud", "bright"])
    assert names == ["loud", "bright"] and [sorted(names[i] for i in row) for row in values] == [["loud"], [], ["bright", "loud"]]
    assert read("tags")[1] == ["a", "b"]
    feature, names, values = read("tempo,valence")
    assert feature.feature.dtype == "float32" and values == [[120.0, pytest.approx(0.1)], [96.5, pytest.approx(-0.2)],
                                                             [80.0, pytest.approx(0.4)]]
    assert isinstance(read("tag_string")[0], datasets.ClassLabel)  # text, unless asked
    assert read("tag_string", "multi_label_classification")[1] == ["a", "b"]
    with pytest.raises(ValueError, match="one label column"):
        read("genre,instrument", "single_label_classification")


def test_the_dataset_resolver_reads_the_benchmark_layouts_and_typed_metadata(tmp_path):
    """`load_genre_dataset` (every training script's resolver) recognises an MTT copy and a Jamendo clone by their
    layout, with their official splits; a metadata.csv's number column is numbers (a regressor), as in `datasets`."""
    import datasets

    from modeling_audiocap.data.genre import load_genre_dataset

    write_mtt(tmp_path / "mtt", [(1, "0", {"guitar"}), (2, "c", {"classical"}), (3, "d", {"guitar", "techno"})])
    mtt = load_genre_dataset(str(tmp_path / "mtt"), "top2")
    assert {k: len(v) for k, v in mtt.items()} == {"train": 1, "validation": 1, "test": 1}
    assert mtt["test"].features["label"].feature.names == ["classical", "guitar"]
    with pytest.raises(ValueError, match="predefined"):
        load_genre_dataset(str(tmp_path / "mtt"), split_protocol="random")
    write_jamendo(tmp_path / "jamendo", {"train": ["track_0000214"], "validation": ["track_0000215"],
                                         "test": ["track_0000216", "track_0000217"]})
    jamendo = load_genre_dataset(str(tmp_path / "jamendo"), "top50tags-split-0")
    assert len(jamendo["test"]) == 2 and "genre---rock" in jamendo["train"].features["label"].feature.names

    folder = tmp_path / "emo"
    folder.mkdir()
    rows = ["file_name,arousal,valence,split"] + [f"c{i}.wav,{0.1 * i:.1f},{-0.1 * i:.1f},{s}"
                                                   for i, s in enumerate(["train"] * 4 + ["validation", "test"])]
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    emo = load_genre_dataset(str(folder), label_column_name="arousal,valence")
    assert isinstance(emo["train"].features["label"].feature, datasets.Value)
    assert emo["test"]["label"] == [[pytest.approx(0.5), pytest.approx(-0.5)]]
