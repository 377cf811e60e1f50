"""checkrunner: agentless, declarative checks for fleets of hosts."""

__version__ = "0.1.0"
