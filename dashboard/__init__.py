"""The Dash control room: large screen, building drill-down, work orders, grid worker, planner.

`dashboard.app.create_app(database_url)` builds the app. The deck.gl map is
a small component of our own (`dashboard.deck.TwinDeck`), whose bundle is
built from the npm registry into ``dashboard/deck/twin_deck.min.js`` and served
by Dash from this package: nothing is loaded from a CDN.
"""

__version__ = "0.1.0"

# Dash serves component bundles from the top-level package of a component's module.
_js_dist = [
    {"relative_package_path": "deck/twin_deck.min.js", "namespace": "dashboard"},
]
_css_dist: list = []
