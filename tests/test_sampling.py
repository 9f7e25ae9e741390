"""Geo-balanced and difficulty-weighted drawing of training rows: the proportions alpha asks for, the same order
for the same seed, and a stream that resumes exactly."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from types import SimpleNamespace

import pytest

from conftest import geo_row, make_images, write_jsonl
from open_r1.configs import GRPOScriptArguments
from open_r1.data.rows import DataError, Row
from open_r1.data.sampling import RowSampling, RowWeights, describe_shares, group_key, weighted_draw
from open_r1.data.streaming import iter_rows
from open_r1.training.grpo_data import grpo_datasets

SIZES = {"FR": 900, "BR": 90, "NZ": 10}


def skewed_rows() -> list[Row]:
    return [Row(id=f"{c}{i}", image_paths=["x.jpg"], question="", solution="", lat=0.0, lon=0.0, country=c)
            for c, n in SIZES.items() for i in range(n)]


def expected_shares(alpha: float) -> dict[str, float]:
    total = sum(n ** alpha for n in SIZES.values())
    return {c: n ** alpha / total for c, n in SIZES.items()}


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_group_shares_over_10k_draws_follow_n_to_the_alpha(alpha):
    rows = skewed_rows()
    weights = RowWeights.fit(RowSampling("country", alpha), rows)
    drawn = Counter(rows[i].country for i in weighted_draw([weights(r) for r in rows], 10_000, seed=0))
    for country, share in expected_shares(alpha).items():
        assert drawn[country] / 10_000 == pytest.approx(share, abs=0.015), (country, dict(drawn))


def test_the_same_seed_draws_the_same_order_and_another_seed_another():
    rows = skewed_rows()
    weights = [RowWeights.fit(RowSampling("country", 0.0), rows)(r) for r in rows]
    assert weighted_draw(weights, 500, seed=3) == weighted_draw(weights, 500, seed=3)
    assert weighted_draw(weights, 500, seed=3) != weighted_draw(weights, 500, seed=4)


def test_groups_by_region_and_geocell():
    row = Row(id="a", image_paths=[], question="", solution="", lat=48.85, lon=2.35, country="France",
              region="Ile-de-France")
    assert group_key(row, "region") == "France/Ile-de-France"
    assert group_key(row, "geocell", 3) == "u09"
    assert group_key(Row(id="b", image_paths=[], question="", solution=""), "geocell") == "(unknown)"


def test_difficulty_weights_rows_and_zero_difficulty_rows_are_never_drawn():
    rows = [Row(id=str(i), image_paths=[], question="", solution="", extra={"difficulty": d})
            for i, d in enumerate([0.0, 0.25, 0.75])]
    weights = RowWeights.fit(RowSampling(sample_by="difficulty"), rows)
    drawn = Counter(weighted_draw([weights(r) for r in rows], 10_000, seed=1))
    assert drawn[0] == 0 and drawn[2] / 10_000 == pytest.approx(0.75, abs=0.015)
    bad = Row(id="x", image_paths=[], question="", solution="", source="t.jsonl:7", extra={"difficulty": "hard"})
    with pytest.raises(DataError, match="t.jsonl:7: field 'difficulty'"):
        weights(bad)
    with pytest.raises(DataError, match="nothing to train on"):
        weighted_draw([0.0, 0.0], 10, seed=0)


def test_bad_settings_are_refused():
    for kwargs in (dict(balance_by="city"), dict(balance_by="country", alpha=1.5), dict(sample_by="loss")):
        with pytest.raises(ValueError):
            RowSampling(**kwargs)


@pytest.fixture(scope="module")
def skewed_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("skewed")
    make_images(root / "imgs", ["0.jpg"])
    rows = [geo_row(f"{c}{i}", "0.jpg", country=c) for c, n in (("FR", 90), ("BR", 9), ("NZ", 1)) for i in range(n)]
    return str(write_jsonl(root / "a.jsonl", rows)), str(root / "imgs")


def test_in_memory_training_rows_are_a_seeded_balanced_draw_and_the_start_up_log_shows_the_shares(skewed_files,
                                                                                                    caplog):
    files, folders = skewed_files
    args = GRPOScriptArguments(data_file_paths=files, image_folders=folders, balance_by="country", balance_alpha=0.0)
    with caplog.at_level(logging.INFO):
        train, _ = grpo_datasets(args, SimpleNamespace(seed=5))
    assert "top shares in the data: FR 90.0%, BR 9.0%, NZ 1.0%" in caplog.text
    assert "as drawn: " in caplog.text and "33.3%" in caplog.text
    first = train["id"]
    assert len(first) == 100 and first == grpo_datasets(args, SimpleNamespace(seed=5))[0]["id"]
    countries = Counter(i[:2] for i in first)
    assert countries["NZ"] >= 15  # 1 row of 100 in the data, a third of the draws expected


def test_a_balanced_stream_follows_alpha_is_seeded_and_resumes_exactly(skewed_files):
    files, folders = skewed_files
    options = dict(decode_images=False, chunk_bytes=1024, epochs=None, seed=2,
                   sampling=RowSampling("country", alpha=0.0))
    full = [r["id"] for r in itertools.islice(iter_rows(files, folders, **options), 10_000)]
    shares = Counter(i[:2] for i in full)
    for country in ("FR", "BR", "NZ"):
        assert shares[country] / 10_000 == pytest.approx(1 / 3, abs=0.03), dict(shares)
    assert full[:500] == [r["id"] for r in itertools.islice(iter_rows(files, folders, **options), 500)]
    for start in (1, 137, 4_000):
        resumed = [r["id"] for r in itertools.islice(iter_rows(files, folders, start_row=start, **options), 300)]
        assert resumed == full[start:start + 300]


def test_describe_shares_names_the_top_groups():
    text = describe_shares(["a", "a", "b"], [0.5, 0.5, 1.0], top=2)
    assert text == "2 groups; top shares in the data: a 66.7%, b 33.3%; as drawn: a 50.0%, b 50.0%"
