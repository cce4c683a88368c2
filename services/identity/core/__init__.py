"""The identity service's pure core: who may do what, identity events, and the DID directory."""
