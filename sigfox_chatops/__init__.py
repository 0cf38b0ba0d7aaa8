"""sigfox-chatops: run the lifecycle of a Sigfox device fleet from Slack."""

__version__ = "0.1.0"
