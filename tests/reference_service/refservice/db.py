"""psycopg2 access: a small connection pool; every transaction starts with SET LOCAL app.current_org_id."""
from __future__ import annotations

import contextlib
import threading

import psycopg2
import psycopg2.extras
import psycopg2.pool


class Database:
    def __init__(self, connect_kwargs, maxconn=8, connect_timeout=3):
        self.connect_kwargs = dict(connect_kwargs, connect_timeout=connect_timeout, application_name="refservice")
        self.maxconn = maxconn
        self._pool = None
        self._lock = threading.Lock()

    def _get_pool(self):
        with self._lock:
            if self._pool is None:
                self._pool = psycopg2.pool.ThreadedConnectionPool(0, self.maxconn, **self.connect_kwargs)
            return self._pool

    def connect(self, **overrides):
        """A fresh connection outside the pool (readiness probes use one, like the real service)."""
        return psycopg2.connect(**dict(self.connect_kwargs, **overrides))

    @contextlib.contextmanager
    def transaction(self, org_id):
        """One transaction in the given organization: ``SET LOCAL app.current_org_id`` comes first."""
        pool = self._get_pool()
        conn = pool.getconn()
        broken = False
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute("SET LOCAL app.current_org_id = %s", (str(org_id),))
                yield cur
            conn.commit()
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            broken = True
            raise
        except Exception:
            try:
                conn.rollback()
            except psycopg2.Error:
                broken = True
            raise
        finally:
            pool.putconn(conn, close=broken or conn.closed != 0)

    def close(self):
        with self._lock:
            if self._pool is not None:
                self._pool.closeall()
                self._pool = None
