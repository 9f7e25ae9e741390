"""What one answer says about a photo: its reasoning, its coordinates, the place the offline geocoder finds
there, and a one-paragraph summary in words (no links), as a dict for `--json` or as text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from open_r1.answer import ANSWER_OPEN, parse_answer, split_completion
from open_r1.geo import country_name, nearest_places, reverse_geocode


def _degrees(lat: float, lon: float) -> str:
    return f"{abs(lat):.4f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.4f}° {'E' if lon >= 0 else 'W'}"


def reasoning_of(completion: str) -> str:
    """The <think> block, else whatever precedes the answer block."""
    think, _ = split_completion(completion)
    if think is not None:
        return think.strip()
    return completion.split(ANSWER_OPEN, 1)[0].strip()


def describe(completion: str, images: Sequence[str]) -> dict[str, Any]:
    """The prediction of one photo (or one place seen in several photos) as plain data."""
    answer = parse_answer(completion)
    result: dict[str, Any] = {
        "images": list(images),
        "completion": completion,
        "reasoning": reasoning_of(completion),
        "lat": answer.lat if answer else None,
        "lon": answer.lon if answer else None,
        "names": {"country": answer.country, "region": answer.region, "city": answer.city} if answer else None,
        "place": None,
    }
    if answer is None:
        result["summary"] = "No coordinates could be read from the answer."
        return result
    place = reverse_geocode([answer.lat], [answer.lon])[0]
    _, km = nearest_places([answer.lat], [answer.lon])
    result["place"] = {
        "country": place.country,
        "country_name": country_name(place.country) or place.country,
        "region": place.region or None,
        "city": place.city,
        "distance_km": round(float(km[0]), 1),
    }
    where = ", ".join(p for p in (place.city, place.region, result["place"]["country_name"]) if p)
    summary = f"The model places this photo at {_degrees(answer.lat, answer.lon)}, near {where}"
    summary += f" ({result['place']['distance_km']:.0f} km from the nearest listed town)." if km[0] >= 5 else "."
    written = [n for n in (answer.city, answer.region, answer.country) if n]
    if written:
        summary += f" It named the place as: {', '.join(written)}."
    result["summary"] = summary
    return result


def as_text(prediction: dict[str, Any]) -> str:
    """The prediction for a terminal: images, reasoning, coordinates, geocoded place, summary."""
    lines = [f"== {' + '.join(prediction['images'])} =="]
    lines.append("Reasoning: " + (prediction["reasoning"] or "(none)"))
    if prediction["lat"] is None:
        lines.append("Coordinates: none could be parsed. Full answer:")
        lines.append(prediction["completion"])
    else:
        lines.append(f"Coordinates: {prediction['lat']:.4f}, {prediction['lon']:.4f}")
        place = prediction["place"]
        found = ", ".join(p for p in (place["city"], place["region"], place["country_name"]) if p)
        lines.append(f"Place: {found} [{place['country']}], nearest listed town {place['distance_km']:.1f} km away")
    lines.append("Summary: " + prediction["summary"])
    return "\n".join(lines)
