"""A job's event stream in Redis (tokens and status entries) and following it from the API."""
