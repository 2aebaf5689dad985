"""All of the mall's SQL lives in this package: `database` owns connections, transactions
and migrations; each other module holds the statements of one group of tables.  Services
call these functions with a connection from `Database.write()` or `Database.reader()`."""

from .database import Database

__all__ = ["Database"]
