"""Alembic environment of the reference service (works with Alembic 1.8 + SQLAlchemy 1.4 and newer).

The URL comes from REFSERVICE_MIGRATION_URL, or ``-x url=...``, or the ini's sqlalchemy.url.
Migrations run as the owner role; the version table is ``public.alembic_version``.
"""
import os
import logging.config

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name and os.path.exists(config.config_file_name):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url():
    xargs = context.get_x_argument(as_dictionary=True)
    url = xargs.get("url") or os.environ.get("REFSERVICE_MIGRATION_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: set REFSERVICE_MIGRATION_URL or pass -x url=...")
    return url


def run_migrations_offline():
    context.configure(url=_url(), target_metadata=None, literal_binds=True, version_table_schema="public")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=None, version_table_schema="public",
                              transaction_per_migration=False)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
