"""FunnelStream: event-streaming marketing automation. `funnelstream --help` lists the commands."""

__version__ = "0.1.0"
