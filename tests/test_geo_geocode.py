"""Reverse geocoding against places whose country and region are common knowledge, including the cases the
`reverse_geocoder` package's degree-space search gets wrong (high latitude, the antimeridian)."""

import multiprocessing
import threading

import numpy as np
import pytest

from open_r1.geo import geocode, reverse_geocode, reverse_geocode_arrays, same_place

KNOWN = [
    # (lat, lon, country, region, city)
    (38.7223, -9.1393, "PT", "Lisbon", "Lisbon"),
    (35.6762, 139.6503, "JP", "Tokyo", "Tokyo"),
    (-33.8688, 151.2093, "AU", "New South Wales", "Sydney"),
    (40.7128, -74.0060, "US", "New York", "New York City"),
    (69.6492, 18.9553, "NO", "Troms", "Tromsø"),
    (78.2232, 15.6267, "SJ", "Svalbard", "Longyearbyen"),
    (64.1466, -21.9426, "IS", "Capital Region", "Reykjavík"),
    (48.5734, 7.7521, "FR", "Alsace", "Strasbourg"),  # across the Rhine from Kehl
    (48.5700, 7.8160, "DE", "Baden-Württemberg", "Kehl"),
    (31.7619, -106.4850, "US", "Texas", "El Paso"),  # across the Rio Grande from Ciudad Juárez
    (31.6904, -106.4245, "MX", "Chihuahua", "Ciudad Juárez"),
]


@pytest.mark.parametrize("lat, lon, country, region, city", KNOWN)
def test_known_places(lat, lon, country, region, city):
    place = reverse_geocode([lat], [lon])[0]
    assert place.country == country
    assert same_place(place.region, region)
    assert same_place(place.city, city)


def test_antimeridian_in_fiji():
    # Taveuni, where the 180th meridian crosses Fiji. A nearest-neighbour search in raw degrees sees the
    # Fijian towns at +179 degrees as 359 degrees away and answers Wallis and Futuna instead.
    places = reverse_geocode([-16.80, -16.45], [-179.97, 179.99])
    assert [p.country for p in places] == ["FJ", "FJ"]


def test_nearest_is_the_great_circle_nearest():
    """Brute force over every place by 3D dot product: the tree must agree, poles and antimeridian included."""
    table = geocode._places()
    rng = np.random.default_rng(3)
    lat = np.concatenate([rng.uniform(-60, 60, 60), rng.uniform(65, 89, 60), rng.uniform(-89, -50, 20),
                          rng.uniform(-30, 30, 30)])
    lon = np.concatenate([rng.uniform(-180, 180, 140), rng.choice([-1, 1], 30) * rng.uniform(179, 180, 30)])
    index, km = geocode.nearest_places(lat, lon)
    places = geocode._unit_vectors(table.lat, table.lon)
    brute = np.argmax(geocode._unit_vectors(lat, lon) @ places.T, axis=1)
    assert np.array_equal(index, brute)
    assert np.all(km >= 0)


def test_invalid_points_give_none():
    countries, regions, cities = reverse_geocode_arrays([np.nan, 95.0, 38.72], [0.0, 0.0, 200.0])
    assert countries.tolist() == [None, None, None]
    assert reverse_geocode([None], [1.0]) == [None]


def test_vectorised_matches_single_queries():
    lat, lon = [k[0] for k in KNOWN], [k[1] for k in KNOWN]
    countries, regions, cities = reverse_geocode_arrays(lat, lon)
    assert countries.tolist() == [reverse_geocode([a], [b])[0].country for a, b in zip(lat, lon)]


def test_loads_once_under_concurrent_first_use(monkeypatch):
    """Four threads all ask for the places table while the first load is still running: it is loaded once.

    No sleeps: the lock is wrapped so that the fake loader can wait until every other thread has reached it (and
    so is provably inside `_places` with no table yet) before it returns. A `_places` that loads without the lock,
    or that does not check again once it holds it, runs the loader more than once (or never sees the others).
    """
    table = geocode._places()
    threads_count = 4
    monkeypatch.setattr(geocode, "_table", None)
    real_lock = threading.Lock()
    arrivals = threading.Condition()
    at_lock = []  # threads that have reached the lock, counted before they block on it

    class CountingLock:
        def __enter__(self):
            with arrivals:
                at_lock.append(threading.get_ident())
                arrivals.notify_all()
            return real_lock.__enter__()

        def __exit__(self, *exc):
            return real_lock.__exit__(*exc)

    calls = []
    everyone_waited = []

    def load_while_the_others_wait():
        calls.append(threading.get_ident())
        with arrivals:  # the loader holds the lock: the other threads can only be queued on it
            everyone_waited.append(arrivals.wait_for(lambda: len(at_lock) == threads_count, timeout=10))
        return table

    monkeypatch.setattr(geocode, "_lock", CountingLock())
    monkeypatch.setattr(geocode, "_load", load_while_the_others_wait)
    start = threading.Barrier(threads_count)
    results = []

    def first_use():
        start.wait(timeout=30)
        results.append(reverse_geocode([38.72], [-9.14])[0].country)

    threads = [threading.Thread(target=first_use) for _ in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert len(calls) == 1, f"the table was loaded {len(calls)} times"
    assert everyone_waited == [True], "the other threads never reached the lock while the table was loading"
    assert results == ["PT"] * threads_count
    assert geocode._table is table


def _worker(queue):
    queue.put([p.country for p in reverse_geocode([35.68, 40.71], [139.69, -74.0])])


def test_works_in_a_daemonic_spawned_worker():
    """What DataLoader workers are; reverse_geocoder's own search crashes there (it starts a pool)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(queue,), daemon=True)
    process.start()
    result = queue.get(timeout=120)
    process.join(timeout=30)
    assert result == ["JP", "US"]
    assert process.exitcode == 0
