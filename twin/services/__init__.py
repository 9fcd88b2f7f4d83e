"""Private PostgreSQL and Mosquitto servers that the twin starts and stops itself.

Used when no ``TWIN_DATABASE_URL`` / ``TWIN_MQTT_URL`` is configured, and by
the test suite, so that neither depends on how a machine's services were left.
"""
