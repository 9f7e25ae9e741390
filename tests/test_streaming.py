"""Streaming rows: the map-style columns, every row once per epoch, exact resume, disjoint ranks, shards,
and the path through TRL's GRPO stream ordering and Accelerate's per-rank slicing."""

from __future__ import annotations

import io
import itertools
import json
import tarfile
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from conftest import geo_row, make_images, write_jsonl
from open_r1.answer import render_answer
from open_r1.data import DataError, load_rows
from open_r1.data.dataset import rows_to_dataset, with_images
from open_r1.data.images import OVERSIZE_FACTOR, load_image
from open_r1.data.streaming import grpo_rows_consumed, iter_rows, streaming_dataset

MAX_PIXELS = 56 * 56


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """120 rows over two files (one of them sorted by 'country'), small blocks so a file has many."""
    root = tmp_path_factory.mktemp("many")
    make_images(root / "imgs", [f"{i}.jpg" for i in range(6)])
    first = write_jsonl(root / "a.jsonl", [geo_row(f"a{i}", f"{i % 6}.jpg", country=f"C{i // 10}") for i in range(80)])
    second = write_jsonl(root / "b.jsonl", [geo_row(f"b{i}", [f"{i % 6}.jpg", "0.jpg"]) for i in range(40)])
    return f"{first}:{second}", str(root / "imgs")


def ids(files, folders, limit=None, **options):
    options = {"decode_images": False, "chunk_bytes": 1024, **options}
    return [row["id"] for row in itertools.islice(iter_rows(files, folders, **options), limit)]


def test_rows_have_the_map_style_columns_and_values(demo_data):
    train, _, images = demo_data
    reference = with_images(rows_to_dataset(load_rows(str(train), str(images))), MAX_PIXELS)
    expected = {reference[i]["id"]: reference[i] for i in range(len(reference))}
    streamed = list(iter_rows(str(train), str(images), max_pixels=MAX_PIXELS, seed=3))
    assert len(streamed) == len(expected)
    for row in streamed:
        want = expected[row["id"]]
        assert row.keys() == want.keys()
        for key in want.keys() - {"images"}:
            assert row[key] == want[key], key
        assert [np.asarray(i).tolist() for i in row["images"]] == [np.asarray(i).tolist() for i in want["images"]]


def test_every_row_once_per_epoch_shuffled_across_files_and_blocks(many):
    files, folders = many
    first = ids(files, folders, seed=0)
    assert Counter(first) == Counter([f"a{i}" for i in range(80)] + [f"b{i}" for i in range(40)])
    assert first == ids(files, folders, seed=0)  # the order is a function of the seed
    assert first != ids(files, folders, seed=1)
    # the first 20 rows come from all over both files, not from their first blocks
    assert {i[0] for i in first[:20]} == {"a", "b"} and len({int(i[1:]) // 10 for i in first[:20] if i[0] == "a"}) >= 4

    two_epochs = ids(files, folders, seed=0, epochs=2)
    assert two_epochs[:120] == first and Counter(two_epochs[120:]) == Counter(first) and two_epochs[120:] != first

    in_order = ids(files, folders, shuffle=False)
    assert in_order == [f"a{i}" for i in range(80)] + [f"b{i}" for i in range(40)]


def test_sources_name_the_right_line_in_every_block(many):
    files, folders = many
    loaded = {row.id: row.source for row in load_rows(files, folders)}
    streamed = {row["id"]: row["source"] for row in iter_rows(files, folders, decode_images=False, chunk_bytes=700)}
    assert streamed == loaded


def test_start_row_resumes_exactly_without_replaying(many):
    files, folders = many
    full = ids(files, folders, seed=5, epochs=3)
    for start in (0, 7, 119, 120, 133, 250):  # inside the first epoch, at its end, in later epochs
        assert ids(files, folders, seed=5, epochs=3, start_row=start) == full[start:]


def test_ranks_get_disjoint_rows_that_cover_the_stream(many):
    files, folders = many
    full = ids(files, folders, seed=2)
    parts = [ids(files, folders, seed=2, rank=r, world_size=3) for r in range(3)]
    assert parts == [full[r::3] for r in range(3)]
    assert sorted(sum(parts, [])) == sorted(full)
    with pytest.raises(ValueError, match="rank and world_size"):
        ids(files, folders, rank=3, world_size=3)


def write_shard(path, samples):
    with tarfile.open(path, "w") as tar:
        for key, files in samples:
            for ext, data in files.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def jpeg(color, size=(96, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_webdataset_shards_stream_next_to_jsonl_files(tmp_path, demo_data):
    for n in range(2):
        write_shard(tmp_path / f"s-{n}.tar", [
            (f"{n}-{k}", {"jpg": jpeg((60 * k, 100, 20 * n)), "json": json.dumps(
                {"lat": 10.0 * n + k, "lon": -5.0 * k, "country": "XX" if k == 0 else None}).encode()})
            for k in range(3)
        ])
    train, _, images = demo_data
    pattern = str(tmp_path / "s-{0..1}.tar")
    rows = list(iter_rows(f"{pattern}:{train}", f"-:{images}", max_pixels=MAX_PIXELS, seed=0))
    shard_rows = {r["id"]: r for r in rows if r["source"].startswith(str(tmp_path))}
    assert len(rows) == 6 + len(load_rows(str(train), str(images)))
    assert sorted(shard_rows) == [f"{n}-{k}" for n in range(2) for k in range(3)]
    row = shard_rows["1-2"]
    assert row["image_paths"] == [f"{tmp_path / 's-1.tar'}#1-2.jpg"]
    assert (row["lat"], row["lon"], row["country"]) == (12.0, -10.0, None)
    assert row["solution"] == render_answer(12.0, -10.0)
    assert shard_rows["0-0"]["country"] == "XX"
    same_file = tmp_path / "1-2.jpg"
    same_file.write_bytes(jpeg((120, 100, 20)))
    expected = load_image(str(same_file), MAX_PIXELS)  # decoded and bounded exactly as a jsonl row's image
    assert row["images"][0].size == expected.size and expected.width * expected.height <= MAX_PIXELS * OVERSIZE_FACTOR
    assert np.array_equal(np.asarray(row["images"][0]), np.asarray(expected))
    assert "Where was this photo taken?" in row["prompt"][0]["content"]


def test_a_bad_row_is_located_or_skipped_and_counted(tmp_path, caplog):
    make_images(tmp_path / "imgs", ["a.jpg"])
    rows = [geo_row(1, "a.jpg"), geo_row(2, "gone.jpg"), "{oops", geo_row(4, "a.jpg")]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataError, match=r"d\.jsonl:2: field 'image': file not found"):
        list(iter_rows(str(data), str(tmp_path / "imgs"), shuffle=False))
    rows = list(iter_rows(str(data), str(tmp_path / "imgs"), shuffle=False, skip_bad_rows=True))
    assert [r["id"] for r in rows] == ["1", "4"]
    warnings = [r.getMessage() for r in caplog.records]
    assert any("skipping bad row 1" in w and "d.jsonl:2" in w for w in warnings)
    assert any("skipping bad row 2" in w and "d.jsonl:3: invalid JSON" in w for w in warnings)


def test_grpo_stream_keeps_prompt_groups_whole_and_ranks_disjoint(many):
    """TRL repeats each prompt num_generations times in the stream; Accelerate must then slice every global
    batch across ranks (not split the files), or a prompt's group would be torn apart."""
    from accelerate.data_loader import IterableDatasetShard, prepare_data_loader
    from torch.utils.data import DataLoader
    from trl.trainer.utils import repeat_iterable_dataset

    files, folders = many
    dataset = streaming_dataset(files, folders, decode_images=False, epochs=None, chunk_bytes=1024, seed=0)
    assert dataset.n_shards == 1  # with n_shards >= ranks Accelerate would give each rank its own files instead
    stream = repeat_iterable_dataset(dataset, mini_repeat_count=4, batch_size=2, repeat_count=2)
    per_rank = []
    for rank in range(2):
        loader = prepare_data_loader(
            DataLoader(stream, batch_size=4, collate_fn=list), num_processes=2, process_index=rank,
            dispatch_batches=False, put_on_device=False,
        )
        assert isinstance(loader.dataset, IterableDatasetShard)
        batches = []
        for batch in loader:
            batches.append([row["id"] for row in batch])
            if len(batches) == 8:
                break
        per_rank.append(batches)
    first_rows = [r["id"] for r, _ in zip(iter(dataset), range(8))]
    for step in range(8):
        zero, one = per_rank[0][step], per_rank[1][step]
        assert len(set(zero)) == 1 and len(set(one)) == 1 and zero != one  # one whole group per rank
    # both ranks together walk the stream in order, each unique row once per generation (the repeat_count copy
    # comes next), and rank 0 never sees rank 1's prompts
    assert [per_rank[0][s][0] for s in (0, 2, 4, 6)] == first_rows[0::2][:4]
    assert [per_rank[1][s][0] for s in (0, 2, 4, 6)] == first_rows[1::2][:4]
    assert all(per_rank[r][s] == per_rank[r][s + 1] for r in range(2) for s in (0, 2, 4, 6))


def test_trl_repeats_share_decoded_images_instead_of_copying_them(demo_data):
    """TRL deep-copies each record once per generation and repeat; the pixels are shared, the rest copied."""
    from trl.trainer.utils import repeat_iterable_dataset

    train, _, images = demo_data
    dataset = streaming_dataset(str(train), str(images), max_pixels=MAX_PIXELS, seed=0)
    repeated = repeat_iterable_dataset(dataset, mini_repeat_count=4, batch_size=2, repeat_count=2)
    rows = list(itertools.islice(repeated, 16))  # 2 prompts x 4 generations x 2 repeats
    assert len({row["id"] for row in rows}) == 2
    for row in rows:
        twin = next(r for r in rows if r["id"] == row["id"])
        assert all(a is b for a, b in zip(row["images"], twin["images"]))
        assert isinstance(row["images"][0], Image.Image) and row["images"][0].mode == "RGB"
    assert rows[0]["prompt"] == rows[1]["prompt"] and rows[0]["prompt"] is not rows[1]["prompt"]


@pytest.mark.parametrize("settings", [
    dict(per_device_train_batch_size=4, num_generations=2, gradient_accumulation_steps=2),
    dict(per_device_train_batch_size=2, num_generations=2, gradient_accumulation_steps=3, steps_per_generation=2),
    dict(per_device_train_batch_size=4, num_generations=4, gradient_accumulation_steps=1, num_iterations=2),
])
def test_rows_consumed_matches_what_trl_reads(tmp_path, settings):
    """Feed TRL's own stream ordering a numbered stream and count the rows a run has read after each step."""
    from datasets import IterableDataset
    from trl import GRPOConfig
    from trl.trainer.utils import repeat_iterable_dataset

    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[], **settings)
    numbers = IterableDataset.from_generator(lambda: ({"n": n} for n in range(10_000)))
    stream = repeat_iterable_dataset(
        numbers,
        mini_repeat_count=args.num_generations,
        batch_size=args.generation_batch_size // args.num_generations,
        repeat_count=args.num_iterations * args.steps_per_generation,
    )
    batch = args.per_device_train_batch_size * args.steps_per_generation  # one dataloader batch per micro-step
    items = [row["n"] for row, _ in zip(iter(stream), range(batch * args.gradient_accumulation_steps * 8))]
    for step in range(8):
        used = items[: batch * args.gradient_accumulation_steps * step]
        assert grpo_rows_consumed(step, args) == len(set(used)) == (max(used) + 1 if used else 0)


def test_a_stream_of_only_bad_rows_stops_instead_of_spinning(tmp_path):
    make_images(tmp_path / "imgs", ["a.jpg"])
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(1, "gone.jpg"), geo_row(2, "gone.jpg")])
    stream = iter_rows(str(data), str(tmp_path / "imgs"), skip_bad_rows=True, epochs=None)
    with pytest.raises(DataError, match="every row of epoch 0 was bad"):
        next(stream)


@pytest.mark.slow
def test_grpo_trains_on_the_stream_in_order_and_resumes_where_it_stopped(tmp_path, tiny_model_dir, demo_data):
    """TRL's GRPOTrainer takes the IterableDataset as it is (max_steps set, TRL's own shuffle off); the rows it
    rewards are the stream's rows in order, and a run resumed from a checkpoint with `start_row =
    grpo_rows_consumed(step)` (and the Trainer's own batch skipping off) goes on with the next rows."""
    from trl import GRPOConfig, ModelConfig

    from open_r1.modeling.loading import load_model, load_processor
    from open_r1.training.grpo import build_grpo_trainer

    train, _, images = demo_data
    seen: list[str] = []

    def record_ids(completions, id, **kwargs):  # reward functions receive every column of the rows
        seen.extend(id)
        return [0.0] * len(completions)

    def run(max_steps: int, start_row: int, resume: str | None = None) -> list[str]:
        seen.clear()
        args = GRPOConfig(
            output_dir=str(tmp_path / "run"), per_device_train_batch_size=4, num_generations=2,
            max_completion_length=4, max_steps=max_steps, logging_steps=1, save_steps=2, report_to=[],
            use_cpu=True, bf16=False, seed=0, shuffle_dataset=False, ignore_data_skip=True,
        )
        dataset = streaming_dataset(
            str(train), str(images), max_pixels=56 * 56, epochs=None, seed=7, start_row=start_row
        )
        trainer = build_grpo_trainer(
            load_model(ModelConfig(model_name_or_path=str(tiny_model_dir))),
            load_processor(str(tiny_model_dir), min_pixels=3136, max_pixels=56 * 56),
            [record_ids], args, train_dataset=dataset,
        )
        trainer.train(resume_from_checkpoint=resume)
        assert trainer.state.global_step == max_steps
        return list(dict.fromkeys(seen)), args

    stream = ids(str(train), str(images), limit=8, seed=7, epochs=None, chunk_bytes=1 << 20)
    first, args = run(max_steps=2, start_row=0)
    assert first == stream[: grpo_rows_consumed(2, args)] == stream[:4]
    checkpoint = str(tmp_path / "run" / "checkpoint-2")
    resumed, args = run(max_steps=4, start_row=grpo_rows_consumed(2, args), resume=checkpoint)
    assert resumed == stream[4: grpo_rows_consumed(4, args)] == stream[4:8]


def test_streamed_rows_are_as_strict_as_loaded_ones(tmp_path):
    make_images(tmp_path / "imgs", ["a.jpg"])
    folder = str(tmp_path / "imgs")
    for row, message in [
        (geo_row(1, "../a.jpg"), r"d\.jsonl:1: field 'image': '\.\./a\.jpg' climbs out of the image folder"),
        (geo_row(1, str(tmp_path / "imgs" / "a.jpg")), r"d\.jsonl:1: field 'image': .* is an absolute path"),
        (geo_row(1, "a.jpg", lat="48.85"), r"d\.jsonl:1: field 'lat': expected a JSON number, got the string"),
        (geo_row(1, "a.jpg", lon=True), r"d\.jsonl:1: field 'lon': expected a JSON number, got the boolean"),
    ]:
        data = write_jsonl(tmp_path / "d.jsonl", [row])
        with pytest.raises(DataError, match=message):
            list(iter_rows(str(data), folder, decode_images=False))
    absolute = str(tmp_path / "imgs" / "a.jpg")
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(1, absolute, country="nan", city=float("nan"))])
    (row,) = iter_rows(str(data), folder, allow_absolute_image_paths=True)
    assert row["image_paths"] == [absolute] and (row["country"], row["city"]) == (None, None)
    (row,) = streaming_dataset(str(data), folder, decode_images=False, allow_absolute_image_paths=True)
    assert row["image_paths"] == [absolute]


def test_shard_labels_written_as_nan_are_missing(tmp_path):
    write_shard(tmp_path / "s.tar", [
        ("k0", {"jpg": jpeg((1, 2, 3)), "json": b'{"lat": 48.85, "lon": 2.35, "country": NaN, "region": "nan", '
                                                 b'"city": "None", "id": NaN}'}),
        ("k1", {"jpg": jpeg((1, 2, 3)), "json": b'{"lat": NaN, "latitude": 41.9, "lon": 12.5, "country": "NA"}'}),
        ("k2", {"jpg": jpeg((1, 2, 3)), "json": b'{"lat": true, "lon": 2.0}'}),
    ])
    stream = iter_rows(str(tmp_path / "s.tar"), None, decode_images=False, shuffle=False)
    first, second = next(stream), next(stream)
    assert (first["id"], first["country"], first["region"], first["city"]) == ("k0", None, None, None)
    assert "nan" not in first["solution"].lower()
    assert (second["lat"], second["country"]) == (41.9, "NA")  # a NaN 'lat' gives way to 'latitude'
    with pytest.raises(DataError, match=r"s\.tar:k2: field 'lat': expected a number, got the boolean True"):
        next(stream)
