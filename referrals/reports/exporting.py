"""A return as a file: the bytes, the file name and the media type."""

from __future__ import annotations

from referrals.reports.csv_export import build_return_csv
from referrals.reports.models import KpiReturn


def scope_label(kpi_return: KpiReturn) -> str:
    return kpi_return.contract.name if kpi_return.contract is not None else "All activity"


def file_stem(kpi_return: KpiReturn) -> str:
    scope = f"contract-{kpi_return.contract_id}" if kpi_return.contract_id else "all-activity"
    return f"kpi-return-{scope}-{kpi_return.period}-v{kpi_return.version}"


def export_return(kpi_return: KpiReturn, fmt: str, *, raw: bool = False) -> tuple[bytes, str, str]:
    if fmt == "csv":
        content = build_return_csv(kpi_return, scope_label=scope_label(kpi_return), raw=raw)
        return content, f"{file_stem(kpi_return)}.csv", "text/csv"
    from referrals.reports.pdf import build_return_pdf

    return build_return_pdf(kpi_return, raw=raw), f"{file_stem(kpi_return)}.pdf", "application/pdf"
