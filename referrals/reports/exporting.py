"""A return as a file: the bytes, the file name and the media type."""

from __future__ import annotations

from referrals.reports.csv_export import build_return_csv
from referrals.reports.labels import SWEMWBS_NOTE
from referrals.reports.models import KpiReturn


def scope_label(kpi_return: KpiReturn) -> str:
    return kpi_return.contract.name if kpi_return.contract is not None else "All activity"


JOB_NAMES = {"cli": "command line", "monthly-kpi-returns": "the scheduled monthly job"}


def generated_by(kpi_return: KpiReturn) -> str:
    """Who or what made the return, as the title page says it."""
    if kpi_return.generated_by is not None:
        return kpi_return.generated_by.name
    if kpi_return.generated_by_job:
        return JOB_NAMES.get(kpi_return.generated_by_job, kpi_return.generated_by_job)
    return "Not recorded (the account has been removed)"


def return_sections(kpi_return: KpiReturn) -> list[tuple[str, str]]:
    """Each section's title and note, as the PDF and the return's page both give them."""
    courses = (
        "Courses funded by this contract."
        if kpi_return.contract is not None
        else "Every course the service runs."
    )
    return [
        (
            "A. Referrals",
            "Scheme-wide in every return: a referral belongs to a contract only once it is "
            "enrolled on one of its courses.",
        ),
        ("B. Participation", courses),
        (
            "C. Wellbeing outcomes",
            f"{courses} SWEMWBS metric scores for people completing a course that ended in the "
            "span (a WEMWBS questionnaire counts through its seven SWEMWBS items), follow-ups "
            f"recorded in the span, and mood before and after sessions. {SWEMWBS_NOTE}",
        ),
        (
            "D. Equalities",
            f"{courses} People supported (B1) in the month by age band, sex and ethnic group.",
        ),
        (
            "E. Cost and value",
            f"{courses} What the contract pays for the sessions delivered (each course's cost "
            "per session), per person supported, per attendance and per completion.",
        ),
    ]


def file_stem(kpi_return: KpiReturn) -> str:
    scope = f"contract-{kpi_return.contract_id}" if kpi_return.contract_id else "all-activity"
    return f"kpi-return-{scope}-{kpi_return.period}-v{kpi_return.version}"


def export_return(kpi_return: KpiReturn, fmt: str, *, raw: bool = False) -> tuple[bytes, str, str]:
    if fmt == "csv":
        content = build_return_csv(kpi_return, scope_label=scope_label(kpi_return), raw=raw)
        return content, f"{file_stem(kpi_return)}.csv", "text/csv"
    from referrals.reports.pdf import build_return_pdf  # the PDF builder uses this module

    return build_return_pdf(kpi_return, raw=raw), f"{file_stem(kpi_return)}.pdf", "application/pdf"
