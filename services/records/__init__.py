"""The records service.

Its claim: "this encrypted FHIR record exists, was written by X, is shared only under consent,
and every access is audited".
"""

__version__ = "0.1.0"
