"""Chain-of-Region SFT targets: the exact format GRPO rewards, grounded in the row's labels, varied per row."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO
from open_r1.answer import parse_answer, split_completion
from open_r1.data import DataError, Row, load_rows
from open_r1.data.sft_targets import TARGET_ANSWER, chain_of_region_target, resolve_labels, sft_target, sft_targets
from open_r1.geo import same_country
from open_r1.rewards.format import format_parts, format_score

# The format reward's documented range is [0, 1] (rewards/format.py: its part weights "sum to 1"), so a target
# that gets every part right (one think block, one answer block, a coordinate pair, the whole country-region-city
# chain) scores exactly 1.0. Written out here rather than summed from the module's own FORMAT_WEIGHTS, so a change
# to the weights that breaks "the full reward is 1" fails this test instead of moving the expectation with it.
MAX_FORMAT = 1.0


@pytest.fixture(scope="module")
def demo_rows(demo_data):
    train, test, images = demo_data
    return load_rows(f"{train}:{test}", str(images))


def test_every_demo_target_earns_the_full_format_reward_and_parses_to_the_rows_coordinates(demo_rows):
    for row in demo_rows:
        target = chain_of_region_target(row)
        assert format_score(target) == pytest.approx(MAX_FORMAT), (row.id, target, format_parts(target))
        parsed = parse_answer(target)
        assert parsed is not None, target
        assert parsed.lat == pytest.approx(row.lat, abs=1e-4) and parsed.lon == pytest.approx(row.lon, abs=1e-4)
        assert same_country(parsed.country, row.country), (row.country, parsed.country)
        assert parsed.city == row.city and parsed.region == row.region


def test_chain_goes_from_continent_to_city_in_order(demo_rows):
    row = next(r for r in demo_rows if r.city == "Sydney")
    think, answer = split_completion(chain_of_region_target(row))
    positions = [think.find(name) for name in ("Oceania", "Australia", "New South Wales", "Sydney")]
    assert -1 not in positions and positions == sorted(positions), think
    assert "Country: Australia" in answer  # the code 'AU' is shown as a name


def test_missing_labels_come_from_the_offline_reverse_geocoder():
    target = chain_of_region_target({"id": "p", "lat": 48.8566, "lon": 2.3522})
    parsed = parse_answer(target)
    assert same_country(parsed.country, "FR") and parsed.city == "Paris", target
    assert parsed.region and "France" in parsed.region  # GeoNames' admin1 for Paris: Ile-de-France
    assert format_score(target) == pytest.approx(MAX_FORMAT)
    think, _ = split_completion(target)
    assert "Europe" in think


def test_a_given_label_wins_and_the_geocoder_never_mixes_in_another_countrys_places():
    # Labelled Germany at Paris's coordinates: the country stays, and no French region/city is borrowed.
    labels = resolve_labels({"id": "x", "lat": 48.8566, "lon": 2.3522, "country": "Germany"})
    assert (labels.country, labels.region, labels.city, labels.continent) == ("Germany", None, None, "Europe")
    # A given city is kept even where the geocoder would name another one.
    labels = resolve_labels({"id": "y", "lat": 48.8566, "lon": 2.3522, "city": "Lutetia"})
    assert labels.city == "Lutetia" and same_country(labels.country, "FR")


def test_a_point_far_from_any_place_gets_no_invented_names_but_still_a_valid_answer():
    target = chain_of_region_target({"id": "sea", "lat": -40.0, "lon": -120.0})  # the South Pacific
    parsed = parse_answer(target)
    assert (parsed.lat, parsed.lon) == (-40.0, -120.0)
    assert parsed.country is None and parsed.region is None and parsed.city is None, target
    assert format_parts(target).think and format_parts(target).answer


def test_phrasing_varies_across_rows_but_is_fixed_per_row(demo_rows):
    def template(row):  # the think text with the row's names blanked out: what is left is the phrasing
        think, _ = split_completion(chain_of_region_target(row))
        labels = resolve_labels(row)
        for name in (labels.city, labels.region, labels.country, labels.continent):
            think = think.replace(name, "#")
        return think

    phrasings = {template(row) for row in demo_rows}
    assert len(phrasings) >= 8, phrasings
    assert [chain_of_region_target(r) for r in demo_rows[:20]] == [chain_of_region_target(r) for r in demo_rows[:20]]
    row = demo_rows[0]
    by_id = {chain_of_region_target(row, key=f"other-{i}") for i in range(40)}
    assert len(by_id) > 1 and all(parse_answer(t).lat == pytest.approx(row.lat, abs=1e-4) for t in by_id)


def test_the_choice_of_phrasing_does_not_depend_on_the_process_hash_seed():
    code = (
        "from open_r1.data.sft_targets import chain_of_region_target as t;"
        "print('|'.join(t({'id': f'r{i}', 'lat': 35.68, 'lon': 139.69, 'country': 'JP', 'region': 'Tokyo',"
        " 'city': 'Tokyo'}) for i in range(12)))"
    )
    outs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                                check=True).stdout)
    assert len(outs) == 1


def test_targets_fit_the_demo_recipe_completion_length(demo_rows, tiny_model_dir):
    """Every demo target fits GRPO's max_completion_length with room for a model's variations."""
    import yaml
    from transformers import AutoTokenizer

    recipe = yaml.safe_load((REPO / "data_config" / "demo.yaml").read_text())
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    lengths = [len(tokenizer(chain_of_region_target(r))["input_ids"]) for r in demo_rows]
    assert max(lengths) <= 0.85 * recipe["max_completion_length"], max(lengths)


def test_target_modes_and_rows_without_coordinates():
    geo = Row(id="g", image_paths=["a.jpg"], question="q", solution="Latitude: 1\nLongitude: 2", lat=1.0, lon=2.0,
              country="KE", source="f:1")
    plain = Row(id="p", image_paths=["a.jpg"], question="What colour?", solution="<answer>red</answer>", source="f:2")
    empty = Row(id="e", image_paths=["a.jpg"], question="What colour?", solution="", source="f:3")
    assert sft_target(geo, TARGET_ANSWER) == "Latitude: 1\nLongitude: 2"
    assert parse_answer(sft_target(geo)).lat == 1.0 and "<think>" in sft_target(geo)
    assert sft_targets([geo, plain])[1] == "<answer>red</answer>"  # non-geo rows keep their own answer
    with pytest.raises(DataError, match="f:3"):
        sft_target(empty)
    with pytest.raises(ValueError, match="targets"):
        sft_target(geo, "nonsense")
