"""moe-backfill: asynchronous, resumable bulk backfill of MoEngage campaign reports."""

from .config import Config, load_config
from .errors import BackfillError, ConfigError

__version__ = "0.1.0"

__all__ = ["BackfillError", "Config", "ConfigError", "__version__", "load_config"]
