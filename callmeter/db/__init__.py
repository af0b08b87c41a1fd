"""The data layer. Importing any of it registers every table on `tables.metadata` (the webhook
tables live in their own module, on the same metadata)."""

from callmeter.db import webhook_tables as _webhook_tables  # noqa: F401
