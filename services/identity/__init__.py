"""The identity service.

Its claim: "this DID is a licensed practitioner / an authorised publisher, and these keys are
valid or revoked".
"""

__version__ = "0.1.0"
