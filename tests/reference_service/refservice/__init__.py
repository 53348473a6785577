"""A small stand-in for the CleanWithSnapshot API that behaves like the real service as observed.

Standard library HTTP server + psycopg2 only, so it runs from the project's virtualenv and inside a
Debian bookworm image. See tests/reference_service/README.md for the contract and the fault switches.
"""

VERSION = "2026.02.24-ref"
DEFAULT_ORG_ID = "00000000-0000-0000-0000-000000000001"
OTHER_ORG_ID = "00000000-0000-0000-0000-000000000002"
