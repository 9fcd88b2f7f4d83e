"""`twin users ...` through the CLI, against a real database."""

from __future__ import annotations

from typer.testing import CliRunner

from twin.cli import app


def test_users_add_list_disable(twin_db_url, monkeypatch) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", twin_db_url)
    monkeypatch.setenv("TWIN_USER_PASSWORD", "a long enough secret")
    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "li", "--role", "grid_worker",
                                "--grid", "wh-guanggu-g1"])
    assert added.exit_code == 0, added.output
    assert "li: grid_worker, grid wh-guanggu-g1" in added.output
    listed = runner.invoke(app, ["users", "list"])
    assert "wh-guanggu-s01" in listed.output and "active" in listed.output
    assert runner.invoke(app, ["users", "disable", "li"]).exit_code == 0
    assert "disabled" in runner.invoke(app, ["users", "list"]).output
    refused = runner.invoke(app, ["users", "add", "x", "--role", "grid_worker"])
    assert refused.exit_code != 0
    assert "dashboard" in runner.invoke(app, ["--help"]).output
