"""Streaming at scale: each rank decodes only the images of the rows it trains on (replaying TRL's repeats and
Accelerate's batch slicing), and the start-up check is a bounded sample, the rest checked as rows stream."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from conftest import geo_row, make_images, write_jsonl
from open_r1.data import DataError
from open_r1.data.streaming import NotDecoded, RankRows, check_sample, iter_rows, resolve_sources, streaming_dataset
from open_r1.data.streaming import stream as stream_module


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    root = tmp_path_factory.mktemp("ranks")
    make_images(root / "imgs", [f"{i}.jpg" for i in range(6)])
    data = write_jsonl(root / "a.jsonl", [geo_row(f"r{i}", f"{i % 6}.jpg") for i in range(90)])
    return str(data), str(root / "imgs")


def rank_batches(dataset, *, per_device, world, rank, spg, generations, iterations, steps):
    """The batches `rank` gets from TRL's repeat + Accelerate's slicing, exactly as GRPOTrainer builds them."""
    from accelerate.data_loader import prepare_data_loader
    from torch.utils.data import DataLoader
    from trl.trainer.utils import repeat_iterable_dataset

    generation_batch = per_device * world * spg
    stream = repeat_iterable_dataset(dataset, mini_repeat_count=generations,
                                     batch_size=generation_batch // generations, repeat_count=iterations * spg)
    loader = prepare_data_loader(DataLoader(stream, batch_size=per_device * spg, collate_fn=list),
                                 num_processes=world, process_index=rank, dispatch_batches=False, put_on_device=False)
    return list(itertools.islice(loader, steps))


# (per-device batch, world size, steps_per_generation, num_generations, num_iterations)
LAYOUTS = [(4, 2, 1, 4, 1), (2, 2, 2, 4, 2), (3, 2, 2, 3, 1), (2, 2, 1, 4, 1), (2, 3, 1, 3, 1), (8, 2, 1, 8, 1)]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_rank_decodes_only_the_rows_it_keeps(rows, monkeypatch, layout):
    per_device, world, spg, generations, iterations = layout
    decoded = []
    real = stream_module.load_image
    monkeypatch.setattr(stream_module, "load_image", lambda *a, **k: decoded.append(a[0]) or real(*a, **k))
    args = SimpleNamespace(world_size=world, accelerator_config={"split_batches": False},
                           generation_batch_size=per_device * world * spg, num_generations=generations,
                           num_iterations=iterations, steps_per_generation=spg, train_batch_size=per_device)
    steps = 6
    for rank in range(world):
        layout_kw = dict(per_device=per_device, world=world, rank=rank, spg=spg, generations=generations,
                         iterations=iterations, steps=steps)
        options = dict(epochs=None, chunk_bytes=1024, seed=3, start_row=5)
        full = rank_batches(streaming_dataset(*rows, **options), **layout_kw)
        decoded.clear()
        keep = RankRows.for_grpo(SimpleNamespace(**vars(args), process_index=rank))
        lean = rank_batches(streaming_dataset(*rows, decode_only=keep, **options), **layout_kw)
        # the same rows in the same order, every kept image decoded
        assert [[r["id"] for r in b] for b in lean] == [[r["id"] for r in b] for b in full]
        assert not any(isinstance(image, NotDecoded) for b in lean for r in b for image in r["images"])
        kept_rows = {r["id"] for b in lean for r in b}
        # decodes: this rank's rows (plus those of the generation TRL reads ahead when its batch is full)
        read_rows = -(-steps // (iterations * spg)) * (per_device * world * spg // generations)
        assert len(decoded) <= len(kept_rows) + read_rows // world + 1, (rank, len(decoded), len(kept_rows))
        if (per_device * spg) % generations == 0:  # groups never straddle ranks: a 1/world share
            assert len(decoded) <= -(-read_rows // world) + per_device * world * spg // generations


def test_one_process_or_split_batches_decodes_everything():
    args = SimpleNamespace(world_size=1, accelerator_config={"split_batches": False})
    assert RankRows.for_grpo(args) is None
    args = SimpleNamespace(world_size=2, accelerator_config=SimpleNamespace(split_batches=True))
    assert RankRows.for_grpo(args) is None


def test_start_up_check_finds_a_missing_image_in_its_sample_with_file_and_line(tmp_path):
    make_images(tmp_path / "imgs", ["a.jpg"])
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(i, "a.jpg" if i != 3 else "gone.jpg") for i in range(1, 400)])
    sources = resolve_sources(str(data), str(tmp_path / "imgs"))
    with pytest.raises(DataError, match=r"d\.jsonl:3: field 'image': 'gone.jpg' not found"):
        check_sample(sources)
    # deep in the file: found by the random sample of blocks (small blocks so every block gets sampled)
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(i, "a.jpg" if i != 300 else "gone.jpg") for i in range(1, 400)])
    with pytest.raises(DataError, match=r"d\.jsonl:300: field 'image'"):
        check_sample(sources, first_rows=10, random_rows=10_000, chunk_bytes=256)
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(i, "a.jpg") if i != 5 else "{oops" for i in range(1, 400)])
    with pytest.raises(DataError, match=r"d\.jsonl:5: invalid JSON"):
        check_sample(sources)


def test_a_missing_image_past_the_sample_stops_the_stream_with_file_and_line(tmp_path, caplog):
    make_images(tmp_path / "imgs", ["a.jpg"])
    data = write_jsonl(tmp_path / "d.jsonl", [geo_row(i, "a.jpg" if i != 300 else "gone.jpg") for i in range(1, 400)])
    sources = resolve_sources(str(data), str(tmp_path / "imgs"))
    assert check_sample(sources, first_rows=10, random_rows=0) == 10  # start-up does not see row 300
    everything = RankRows(rows_per_generation=2, num_generations=4, repeats=1, rank_batch=4, world_size=2, rank=0)
    kept = [p for p in range(399) if everything(p)]
    # the rank that keeps row 300 stops with its file:line; the other rank never decodes it
    owner = 0 if 299 in kept else 1
    for rank in range(2):
        keep = RankRows(rows_per_generation=2, num_generations=4, repeats=1, rank_batch=4, world_size=2, rank=rank)
        stream = iter_rows(str(data), str(tmp_path / "imgs"), shuffle=False, decode_only=keep, skip_bad_rows=True)
        if rank == owner:
            with pytest.raises(DataError, match=r"d\.jsonl:300: field 'image': file not found"):
                list(stream)
        else:
            assert len(list(stream)) == 399
    # without rank slicing (one process) the stream's usual choice holds: skipped and counted
    stream = iter_rows(str(data), str(tmp_path / "imgs"), shuffle=False, skip_bad_rows=True)
    assert len(list(stream)) == 398
    assert any("skipping bad row 1" in r.getMessage() and "d.jsonl:300" in r.getMessage() for r in caplog.records)
