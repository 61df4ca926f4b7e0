"""The command line: each command, its output and progress."""
