"""The one skeleton every service runs in: settings, logging, metrics, HTTP app, lifecycle."""
