"""The error CDF and the world map: valid PNGs, with great circles cut at the antimeridian."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from open_r1.data.rows import Row
from open_r1.evaluation import plots
from open_r1.evaluation.records import build_records

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def records():
    truths = [(48.8534, 2.3488), (-36.8485, 174.7633), (35.6762, 139.6503), (-33.9249, 18.4241)]
    guesses = [[(48.9, 2.4), (40.4, -3.7)], [(21.3, -157.8), (-36.9, 174.8)], [None, None], [(-33.9, 18.4), None]]
    rows = [Row(id=str(i), image_paths=["x.jpg"], question="", solution="", lat=lat, lon=lon, source=f"t:{i}")
            for i, (lat, lon) in enumerate(truths)]
    completions = [[f"<answer>Latitude: {g[0]}\nLongitude: {g[1]}</answer>" if g else "no idea" for g in gs]
                   for gs in guesses]
    return build_records(rows, completions)


@pytest.mark.parametrize("draw", [plots.error_cdf, plots.world_map])
def test_plots_are_valid_pngs_of_real_size(tmp_path, records, draw):
    path = draw(records, tmp_path / "out" / "plot.png", "test run")
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.width >= 600 and image.height >= 400
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 5  # something was drawn, not a blank canvas


def test_great_circle_is_cut_where_it_crosses_the_antimeridian():
    segments = plots.great_circle(-36.85, 174.76, 21.31, -157.86)  # Auckland -> Honolulu crosses 180
    assert len(segments) == 2
    assert segments[0][0].tolist() == pytest.approx([174.76, -36.85], abs=1e-6)
    assert segments[-1][-1].tolist() == pytest.approx([-157.86, 21.31], abs=1e-6)
    assert segments[0][-1][0] > 170 and segments[1][0][0] < -170
    single = plots.great_circle(48.85, 2.35, 40.42, -3.70)
    assert len(single) == 1 and np.all(np.abs(np.diff(single[0][:, 0])) < 1)


def test_great_circle_between_antipodes_is_a_half_circle():
    segments = plots.great_circle(10.0, 20.0, -10.0, -160.0)
    points = np.concatenate(segments)
    assert points[0].tolist() == pytest.approx([20.0, 10.0], abs=1e-6)
    assert points[-1].tolist() == pytest.approx([-160.0, -10.0], abs=1e-6)
    assert np.all(np.isfinite(points))
