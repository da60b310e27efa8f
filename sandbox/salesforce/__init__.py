"""A local Salesforce org for tests and the demo: the REST subset the pipeline's client uses.

Nothing in production imports this package. ``SalesforceServer`` serves an in-memory ``Org``
over TLS on loopback (simple-salesforce only speaks https) with a throwaway CA, fault knobs
(API limit exceeded, 503s, expired sessions, validation rules) and a ledger of every write.
"""

from sandbox.salesforce.org import HUMAN_USER, INTEGRATION_USER, LedgerEntry, Org
from sandbox.salesforce.server import CLIENT_ID, USERNAME, SalesforceServer

__all__ = [
    "CLIENT_ID",
    "HUMAN_USER",
    "INTEGRATION_USER",
    "USERNAME",
    "LedgerEntry",
    "Org",
    "SalesforceServer",
]
