"""One module per page, each with PATH, layout() and register_callbacks(app)."""

from dashboard.pages import (
    audit,
    building,
    large_screen,
    planner,
    resident_doors,
    work_orders,
    worker,
)

PAGES = (large_screen, building, work_orders, worker, planner, audit, resident_doors)
