"""The public course finder, a course's page and self-referral: open to everyone."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from wtforms.fields.choices import SelectChoice

from referrals.clock import today
from referrals.extensions import db
from referrals.ids import parse_id
from referrals.places.services import METRES_PER_MILE, understand
from referrals.public.catalogue import WEEKDAY_NAMES, Search, published, search
from referrals.public.forms import SelfReferralForm
from referrals.public.services import SelfReferral, gp_practices, refer_yourself
from referrals.security import public
from referrals.vocab import ArtForm, ContactMethod, Pathway

bp = Blueprint("public", __name__)

DISTANCES_MILES = (1, 3, 5, 10, 20)
PER_PAGE = 20
# A self-referral is a few kilobytes at most; anything far larger is not from the form.
MAX_FORM_BYTES = 32 * 1024


def _finder_search() -> tuple[Search, dict[str, str], str | None]:
    """The search from the query string, what to show back in the boxes, and a message for
    a place that is not a postcode."""
    args = request.args
    art_form = args.get("art_form", "")
    pathway = args.get("pathway", "")
    day = args.get("day", "")
    place = " ".join(args.get("postcode", "")[:12].split()).upper()
    miles = args.get("distance", "")
    where = understand(place) if place else None
    problem = None
    if place and where is None:
        problem = "Enter a postcode, like GL1 2AB, or the first part of one, like GL1"
    within = float(miles) * METRES_PER_MILE if miles in {str(d) for d in DISTANCES_MILES} else None
    query = Search(
        art_form=ArtForm(art_form) if art_form in ArtForm._value2member_map_ else None,
        pathway=Pathway(pathway) if pathway in Pathway._value2member_map_ else None,
        weekday=int(day) if day in {"0", "1", "2", "3", "4", "5", "6"} else None,
        where=where,
        within_metres=within if where is not None else None,
    )
    shown = {
        "art_form": query.art_form.value if query.art_form else "",
        "pathway": query.pathway.value if query.pathway else "",
        "day": day if query.weekday is not None else "",
        "postcode": place,
        "distance": miles if within else "",
    }
    return query, shown, problem


@bp.get("/")
@public
def finder() -> ResponseReturnValue:
    query, shown, problem = _finder_search()
    found = [] if problem else search(published(today()).listings, query)
    page = max(1, parse_id(request.args.get("page", "1")) or 1)
    return render_template(
        "public/finder.html",
        found=found[(page - 1) * PER_PAGE : page * PER_PAGE],
        total=len(found),
        page=page,
        pages=max(1, -(-len(found) // PER_PAGE)),
        shown=shown,
        problem=problem,
        searched=bool(request.args),
        ArtForm=ArtForm,
        Pathway=Pathway,
        weekdays=WEEKDAY_NAMES,
        distances=DISTANCES_MILES,
    )


@bp.get("/courses/<int:course_id>")
@public
def course(course_id: int) -> ResponseReturnValue:
    listing = published(today()).by_id.get(course_id)
    if listing is None:
        abort(404)
    return render_template("public/course.html", listing=listing)


@bp.route("/refer-yourself", methods=["GET", "POST"])
@public
def refer_yourself_page() -> ResponseReturnValue:
    if (request.content_length or 0) > MAX_FORM_BYTES:
        abort(413)
    practices = gp_practices()
    form = SelfReferralForm(
        today=today(), practices=[SelectChoice(str(p.id), p.name) for p in practices]
    )
    course_id = parse_id(request.values.get("course", ""))
    listing = published(today()).by_id.get(course_id) if course_id else None
    if request.method == "GET" and listing is not None:
        form.course.data = str(listing.id)
    if form.validate_on_submit():
        if form.from_a_program:
            # Answered as if sent, so that a program learns nothing; nothing is kept.
            return redirect(url_for("public.thank_you"))
        assert form.date_of_birth.data is not None
        practice = next(p for p in practices if str(p.id) == form.gp_practice.data)
        refer_yourself(
            current_user._get_current_object(),
            SelfReferral(
                given_name=form.given_name.data or "",
                family_name=form.family_name.data or "",
                date_of_birth=form.date_of_birth.data,
                nhs_number=form.nhs_number.data or None,
                postcode=form.postcode.data or "",
                gp_practice=practice,
                phone=form.phone.data or None,
                email=form.email.data or None,
                preferred_contact=ContactMethod(form.preferred_contact.data),
                hopes=form.hopes.data or "",
                pathway=Pathway(form.pathway.data) if form.pathway.data else None,
                access_needs=form.access_needs.data or "",
                course_id=listing.id if listing else None,
                art_form=listing.art_form if listing else None,
                consent=bool(form.consent.data),
            ),
            today=today(),
        )
        db.session.commit()
        return redirect(url_for("public.thank_you"))
    return render_template("public/refer_yourself.html", form=form, listing=listing)


@bp.get("/refer-yourself/sent")
@public
def thank_you() -> ResponseReturnValue:
    return render_template("public/thank_you.html", service_name=current_app.config["SERVICE_NAME"])
