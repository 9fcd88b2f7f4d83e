"""The resident and family apps' frame (their pages' own labels are their modules')."""

LABELS: dict[str, tuple[str, str]] = {
    "role.resident": ("居民", "Resident"),
    "role.family": ("家属", "Family member"),
    "m.title": ("智慧社区", "Smart community"),
    "m.nav.home": ("首页", "Home"),
}
