"""Turn a row's completions into its prediction record: the line `predictions.jsonl` keeps for each image.

A record holds everything the metrics need (the completion, the parsed and geocoded prediction, the truth, error
and score, and the ranked `guesses` when several were sampled), so metrics, plots and submissions are recomputed
from the file alone, and a resumed run scores old and new rows alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from open_r1.answer import parse_answer
from open_r1.data.rows import DataError, Row
from open_r1.evaluation.metrics import Place, error_km, geocoded_places, guess_points, rank_guesses
from open_r1.geo.labels import resolve_places


def true_places(rows: Sequence[Row], geocode_labels: bool = False) -> list[Place]:
    """Truth labels per level by the one labelling rule (`open_r1.geo.labels`): the row's own labels, gaps
    filled from the nearest GeoNames place of the row's country within 300 km (region) / 50 km (city); the
    same truth the converters write, the SFT targets teach and the hierarchy reward pays.

    `geocode_labels` ignores the rows' labels, so every level comes from the gazetteer (within the same caps).
    """
    def labels(level: str) -> list[str | None] | None:
        return None if geocode_labels else [getattr(row, level) for row in rows]

    places = resolve_places([r.lat for r in rows], [r.lon for r in rows], labels("country"), labels("region"),
                            labels("city"))
    return [{"country": c, "region": r, "city": t}
            for c, r, t in zip(places.country.tolist(), places.region.tolist(), places.city.tolist())]


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
            raise DataError(f"{row.source}: field 'lat': evaluation needs the true coordinates")
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
