"""Client options in dsm.opt style, with command-line overrides and per-volume resolution."""
from orchestrator.options.arguments import OVERRIDABLE, add_option_arguments, options_from_args
from orchestrator.options.model import (
    DATA_PATHS,
    DEFAULT_GAPSIZE_LAN,
    DEFAULT_GAPSIZE_SERVERFREE,
    ClientOptions,
    DataPath,
    ImageRule,
    ImageType,
    Mode,
    VolumeOptions,
)
from orchestrator.options.parser import KNOWN_OPTIONS, OptionsError, load_options, parse_options
from orchestrator.options.values import format_size, parse_size, parse_wait

__all__ = [
    "DATA_PATHS", "DEFAULT_GAPSIZE_LAN", "DEFAULT_GAPSIZE_SERVERFREE", "ClientOptions", "DataPath",
    "ImageRule", "ImageType", "KNOWN_OPTIONS", "Mode", "OptionsError", "VolumeOptions",
    "OVERRIDABLE", "add_option_arguments", "format_size", "load_options", "options_from_args", "parse_options",
    "parse_size", "parse_wait",
]
