"""Reports: PNG charts and one self-contained HTML file, made from saved files only.

The assembly is in build.py; this package re-exports its public names and nothing else.
matplotlib and jinja2 are imported only when a report is made.
"""

from portstorm.report.build import (
    DEFAULT_NAME,
    ReportFiles,
    build_report,
    many_report_names,
    remove_run_report,
    run_report_names,
    write_many_report,
    write_run_report,
    write_sweep_report,
)
from portstorm.report.fleetreport import fleet_report_names, write_fleet_report
from portstorm.report.junit import write_cases_junit, write_junit
from portstorm.report.page import Chart

__all__ = [
    "DEFAULT_NAME",
    "Chart",
    "ReportFiles",
    "build_report",
    "fleet_report_names",
    "many_report_names",
    "remove_run_report",
    "run_report_names",
    "write_cases_junit",
    "write_fleet_report",
    "write_junit",
    "write_many_report",
    "write_run_report",
    "write_sweep_report",
]
