"""The I/O shell of one controller process: live calls, the event router, services."""
