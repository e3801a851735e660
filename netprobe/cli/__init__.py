"""The `netprobe` command line: a thin click group; each command parses, calls the library, renders."""
