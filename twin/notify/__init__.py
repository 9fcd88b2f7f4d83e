"""Delivering notifications: the outbox the rules write, drained through e-mail, webhooks, MQTT.

The pure parts decide (`routing`: which transports and addresses a notification
goes to; `retry`: when to try again); `smtp` and `webhook` are transports
built on the standard library; `outbox` holds the SQL; `worker` claims due
notifications, tries each transport and records what happened. The MQTT
transport and the `twin notify run` command live in `ingest/notify.py`, beside
the broker client. See docs/notifications.md.
"""
