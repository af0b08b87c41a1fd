"""The data layer. Importing any of it registers every table on `tables.metadata` (the webhook and
meter tables live in modules of their own, on the same metadata)."""

from callmeter.db import meter_tables as _meter_tables  # noqa: F401
from callmeter.db import webhook_tables as _webhook_tables  # noqa: F401
