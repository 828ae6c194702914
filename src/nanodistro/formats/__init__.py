"""Pure codecs: bytes in, objects out; objects in, bytes out. No I/O, no global state."""
