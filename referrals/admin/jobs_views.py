"""Admin page of the scheduled jobs: their schedules, their runs and failures. Admins only.

Registered on the admin blueprint. The runs are read from `job_run`, which every scheduler
process writes; a failed run is retried by the scheduler, and admins are told of it in-app.
"""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from referrals.admin import bp
from referrals.auth.models import Role
from referrals.extensions import db
from referrals.pagination import Page
from referrals.reports.models import JobOutcome, JobRun
from referrals.scheduler.jobs import JOBS, RETRY_LIMIT
from referrals.security import allow

RUNS_PER_PAGE = 50
PROBLEMS = (JobOutcome.FAILED, JobOutcome.ABANDONED)


@bp.get("/jobs")
@allow(Role.ADMIN)
def jobs() -> ResponseReturnValue:
    problems_only = request.args.get("show") == "problems"
    query = select(JobRun).order_by(JobRun.started_at.desc(), JobRun.id.desc())
    if problems_only:
        query = query.where(JobRun.outcome.in_(PROBLEMS))
    page = Page.from_request(query, per_page=RUNS_PER_PAGE)
    latest_ids = (
        select(func.max(JobRun.id))
        .where(JobRun.outcome != JobOutcome.SKIPPED)
        .group_by(JobRun.job_id)
    )
    latest = {
        run.job_id: run
        for run in db.session.scalars(select(JobRun).where(JobRun.id.in_(latest_ids)))
    }
    return render_template(
        "admin/jobs.html",
        jobs=JOBS,
        latest=latest,
        page=page,
        problems_only=problems_only,
        problems=PROBLEMS,
        retry_limit=RETRY_LIMIT,
    )
