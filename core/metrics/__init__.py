"""The service's figures in Redis and the history behind the console's charts."""
