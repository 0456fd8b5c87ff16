"""In-process latency and SQL statements of the open directory: the course finder and the
Open Referral UK feed, at 5,000 published courses (`--courses`).

It has a database of its own (a SQLite file under bench/.data, or the PostgreSQL database
`referrals_bench_public_<courses>`), made once through the service's own functions: providers
with public profiles, venues whose postcodes are in the places table, one contract and the
courses, all running. Each request is anonymous, as the public's are, and is timed warm (from
the published snapshot every worker keeps for `PUBLIC_CACHE_SECONDS`); building the snapshot
itself, what a request pays once a minute, is timed on its own. The public pages' rate limit is
off here, since the benchmark is one client asking thousands of times.

    .venv/bin/python -m bench.public --db sqlite --courses 5000
"""

from __future__ import annotations

import argparse
import io
import random
import time
from datetime import date, timedelta
from datetime import time as clock_time
from typing import Any

from flask import Flask
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from bench import common
from bench.latency import Measured, measure_page

COURSES = 5_000
PROVIDERS = 100
VENUES = 500
DISTRICTS = 20  # GL1 … GL20, round Gloucester


def database_url(kind: str, courses: int) -> str:
    """The directory benchmark's own database: it never shares the scale's."""
    name = f"public_{courses}"
    if kind == "sqlite":
        common.DATA_DIR.mkdir(exist_ok=True)
        return f"sqlite:///{common.DATA_DIR / f'{name}.sqlite'}"
    server = make_url(common.POSTGRES_SERVER)
    database = f"referrals_bench_{name}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if not connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            ):
                connection.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        engine.dispose()
    return server.set(database=database).render_as_string(hide_password=False)


def _postcode(venue: int) -> str:
    return f"GL{venue % DISTRICTS + 1} {venue % 9 + 1}{'ABDEFGHJLNPQRSTUWXYZ'[venue % 20]}A"


def _places_csv(venues: int) -> io.StringIO:
    """Every venue's postcode with a place within about 20 miles of Gloucester."""
    rng = random.Random(7)
    lines = ["pcds,lat,long,doterm"]
    for venue in range(venues):
        lat, long = 51.86 + rng.uniform(-0.25, 0.25), -2.24 + rng.uniform(-0.35, 0.35)
        lines.append(f"{_postcode(venue)},{lat:.6f},{long:.6f},")
    return io.StringIO("\n".join(dict.fromkeys(lines)) + "\n")


def seed(courses: int, today: date, *, providers: int = PROVIDERS, venues: int = VENUES) -> None:
    """Providers with profiles, venues, one contract and `courses` running courses."""
    from referrals.auth.models import OrganisationKind
    from referrals.auth.services import OrganisationFields, create_organisation
    from referrals.courses.schedule import Frequency, Schedule
    from referrals.courses.services import (
        ContractFields,
        CourseFields,
        VenueFields,
        create_course,
        create_venue,
        save_contract,
    )
    from referrals.extensions import db
    from referrals.places.services import load_places
    from referrals.public.models import ProviderProfile
    from referrals.vocab import ArtForm, Pathway, ProviderType

    rng = random.Random(16)
    load_places(_places_csv(venues))
    commissioner = create_organisation(
        None, OrganisationFields("Bench Commissioner", OrganisationKind.COMMISSIONER, None)
    )
    contract = save_contract(
        None,
        ContractFields(
            "Bench directory contract",
            commissioner,
            today - timedelta(days=365),
            today + timedelta(days=365),
        ),
        today=today,
    )
    art_forms, kinds = list(ArtForm), list(ProviderType)
    provider_rows = []
    for n in range(providers):
        provider = create_organisation(
            None, OrganisationFields(f"Bench Arts {n + 1}", OrganisationKind.PROVIDER, None)
        )
        provider_rows.append(provider)
        if n % 5:  # four in five keep a profile
            db.session.add(
                ProviderProfile(
                    organisation_id=provider.id,
                    provider_type=kinds[n % len(kinds)],
                    area="Gloucestershire",
                    art_forms=[form.value for form in rng.sample(art_forms, 3)],
                    description="Arts groups for people living with long-term conditions.",
                    email=f"hello@bench-arts-{n + 1}.example.org",
                    website=f"https://bench-arts-{n + 1}.example.org",
                )
            )
    venue_rows = [
        create_venue(
            None,
            VenueFields(
                f"Bench Hall {n + 1}",
                f"{n + 1} High Street\nGloucester",
                _postcode(n),
                "Step-free entrance",
            ),
        )
        for n in range(venues)
    ]
    db.session.flush()
    for n in range(courses):
        art_form = art_forms[n % len(art_forms)]
        create_course(
            None,
            CourseFields(
                title=f"{art_form.label} group {n + 1}",
                art_form=art_form,
                provider=provider_rows[n % providers],
                contract=contract,
                venue=venue_rows[rng.randrange(venues)],
                capacity=12,
                schedule=Schedule(
                    start_date=today - timedelta(days=rng.randrange(0, 42)),
                    start_time=clock_time(rng.choice((10, 13, 18)), 0),
                    duration_minutes=90,
                    frequency=Frequency.WEEKLY,
                    sessions=10,
                    skip_bank_holidays=False,
                ),
                description="A friendly weekly group; no experience needed.",
                pathways=rng.sample(list(Pathway), 2),
            ),
        )
        if n % 500 == 499:
            db.session.commit()
            common.note(f"  {n + 1:,} courses")
    db.session.commit()


def prepare(kind: str, courses: int, database: str | None) -> tuple[Flask, str]:
    from referrals import create_app

    url = database or database_url(kind, courses)
    app = create_app({**common.bench_config(url), "RATELIMIT_ENABLED": False})
    with app.app_context():
        from flask_migrate import upgrade

        from referrals.courses.models import Course
        from referrals.extensions import db

        common._refuse_other_data(db.engine)
        upgrade()
        if not db.session.scalar(select(Course.id).limit(1)):
            common.note(f"Seeding the directory with {courses:,} courses ...")
            started = time.perf_counter()
            from referrals.clock import today

            seed(courses, today())
            common.note(f"Seeded in {time.perf_counter() - started:.0f} s")
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("ANALYZE"))
            db.session.commit()
        db.session.remove()
    return app, url


def pages(app: Flask) -> list[Measured]:
    from referrals.clock import today
    from referrals.public.catalogue import published

    with app.test_request_context():
        snapshot = published(today())
        listing = snapshot.listings[len(snapshot.listings) // 2]
    return [
        Measured("finder", "public", "/find/"),
        Measured("finder_near_postcode", "public", "/find/?postcode=GL1+2AB&distance=10"),
        Measured(
            "finder_district_art_form_day", "public", "/find/?postcode=GL5&art_form=singing&day=1"
        ),
        Measured("finder_last_page", "public", f"/find/?page={-(-len(snapshot.listings) // 20)}"),
        Measured("course_page", "public", f"/find/courses/{listing.id}"),
        Measured("feed_services", "public", "/openreferral/services?per_page=50"),
        Measured("feed_services_filtered", "public", "/openreferral/services?search=group&day=TU"),
        Measured("feed_service", "public", f"/openreferral/services/{listing.public_id}"),
        Measured(
            "feed_near_postcode",
            "public",
            "/openreferral/service_at_locations?postcode=GL1+2AB&proximity=8000&per_page=50",
        ),
    ]


def snapshot_build(app: Flask, repeat: int) -> dict[str, Any]:
    """Building the published snapshot from the database: once per worker per minute."""
    from referrals.clock import today
    from referrals.extensions import db
    from referrals.public.catalogue import build_snapshot

    counter = common.QueryCounter(common.engine_of(app))
    with app.test_request_context(), counter.attached():
        build_snapshot(today())  # warm
        db.session.expire_all()
        before = counter.count
        times, built = common.timed(lambda: build_snapshot(today()), repeat)
        statements = (counter.count - before) // repeat
    figures: dict[str, Any] = {"courses": len(built.listings)}
    figures.update(common.summarise_ms(times))
    figures["queries"] = statements
    return figures


def run(app: Flask, *, n: int, warmup: int, repeat: int = 5) -> dict[str, Any]:
    counter = common.QueryCounter(common.engine_of(app))
    client = app.test_client()
    results: dict[str, Any] = {}
    with counter.attached():
        for page in pages(app):
            common.note(f"public: {page.name} ({page.path})")
            figures = measure_page(client, page, counter, warmup=warmup, n=n)
            results[page.name] = figures
    common.note("public: building the published snapshot")
    return {"pages": results, "snapshot_build": snapshot_build(app, repeat)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--database", metavar="URL", help="use this database instead")
    parser.add_argument("--courses", type=int, default=COURSES)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="snapshot builds timed")
    args = parser.parse_args(argv)
    app, url = prepare(args.db, args.courses, args.database)
    result: dict[str, Any] = {
        "benchmark": "public",
        "database": common.database_kind(url),
        "courses": args.courses,
        "requests_per_page": args.requests,
        "machine": common.machine(app),
    }
    result.update(run(app, n=args.requests, warmup=args.warmup, repeat=args.repeat))
    return result


if __name__ == "__main__":
    common.emit(main())
