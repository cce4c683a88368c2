"""The validator service.

Its claim: "I re-verified block N completely; it is consistent with everything before it".
"""

__version__ = "0.1.0"
