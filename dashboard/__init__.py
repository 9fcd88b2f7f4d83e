"""The Dash control room (large screen, building drill-down, work orders, planner).

Built under its own issue; this package holds its pages once they land.
"""
