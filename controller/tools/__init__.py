"""Command line and the local stack (Asterisk, Redis, Kamailio as our own processes)."""
