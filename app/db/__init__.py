"""The stores: the PostgreSQL engine and its statement counter, the read path, keyset
pagination, migrations, and Redis clients that heal."""
