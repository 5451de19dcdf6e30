"""libical's RFC 5546 (iTIP) restriction check, through ctypes on Debian's libical3 (no Python binding needed)."""

from __future__ import annotations

import ctypes
import ctypes.util


def load_libical() -> ctypes.CDLL | None:
    """Return libical, or None when it is not installed (apt-get install libical3)."""
    name = ctypes.util.find_library("ical") or "libical.so.3"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.icalparser_parse_string.restype = ctypes.c_void_p
    lib.icalparser_parse_string.argtypes = [ctypes.c_char_p]
    lib.icalrestriction_check.argtypes = [ctypes.c_void_p]
    lib.icalrestriction_check.restype = ctypes.c_int
    lib.icalcomponent_as_ical_string.argtypes = [ctypes.c_void_p]
    lib.icalcomponent_as_ical_string.restype = ctypes.c_char_p
    lib.icalcomponent_free.argtypes = [ctypes.c_void_p]
    return lib


def restriction_errors(lib: ctypes.CDLL, data: bytes) -> list[str]:
    """Return the X-LIC-ERROR lines icalrestriction_check leaves in *data*; one more when it fails without any."""
    component = lib.icalparser_parse_string(data)
    assert component, "libical could not parse the calendar"
    try:
        passed = lib.icalrestriction_check(component)
        text = lib.icalcomponent_as_ical_string(component).decode("utf-8")
    finally:
        lib.icalcomponent_free(component)
    errors = [line for line in text.split("\r\n") if line.startswith("X-LIC-ERROR")]
    return errors or ([] if passed else ["icalrestriction_check failed"])
