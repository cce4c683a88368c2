"""The sealer service.

Its claim: "these events, in this order, were admitted; block N commits to them and to block
N-1".
"""

__version__ = "0.1.0"
