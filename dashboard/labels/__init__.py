"""The label catalogues of the features, one module per feature, each with
``LABELS: dict[str, tuple[str, str]]`` (key -> (zh-CN, en)). `dashboard.i18n` merges
them into one catalogue; a key written twice is a bug and fails at import."""
