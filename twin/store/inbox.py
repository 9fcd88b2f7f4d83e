"""The in-app inbox of resident and family logins (migration 0024): written by the
notification worker's inbox transport, read and marked read by the apps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg


def deliver(conn: psycopg.Connection, notification_id: int) -> bool:
    """Put an ``app`` notification in its recipient's inbox (again: nothing happens);
    False when the recipient is no login."""
    with conn.transaction():
        conn.execute(
            """INSERT INTO inbox_message (notification_id, login, delivered_at)
               SELECT n.id, n.recipient, now() FROM notification n
                 JOIN app_user u ON u.name = n.recipient
                WHERE n.id = %s AND n.channel = 'app'
               ON CONFLICT (notification_id) DO NOTHING""", (notification_id,))
        row = conn.execute("SELECT 1 FROM inbox_message WHERE notification_id = %s",
                           (notification_id,)).fetchone()
    return row is not None


def messages(conn: psycopg.Connection, login: str, *, limit: int = 30) -> list[dict[str, Any]]:
    """A login's inbox, newest first: each message's key and parameters to render, and the
    time of what it tells (the session's end, the alarm), not of its delivery."""
    rows = conn.execute(
        """SELECT m.notification_id, n.time, m.read_at, n.message, n.text_key,
                  n.text_params, n.alarm_id
             FROM inbox_message m JOIN notification n ON n.id = m.notification_id
            WHERE m.login = %s ORDER BY n.time DESC, m.notification_id DESC
            LIMIT %s""", (login, limit)).fetchall()
    return [{"id": nid, "at": at, "read_at": read_at, "text": text, "text_key": key,
             "text_params": params or {}, "alarm_id": alarm_id}
            for nid, at, read_at, text, key, params, alarm_id in rows]


def mark_read(conn: psycopg.Connection, login: str, *, at: datetime) -> int:
    """Every unread message of the login is read now."""
    with conn.transaction():
        return conn.execute(
            "UPDATE inbox_message SET read_at = %s WHERE login = %s AND read_at IS NULL",
            (at, login)).rowcount
