# -*- coding: utf-8 -*-
# Copyright: Contributors to the cleanwithsnapshot.release collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  dsn:
    description:
      - A connection URL, C(postgresql://user:password@host:port/dbname), the service's C(DATABASE_URL)
        form with a driver (C(postgresql+psycopg://...)), or libpq C(key=value) pairs.
      - Mutually exclusive with O(login_host), O(login_unix_socket) and O(login_password).
      - Never printed; error messages show C(user@host:port/db) only.
    type: str
  login_host:
    description: Host of the PostgreSQL server.
    type: str
    aliases: [host]
  login_port:
    description: Port of the PostgreSQL server.
    type: int
    default: 5432
    aliases: [port]
  login_user:
    description: The role to connect as.
    type: str
    default: postgres
    aliases: [user]
  login_password:
    description: The role's password. Never printed.
    type: str
    aliases: [password]
  login_db:
    description: The database to connect to (also overrides the database of O(dsn)).
    type: str
    aliases: [db]
  login_unix_socket:
    description: A directory holding the server's Unix socket, used when O(login_host) is not set.
    type: str
    default: ''
  ssl_mode:
    description: libpq's C(sslmode).
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: A CA certificate file to verify the server's certificate with (libpq C(sslrootcert)).
    type: path
    aliases: [ssl_rootcert]
  connect_timeout:
    description: Seconds to wait for a connection; a server that does not answer gives an C(error) record.
    type: int
    default: 10
requirements:
  - psycopg2 (psycopg2-binary) on the host that runs the module
"""
