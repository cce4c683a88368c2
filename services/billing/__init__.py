"""The billing service.

Its claim: "this consultation was billed by tariff contract V exactly so; this invoice is
settled".
"""

__version__ = "0.1.0"
