"""Turn a row's completions into its prediction record: the line `predictions.jsonl` keeps for each image.

A record holds everything the metrics need, so metrics, plots and submissions are recomputed from the file
alone (and a resumed run scores old and new rows alike):

    id, images, completion, parsed, pred_lat, pred_lon, pred_names (as the model wrote them),
    pred_place (the offline geocoder's country/region/city at the predicted point), true_lat, true_lon,
    true_place, error_km, geoguessr, and `guesses` (ranked, each with its own completion and scores) when
    more than one guess was sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from open_r1.answer import parse_answer
from open_r1.data.rows import Row
from open_r1.evaluation.metrics import error_km, guess_points, rank_guesses
from open_r1.geo import reverse_geocode_arrays

Place = dict[str, str | None]


def geocoded_places(lats: Sequence[float | None], lons: Sequence[float | None]) -> list[Place | None]:
    """Country code, region and city of the nearest GeoNames place to each point (None for a missing point)."""
    lat = [float("nan") if v is None else v for v in lats]
    lon = [float("nan") if v is None else v for v in lons]
    countries, regions, cities = reverse_geocode_arrays(lat, lon)
    return [
        None if c is None else {"country": c or None, "region": r or None, "city": t or None}
        for c, r, t in zip(countries.tolist(), regions.tolist(), cities.tolist())
    ]


def true_places(rows: Sequence[Row], geocode_labels: bool = False) -> list[Place]:
    """Truth labels per level: the row's own label, else the geocoder's at the true coordinates.

    `geocode_labels` ignores the rows' labels, so truth and prediction come from one gazetteer.
    """
    geocoded = geocoded_places([r.lat for r in rows], [r.lon for r in rows])
    places = []
    for row, place in zip(rows, geocoded):
        place = place or {}
        places.append({
            level: (place.get(level) if geocode_labels else (getattr(row, level) or place.get(level)))
            for level in ("country", "region", "city")
        })
    return places


def _guess(completion: str, row: Row) -> dict[str, Any]:
    answer = parse_answer(completion)
    lat, lon = (answer.lat, answer.lon) if answer else (None, None)
    km = error_km(lat, lon, row.lat, row.lon)
    return {
        "completion": completion,
        "parsed": answer is not None,
        "lat": lat,
        "lon": lon,
        "names": {"country": answer.country, "region": answer.region, "city": answer.city} if answer else None,
        "error_km": km,
        "geoguessr": guess_points(km, answer is not None),
    }


def build_records(
    rows: Sequence[Row], completions: Sequence[Sequence[str]], geocode_labels: bool = False
) -> list[dict[str, Any]]:
    """One record per row from its k completions; the top-ranked guess is the record's prediction."""
    if len(rows) != len(completions):
        raise ValueError(f"{len(rows)} rows but {len(completions)} lists of completions")
    ranked_guesses = []
    for row, texts in zip(rows, completions):
        if row.lat is None or row.lon is None:
            raise ValueError(f"{row.source}: field 'lat': evaluation needs the true coordinates")
        guesses = [_guess(text, row) for text in texts]
        order = rank_guesses([g["lat"] for g in guesses], [g["lon"] for g in guesses])
        ranked_guesses.append([guesses[i] | {"sample": i} for i in order])
    tops = [guesses[0] for guesses in ranked_guesses]
    pred_places = geocoded_places([g["lat"] for g in tops], [g["lon"] for g in tops])
    records = []
    truths = true_places(rows, geocode_labels)
    for row, guesses, pred_place, true_place in zip(rows, ranked_guesses, pred_places, truths):
        top = guesses[0]
        record = {
            "id": row.id,
            "images": row.image_paths,
            "completion": top["completion"],
            "parsed": top["parsed"],
            "pred_lat": top["lat"],
            "pred_lon": top["lon"],
            "pred_names": top["names"],
            "pred_place": pred_place,
            "true_lat": row.lat,
            "true_lon": row.lon,
            "true_place": true_place,
            "error_km": top["error_km"],
            "geoguessr": top["geoguessr"],
        }
        if len(guesses) > 1:
            record["guesses"] = guesses
        records.append(record)
    return records
