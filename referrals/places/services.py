"""Postcodes, districts and distances.

A postcode's district is its outward code (`GL1` of `GL1 2AB`): an area filter matches whole
districts, so `GL1` never matches `GL16`. Coordinates come from the ONS postcode directory
(or any file with the same columns), loaded by `flask places load FILE`.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from sqlalchemy import and_, delete, func, or_, select

from referrals.extensions import db
from referrals.intake.validation import InvalidValue, clean_postcode
from referrals.places.models import Place

# An outward code on its own (`GL1`, `GL16`, `SW1A`, `M1`) and a postcode area (`GL`, `M`).
_DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]?$")
_AREA = re.compile(r"^[A-Z]{1,2}$")
METRES_PER_MILE = 1609.344
EARTH_RADIUS_METRES = 6_371_000
BATCH = 2000


@dataclass(frozen=True)
class Where:
    """What someone typed in a postcode or area box, understood.

    `postcode` when it is a whole postcode, `district` when it is (or has) an outward code,
    `area` when it is only the letters of a postcode area; `centre` when coordinates are known.
    """

    text: str
    postcode: str | None = None
    district: str | None = None
    area: str | None = None
    centre: tuple[float, float] | None = None


def district_of(postcode: str) -> str:
    """The outward code of a clean postcode (`GL1 2AB` -> `GL1`)."""
    return postcode.split(" ")[0]


def understand(text: str) -> Where | None:
    """A postcode, district or area, or None when the text is none of them."""
    compact = re.sub(r"\s", "", text or "").upper()
    if not compact:
        return None
    try:
        postcode = clean_postcode(compact)
    except InvalidValue:
        postcode = None
    if postcode is not None:
        place = db.session.get(Place, postcode)
        centre = (place.latitude, place.longitude) if place else None
        return Where(compact, postcode=postcode, district=district_of(postcode), centre=centre)
    if _DISTRICT.match(compact):
        return Where(compact, district=compact, centre=district_centre(compact))
    if _AREA.match(compact):
        return Where(compact, area=compact)
    return None


def district_centre(district: str) -> tuple[float, float] | None:
    row = db.session.execute(
        select(func.avg(Place.latitude), func.avg(Place.longitude)).where(
            Place.district == district
        )
    ).one()
    return None if row[0] is None else (float(row[0]), float(row[1]))


def postcode_clause(column: Any, where: Where) -> Any:
    """A WHERE clause keeping rows whose (clean) postcode lies in the district or area."""
    if where.district:
        return column.like(where.district + " %")
    assert where.area is not None
    # The area's letters followed by a digit: `G` is Glasgow, not GL or GU.
    return and_(
        column.like(where.area + "%"),
        or_(*(func.substr(column, len(where.area) + 1, 1) == str(d) for d in range(10))),
    )


def in_district_or_area(postcode: str, where: Where) -> bool:
    """The same rule as `postcode_clause`, for rows already in memory."""
    outward = district_of(postcode)
    if where.district:
        return outward == where.district
    assert where.area is not None
    after = outward[len(where.area) : len(where.area) + 1]
    return outward.startswith(where.area) and after.isdigit()


def metres_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine) between two (latitude, longitude) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_METRES * math.asin(math.sqrt(h))


def coordinates_for(postcodes: Iterable[str]) -> dict[str, tuple[float, float]]:
    wanted = sorted(set(postcodes))
    found: dict[str, tuple[float, float]] = {}
    for start in range(0, len(wanted), 500):
        rows = db.session.execute(
            select(Place.postcode, Place.latitude, Place.longitude).where(
                Place.postcode.in_(wanted[start : start + 500])
            )
        )
        found.update({postcode: (lat, lon) for postcode, lat, lon in rows})
    return found


# Loading ---------------------------------------------------------------------------------

_POSTCODE_COLUMNS = ("pcds", "pcd", "pcd2", "postcode")
_LATITUDE_COLUMNS = ("lat", "latitude")
_LONGITUDE_COLUMNS = ("long", "longitude", "lng")
# The ONS directory gives postcodes without a grid reference this latitude.
_NO_GRID_REFERENCE = 99.999999


class PlacesFileRefused(ValueError):
    """The file cannot be loaded; the message says why (and on which line)."""


@dataclass(frozen=True)
class LoadResult:
    loaded: int
    skipped: int


def _column(header: list[str], names: tuple[str, ...]) -> str:
    lowered = {name.strip().lower(): name for name in header}
    for name in names:
        if name in lowered:
            return lowered[name]
    raise PlacesFileRefused(f"the file has no {names[0]} column (looked for {', '.join(names)})")


def read_places(stream: TextIO) -> Iterator[Place | None]:
    """Each line as a Place, or None for a line to skip (terminated or without coordinates).
    Raises PlacesFileRefused for a file that is not a postcode directory."""
    reader = csv.DictReader(stream)
    header = list(reader.fieldnames or [])
    postcode_col = _column(header, _POSTCODE_COLUMNS)
    lat_col = _column(header, _LATITUDE_COLUMNS)
    lon_col = _column(header, _LONGITUDE_COLUMNS)
    terminated_col = next((h for h in header if h.strip().lower() == "doterm"), None)
    for line, row in enumerate(reader, start=2):
        if terminated_col and (row.get(terminated_col) or "").strip():
            yield None
            continue
        try:
            postcode = clean_postcode(row.get(postcode_col) or "")
            latitude = float(row.get(lat_col) or "")
            longitude = float(row.get(lon_col) or "")
        except (InvalidValue, ValueError) as error:
            raise PlacesFileRefused(f"line {line}: {error}") from error
        on_earth = -90 <= latitude <= 90 and -180 <= longitude <= 180
        if latitude == _NO_GRID_REFERENCE or not on_earth:
            yield None
            continue
        yield Place(
            postcode=postcode,
            district=district_of(postcode),
            latitude=latitude,
            longitude=longitude,
        )


def load_places(stream: TextIO) -> LoadResult:
    """Replace the places with the file's, whole or not at all (the caller commits).

    The file is read completely before anything is written, so a bad line leaves the table
    as it was.
    """
    rows: dict[str, dict[str, Any]] = {}
    skipped = 0
    for place in read_places(stream):
        if place is None:
            skipped += 1
            continue
        rows[place.postcode] = {
            "postcode": place.postcode,
            "district": place.district,
            "latitude": place.latitude,
            "longitude": place.longitude,
        }
    db.session.execute(delete(Place))
    values = list(rows.values())
    for start in range(0, len(values), BATCH):
        db.session.execute(Place.__table__.insert(), values[start : start + BATCH])
    return LoadResult(loaded=len(values), skipped=skipped)
