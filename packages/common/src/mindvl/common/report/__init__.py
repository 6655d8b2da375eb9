"""The demo's static report (Markdown + self-contained HTML with inline SVG charts)."""

from mindvl.common.report.demo_report import build_demo_report, write_demo_report

__all__ = ["build_demo_report", "write_demo_report"]
