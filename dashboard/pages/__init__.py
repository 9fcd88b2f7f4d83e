"""One module per page, each with PATH, layout() and register_callbacks(app)."""

from dashboard.pages import (
    audit,
    building,
    family,
    large_screen,
    planner,
    reports_queue,
    resident_charging,
    resident_doors,
    resident_home,
    resident_notices,
    resident_report,
    work_orders,
    worker,
)

PAGES = (large_screen, building, work_orders, worker, planner, audit,
         resident_report, resident_notices, reports_queue, resident_doors,
         resident_home, resident_charging, family)
