"""Several controllers and Asterisk nodes: leases, call ownership, handover, adoption."""
